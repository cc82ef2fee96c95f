"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) served with their assets from this service.

FastAPI's own pages load Swagger UI and ReDoc from a public CDN, so on the offline networks these
warehouses run on they are blank. The assets here are the ones the ``fastapi-offline`` package ships
(Swagger UI, ReDoc, a favicon), served under :data:`PREFIX`. Two remote calls the bundles would
still make are removed: Swagger UI's validator badge (``validatorUrl: null``) and the Redocly logo
that ReDoc's menu footer loads from its CDN (its URL is rewritten to the local favicon).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
PREFIX = "/docs-assets"
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


@lru_cache(maxsize=1)
def _redoc_js() -> bytes:
    return (ASSETS / "redoc.standalone.js").read_bytes().replace(_REDOC_LOGO, f"{PREFIX}/favicon.png".encode())


def mount(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and their assets to ``app`` (made with ``docs_url=redoc_url=None``)."""
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{title} - Swagger UI",
                                   swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{PREFIX}/swagger-ui.css",
                                   swagger_favicon_url=f"{PREFIX}/favicon.png",
                                   swagger_ui_parameters={"validatorUrl": None})

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{title} - ReDoc",
                              redoc_js_url=f"{PREFIX}/redoc.js", redoc_favicon_url=f"{PREFIX}/favicon.png",
                              with_google_fonts=False)

    @app.get(f"{PREFIX}/redoc.js", include_in_schema=False)
    def redoc_js() -> Response:  # before the mount below, which would answer every path under PREFIX
        return Response(_redoc_js(), media_type="text/javascript")

    app.mount(PREFIX, StaticFiles(directory=ASSETS), name="docs-assets")
