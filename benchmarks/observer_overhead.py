"""What the request observer (request id, metrics, access log) adds to every request.

Calls :class:`~modelport.serving.observe.RequestObserver` around a do-nothing ASGI app that
answers 200, 100,000 times, bare and observed, with and without the access log (written to
memory). Run: ``.venv/bin/python benchmarks/observer_overhead.py``.
"""

from __future__ import annotations

import asyncio
import io
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.monitoring.metrics import ServerMetrics
from modelport.serving.observe import AccessLog, RequestObserver, tag

N = 100_000


async def answer(scope: Scope, receive: Receive, send: Send) -> None:
    tag(scope, "v2", "bench", 1)
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


async def main() -> None:
    async def send(message: Message) -> None:
        pass

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    cases: dict[str, ASGIApp] = {
        "bare app": answer,
        "observer, no access log": RequestObserver(answer, metrics=ServerMetrics()),
        "observer + access log": RequestObserver(
            answer, metrics=ServerMetrics(), access_log=AccessLog(io.BytesIO())
        ),
    }
    for label, app in cases.items():
        start = time.perf_counter()
        for _ in range(N):
            scope = {
                "type": "http",
                "method": "POST",
                "path": "/v2/models/bench/infer",
                "headers": [(b"host", b"x"), (b"content-length", b"10")],
            }
            await app(scope, receive, send)
        print(f"{label:<26}{(time.perf_counter() - start) / N * 1e6:6.2f} µs a request")


if __name__ == "__main__":
    asyncio.run(main())
