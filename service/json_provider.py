"""The service's JSON responses, encoded by orjson behind Flask's JSON provider interface.

Encoding a decision's answer with the standard library's ``json`` (which Flask uses by
default) took about a tenth of a millisecond per request, a visible share of a cached
decision (docs/performance.md); orjson does the same in a few microseconds. The output
keeps Flask's conventions: keys sorted, compact separators (indented in debug mode), and
Flask's own fallback for dates (HTTP dates), dataclasses, decimals and UUIDs. It differs
only where the standard library would write invalid JSON (``NaN`` and infinities become
``null``), in how it spells some floats (``1e-7`` for ``1e-07``) and in writing non-ASCII
characters as UTF-8 instead of ``\\u`` escapes; both parse to the same values. Anything
orjson refuses (an integer beyond 64 bits, an unknown type) is handed to the standard
encoder, so no response fails that encoded before. Request bodies are still parsed by the
standard library.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
            | orjson.OPT_PASSTHROUGH_DATACLASS)
_HANDLED = frozenset({"default", "separators", "indent", "sort_keys", "ensure_ascii"})


class FastJSONProvider(DefaultJSONProvider):
    """Flask's default provider, with ``dumps`` done by orjson (module docstring)."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """``obj`` as JSON text; the standard encoder for arguments or values orjson does not take."""
        indent = kwargs.get("indent")
        if kwargs.keys() - _HANDLED or kwargs.get("sort_keys", self.sort_keys) is False or indent not in (None, 2):
            return super().dumps(obj, **kwargs)
        option = _OPTIONS | orjson.OPT_INDENT_2 if indent == 2 else _OPTIONS
        try:
            return orjson.dumps(obj, default=kwargs.get("default", self.default), option=option).decode("utf-8")
        except orjson.JSONEncodeError:
            return super().dumps(obj, **kwargs)
