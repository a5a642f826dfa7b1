"""A fault-injecting proxy in front of the local API server, on loopback (tests).

It forwards every request (watches included, streamed) to the API server as it came, and
answers chosen ones itself with an error instead — a 409 on a write, say — so a test can
make the API server misbehave at an exact moment.
"""

from __future__ import annotations

import dataclasses
import json
import re
import ssl
import threading
from typing import Any

import aiohttp
from aiohttp import web

from .controlplane import ControlPlane
from .servers import BackgroundServer

SESSION = web.AppKey("session", aiohttp.ClientSession)
_REASONS = {
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


@dataclasses.dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    object_name: str  # only requests whose JSON body names this object ("" for any)
    remaining: int
    hits: int = 0


class FaultProxy(BackgroundServer):
    """`with FaultProxy(control_plane) as proxy: ... proxy.fail(...)`; `proxy.kubeconfig`
    points an admin client at it."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        super().__init__(self._create_app, thread_name="api-fault-proxy")

    def fail(
        self, method: str, path: str, status: int, *, object_name: str = "", count: int = 1
    ) -> Fault:
        """The next `count` requests matching answer `status` without reaching the server."""
        fault = Fault(method, re.compile(path), status, object_name, count)
        with self._lock:
            self._faults.append(fault)
        return fault

    def write_kubeconfig(self, path: Any) -> Any:
        """An admin kubeconfig whose server is this proxy (plain http, on loopback)."""
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
            "users": [{"name": "admin", "user": {"token": self.plane.admin_token}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "admin"}}],
            "current-context": "proxy",
        }
        path.write_text(json.dumps(document))
        return path

    def _create_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.cleanup_ctx.append(self._session)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        return app

    async def _session(self, app: web.Application) -> Any:
        context = ssl.create_default_context(cafile=str(self.plane.ca_file))
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            auto_decompress=False,
        ) as session:
            app[SESSION] = session
            yield

    def _injected(self, method: str, path: str, body: bytes) -> Fault | None:
        name = ""
        if body:
            try:
                name = str((json.loads(body).get("metadata") or {}).get("name") or "")
            except (ValueError, AttributeError):
                name = ""
        with self._lock:
            for fault in self._faults:
                matches = fault.method == method and fault.path.search(path)
                if matches and fault.remaining and fault.object_name in ("", name):
                    fault.remaining -= 1
                    fault.hits += 1
                    return fault
        return None

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = self._injected(request.method, request.path, body)
        if fault is not None:
            reason = _REASONS.get(fault.status, "InternalError")
            status = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                      "message": f"injected by the test proxy: {reason}", "reason": reason,
                      "code": fault.status}  # fmt: skip
            return web.json_response(status, status=fault.status)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        session = request.app[SESSION]
        async with session.request(
            request.method,
            self.plane.server + request.rel_url.path_qs,
            headers=headers,
            data=body or None,
        ) as upstream:
            response = web.StreamResponse(status=upstream.status)
            for name, value in upstream.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    response.headers[name] = value
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
