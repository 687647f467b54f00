"""The explorer and market console every node serves at /ui (node/rpc/ui_http.py).

`static/` holds the page and its ES modules as they are served: no build step, no
library fetched at run time. The page reads only the node's public JSON-RPC, its
WebSocket and its blob gateway, so it works against any node. Every value it shows
goes into the page as text (dom.js never sets HTML), and the server's
Content-Security-Policy allows only the page's own scripts, as a second wall.
"""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
