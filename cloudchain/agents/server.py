"""An agent's own HTTP server: `/health` (JSON) and `/metrics` (Prometheus text).

Each agent keeps its metrics in a registry of its own, so that two agents in one process
(tests) do not mix their counts. `/health` answers what the agent's `health()` returns;
`delay_s` (a provider's `--fault slow`) holds every answer that long first.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class AgentServer:
    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        health: Callable[[], dict[str, Any]],
        delay_s: float = 0.0,
    ) -> None:
        self.host, self.port = host, port
        self._registry = registry
        self._health = health
        self._delay_s = delay_s
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._on_health)
        app.router.add_get("/metrics", self._on_metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # the port the system chose
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _on_health(self, request: web.Request) -> web.Response:
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        return web.Response(text=json.dumps(self._health()), content_type="application/json")

    async def _on_metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
