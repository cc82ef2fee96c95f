"""The HTTP API (FastAPI): :mod:`.app` (routes: authenticate, validate, call the facade, shape the
answer), :mod:`.schema` (what it promises in its OpenAPI document) and :mod:`.docs` (``/docs`` and
``/redoc`` with their assets served locally, no CDN), :mod:`.local` (the same app on the home's
Unix socket, for local mode: the per-home local server), :mod:`.limits`, :mod:`.products`.

    app = create_app(settings)        # from .app; `twh serve` runs it with uvicorn
"""

__all__ = ["app", "docs", "limits", "local", "products", "schema"]
