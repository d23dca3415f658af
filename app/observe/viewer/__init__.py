"""The flow viewer page: plain HTML, a little vanilla JS, and Mermaid vendored (no CDN, no build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse

from app.problems import NotFound

HERE = Path(__file__).parent
# only these files are served: no path from the URL ever reaches the file system
STATIC = {
    "app.js": "text/javascript",
    "diagram.js": "text/javascript",
    "lab.js": "text/javascript",
    "style.css": "text/css",
    "mermaid.min.js": "text/javascript",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def page() -> FileResponse:
    """The flow viewer. Its address may carry the operator's token (?operator=): no Referer with it."""
    return FileResponse(
        HERE / "index.html", media_type="text/html", headers={"Referrer-Policy": "no-referrer"}
    )


@router.get("/web/{name}")
async def static(name: str) -> FileResponse:
    """The page's script, style and the vendored mermaid.min.js."""
    if name not in STATIC:
        raise NotFound(f"no file {name!r}")
    # mermaid.min.js is 3.5 MB: let the browser keep it for an hour
    cache = "public, max-age=3600" if name == "mermaid.min.js" else "no-cache"
    return FileResponse(HERE / "static" / name, media_type=STATIC[name], headers={"Cache-Control": cache})
