"""Keeping the page offline: Gradio's page template preconnects to a web-font host and loads a script from a CDN
(for embedding in other sites). This ASGI middleware strips every tag of an HTML response that points off the
machine (`<link href="http...">`, `<script src="http...">`), so opening the app makes no request beyond it.
Analytics, share links and hub calls are switched off through the environment (`OFFLINE_ENV`)."""

from __future__ import annotations

import os
import re
from typing import Any

OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_SSR_MODE": "False",
}

_EXTERNAL = re.compile(
    r"<link\b[^>]*\bhref=\"(?:https?:)?//[^\"]*\"[^>]*/?>"
    r"|<script\b[^>]*\bsrc=\"(?:https?:)?//[^\"]*\"[^>]*>\s*</script>",
    re.IGNORECASE | re.DOTALL)


def set_offline_env() -> None:
    """Before Gradio is imported: no analytics, no hub calls, no server-side rendering (it needs node)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"


def strip_external(page: str) -> str:
    """The HTML without tags that load from another host."""
    return _EXTERNAL.sub("", page)


class OfflinePage:
    """ASGI middleware: HTML responses lose their off-machine links (see the module docstring)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        chunks: list[bytes] = []

        async def capture(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict((k.lower(), v) for k, v in message.get("headers", []))
                if b"text/html" in headers.get(b"content-type", b"") and b"content-encoding" not in headers:
                    start = message
                    return
                await send(message)
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body = strip_external(b"".join(chunks).decode("utf-8")).encode("utf-8")
                    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                    headers.append((b"content-length", str(len(body)).encode()))
                    await send({**start, "headers": headers})
                    await send({"type": "http.response.body", "body": body, "more_body": False})
            else:
                await send(message)

        await self.app(scope, receive, capture)
