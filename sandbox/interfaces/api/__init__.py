"""The HTTP API (FastAPI): :mod:`.app` (routes: authenticate, validate, call the facade, shape the
answer) and :mod:`.schema` (what it promises in its OpenAPI document).

    app = create_app(settings)        # from .app; `twh serve` runs it with uvicorn
"""

__all__ = ["app", "schema"]
