"""The web UI's routes on the RPC port: GET /ui (a redirect to /ui/), /ui/ (the page)
and /ui/{file} (its scripts, styles and icon), from cloudchain/ui/static.

The files are read once, when the server starts, and served from memory: the UI is
part of the node's release, and a name that is not one of them is a plain 404 (no
path is ever joined from the request, so nothing outside the folder can be named).
Every answer carries a Content-Security-Policy that lets the page run only its own
scripts and connect only to this node, so a value from the chain that a bug let into
the page as markup still could not run.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from cloudchain.ui import STATIC_DIR

UI_PREFIX = "/ui"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_FILE_NAME = re.compile(r"\A[a-z0-9][a-z0-9_-]*\.(html|js|css|svg)\Z")
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",  # CSP 3: 'self' takes this origin's ws: and wss: too
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        # Markup from a string is refused outright: the page never makes any (dom.js).
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # A node's upgrade brings a new UI: the browser asks again each time.
    "Cache-Control": "no-cache",
}


class UIFiles:
    """The UI's files, by name, read from `folder` once."""

    def __init__(self, folder: Path = STATIC_DIR) -> None:
        self._files: dict[str, bytes] = {
            path.name: path.read_bytes()
            for path in sorted(folder.iterdir())
            if _FILE_NAME.match(path.name)
        }
        assert "index.html" in self._files, f"the UI has no index.html in {folder}"

    def names(self) -> list[str]:
        return sorted(self._files)

    def add_routes(self, app: web.Application) -> None:
        """Before the URI form's /{method}, which would take /ui as a method's name."""
        app.router.add_get(UI_PREFIX, self._redirect)
        app.router.add_get(UI_PREFIX + "/", self._index)
        app.router.add_get(UI_PREFIX + "/{name}", self._file)

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(UI_PREFIX + "/", headers=HEADERS)

    async def _index(self, request: web.Request) -> web.Response:
        return self._answer("index.html")

    async def _file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._files:
            return web.Response(status=404, text="404 page not found\n", headers=HEADERS)
        return self._answer(name)

    def _answer(self, name: str) -> web.Response:
        content_type = CONTENT_TYPES[Path(name).suffix]
        return web.Response(
            body=self._files[name], headers={**HEADERS, "Content-Type": content_type}
        )
