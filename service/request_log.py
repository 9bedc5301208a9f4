"""How a request appears in the logs: its path with secret path variables masked.

Kept apart from :mod:`service.http` (the request hooks) so that the error handlers can
log a request without importing the hooks that raise their errors.
"""

from __future__ import annotations

import re

from flask import request

SECRET_PATH_VARIABLES = frozenset({"code"})
MASK = "***"


def logged_path() -> str:
    """The request path for logs, with secret path variables (coupon codes) masked.

    Why: access logs are kept and shipped widely; a coupon code in them could be redeemed
    by anyone who reads them.
    """
    rule = request.url_rule
    args = request.view_args or {}
    if rule is None or not SECRET_PATH_VARIABLES & args.keys():
        return request.path
    path = rule.rule
    for name, value in args.items():
        shown = MASK if name in SECRET_PATH_VARIABLES else str(value)
        path = re.sub(r"<(?:[^:<>]+:)?" + re.escape(name) + ">", shown.replace("\\", "\\\\"), path)
    return path
