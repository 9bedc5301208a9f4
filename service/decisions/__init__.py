"""The decision endpoints: HTTP only; the decisions themselves are :mod:`runtime.decisions`.

* :mod:`.bodies` - request bodies (pydantic) and their validation;
* :mod:`.routes` - ``POST /v1/decisions`` and ``GET /v1/members/{id}/offers``;
* :mod:`.batch` - ``POST /v1/decisions/batch`` (NDJSON stream, idempotent retries);
* :mod:`.model_routes` - which model serves, reload, promote and roll back;
* :mod:`.openapi_doc` - their OpenAPI documentation;
* :mod:`.component` - :class:`~.component.DecisionsComponent`: loads the runtime after the
  fork, in the background, and reports readiness;
* :mod:`.wiring` - registers all of the above on an app.
"""
