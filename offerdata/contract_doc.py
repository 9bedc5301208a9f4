"""Render the data contract's column reference as Markdown, for docs/data.md.

docs/data.md embeds this output between ``<!-- contract:begin -->`` and
``<!-- contract:end -->``; a test checks the two never drift apart. Regenerate with
``python -m offerdata.contract_doc --write``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from models.data_contract import OPTIONAL_TABLES, TABLES

DOC = Path(__file__).resolve().parents[1] / "docs" / "data.md"
BEGIN, END = "<!-- contract:begin -->", "<!-- contract:end -->"


def render() -> str:
    """One Markdown section per table: description, key, references and a column table."""
    parts: list[str] = []
    for table in (*TABLES.values(), *OPTIONAL_TABLES.values()):
        parts.append(f"### `{table.name}`\n\n{table.description}\n")
        if table.key:
            parts.append(f"Key: {', '.join(f'`{k}`' for k in table.key)} (unique).\n")
        for local, target, remote in table.references:
            parts.append(f"References: ({', '.join(local)}) → `{target}` ({', '.join(remote)}).\n")
        parts.append("| column | type | nullable | required | meaning |\n| --- | --- | --- | --- | --- |")
        for col in table.columns:
            parts.append(f"| `{col.name}` | {col.type} | {'yes' if col.nullable else 'no'} | "
                         f"{'yes' if col.required else 'optional'} | {col.description.replace('|', '/')} |")
        parts.append("")
    return "\n".join(parts).strip()


def embedded(text: str) -> str:
    """The generated block currently embedded in a docs/data.md text."""
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    return match.group(1).strip() if match else ""


def write() -> None:
    """Replace the generated block in docs/data.md with the current contract."""
    text = DOC.read_text()
    new = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _m: f"{BEGIN}\n{render()}\n{END}", text, flags=re.S)
    DOC.write_text(new)


if __name__ == "__main__":
    if "--write" in sys.argv:
        write()
    else:
        print(render())
