"""``/docs``: the OpenAPI document rendered as one self-contained HTML page.

No scripts, fonts or stylesheets from elsewhere (the machines running the service may
have no internet): operations, their parameters and responses, every component schema
as a table of properties, and the problem types that error bodies point to
(``/docs#problem-validation-failed``). Every value from the document is HTML-escaped.
"""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any

from service.errors import PROBLEM_TYPES

_CSS = """
body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ccc;margin-top:2.5rem}
h3{margin-bottom:.3rem}code{background:#f3f3f3;padding:0 .25rem;border-radius:3px}
table{border-collapse:collapse;margin:.4rem 0 1rem;width:100%}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f7f7f7}.method{font-weight:bold;text-transform:uppercase;margin-right:.5rem}
.get{color:#0a6}.post{color:#06c}.delete{color:#c30}.put,.patch{color:#a60}
nav a{margin-right:1rem}.muted{color:#666}
pre{background:#f6f8fa;padding:.6rem;border-radius:4px;overflow-x:auto;font-size:13px}
"""


_LITERAL = re.compile(r"``(.+?)``|`([^`]+)`")


def _prose(text: str) -> str:
    """Escape a description and render its inline literals (RST ````x```` and Markdown
    ```x```) as code, so docstring text reads as a document rather than raw markup."""
    return _LITERAL.sub(lambda m: f"<code>{m.group(1) or m.group(2)}</code>", escape(text))


def _example(content: dict[str, Any]) -> str:
    """A media type's ``example`` (or first of ``examples``) as pretty-printed JSON."""
    value = content.get("example")
    if value is None and content.get("examples"):
        value = next(iter(content["examples"].values())).get("value")
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    return f"<details open><summary>Example</summary><pre>{escape(text)}</pre></details>"


def _type(schema: dict[str, Any]) -> str:
    """A short HTML description of a schema's type, linking references."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " | ".join(_type(s) for s in schema[key])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = " | ".join(kind)
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    extra = []
    if "enum" in schema:
        extra.append("one of " + ", ".join(f"<code>{escape(str(v))}</code>" for v in schema["enum"]))
    if "const" in schema:
        extra.append(f"<code>{escape(str(schema['const']))}</code>")
    if "pattern" in schema:
        extra.append(f"pattern <code>{escape(schema['pattern'])}</code>")
    if "format" in schema:
        extra.append(escape(schema["format"]))
    return escape(str(kind)) + (f' <span class="muted">({"; ".join(extra)})</span>' if extra else "")


def _schema_table(name: str, schema: dict[str, Any]) -> str:
    rows = []
    required = set(schema.get("required", []))
    for prop, sub in schema.get("properties", {}).items():
        rows.append(f"<tr><td><code>{escape(prop)}</code></td><td>{_type(sub)}</td>"
                    f"<td>{'yes' if prop in required else ''}</td>"
                    f"<td>{_prose(sub.get('description', ''))}</td></tr>")
    desc = _prose(schema.get("description", ""))
    body = ("<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>"
            + "".join(rows) + "</table>") if rows else f"<p>{_type(schema)}</p>"
    return f'<h3 id="schema-{escape(name)}">{escape(name)}</h3><p>{desc}</p>{body}'


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    parts = [f'<h3><span class="method {escape(method)}">{escape(method)}</span>'
             f"<code>{escape(path)}</code></h3>",
             f"<p><strong>{_prose(op.get('summary', ''))}</strong> "
             f"{_prose(op.get('description', ''))}</p>"]
    if "x-scope" in op:
        parts.append(f"<p>API key scope: <code>{escape(op['x-scope'])}</code></p>")
    params = op.get("parameters", [])
    if params:
        parts.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>"
                     + "".join(f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
                               f"<td>{_type(p.get('schema', {}))}</td>"
                               f"<td>{_prose(p.get('description', ''))}</td></tr>" for p in params)
                     + "</table>")
    body = op.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            parts.append(f"<p>Request body (<code>{escape(media)}</code>): "
                         f"{_type(content.get('schema', {}))}</p>{_example(content)}")
    rows, examples = [], []
    for status, resp in op.get("responses", {}).items():
        media = ", ".join(f"<code>{escape(m)}</code> {_type(c.get('schema', {}))}"
                          for m, c in resp.get("content", {}).items())
        rows.append(f"<tr><td>{escape(status)}</td><td>{_prose(resp.get('description', ''))}</td>"
                    f"<td>{media}</td></tr>")
        examples += [f"<p>Response {escape(status)}:</p>{ex}" for c in resp.get("content", {}).values()
                     if (ex := _example(c))]
    parts.append("<table><tr><th>status</th><th>meaning</th><th>body</th></tr>"
                 + "".join(rows) + "</table>" + "".join(examples))
    return "".join(parts)


def render(doc: dict[str, Any]) -> str:
    """The whole page for an OpenAPI document."""
    info = doc.get("info", {})
    ops = [_operation(path, method, op) for path, item in sorted(doc.get("paths", {}).items())
           for method, op in item.items()]
    schemas = [_schema_table(n, s) for n, s in sorted(doc.get("components", {}).get("schemas", {}).items())]
    problems = "".join(
        f'<tr id="problem-{escape(p.slug)}"><td><code>/docs#problem-{escape(p.slug)}</code></td>'
        f"<td>{p.status}</td><td>{escape(p.title)}</td></tr>" for p in PROBLEM_TYPES)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(info.get('title', 'API'))}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(info.get('title', 'API'))}</h1>"
        f"<p class=muted>version {escape(str(info.get('version', '')))} · "
        '<a href="/openapi.json">openapi.json</a></p>'
        f"<p>{_prose(info.get('description', ''))}</p>"
        '<nav><a href="#operations">Operations</a><a href="#schemas">Schemas</a>'
        '<a href="#problems">Problem types</a></nav>'
        '<h2 id="operations">Operations</h2>' + "".join(ops)
        + '<h2 id="schemas">Schemas</h2>' + "".join(schemas)
        + '<h2 id="problems">Problem types</h2><p>Error bodies are RFC 9457 '
          "<code>application/problem+json</code>; their <code>type</code> is one of:</p>"
          "<table><tr><th>type</th><th>status</th><th>title</th></tr>" + problems + "</table>"
        + "</body></html>")
