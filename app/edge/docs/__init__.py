"""Swagger UI at ``/docs`` from the vendored files beside this one (no CDN: it works offline).

The app is created with ``docs_url=None`` so that FastAPI's own ``/docs`` (which loads the UI from a
CDN) is not registered; this router serves the same page pointing at ``/docs-assets/``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse

from app.problems import NotFound

HERE = Path(__file__).resolve().parent
PREFIX = "/docs-assets"
# a fixed list, not a directory: nothing else in this folder is served
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


def router(title: str, openapi_url: str = "/openapi.json") -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/docs")
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{PREFIX}/favicon-32x32.png",
        )

    @r.get(PREFIX + "/{name}")
    async def asset(name: str) -> FileResponse:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise NotFound(f"no asset {name}")
        # the files change only with the package version: let browsers keep them a day
        return FileResponse(
            HERE / name, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
        )

    return r
