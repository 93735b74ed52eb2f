"""Starting the web app: offline (no analytics, no fonts or scripts from the web, no share link, no hub calls),
on 127.0.0.1 unless asked otherwise, with a warning when it listens beyond this machine."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .offline import OfflinePage, set_offline_env
from .service import Service

log = logging.getLogger(__name__)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) is only reachable from this machine."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def exposure_warning(host: str) -> str | None:
    """The warning for a non-loopback address (None on loopback)."""
    if is_loopback(host):
        return None
    everywhere = host in ("0.0.0.0", "::", "[::]", "")
    where = "every network interface of this machine" if everywhere else f"{host}"
    return (f"listening on {where}: anyone who can reach it can generate with the served models, upload files and "
            "open report folders on this machine, and there is no login; use --host 127.0.0.1 (the default) "
            "unless this network is trusted")


@dataclass
class Running:
    blocks: Any
    url: str

    def close(self) -> None:
        self.blocks.close()


def launch(service: Service, host: str = DEFAULT_HOST, port: int | None = DEFAULT_PORT,
           compare_folders: Sequence[str] = (), block: bool = True, title: str = "toolkit") -> Running:
    """Build the page and serve it; with block=False return once it is up (tests, screenshots)."""
    set_offline_env()
    warning = exposure_warning(host)
    if warning:
        log.warning(warning)
    if port is not None:
        check_port(host, port)
    from starlette.middleware import Middleware

    from .ui import build_ui

    blocks = build_ui(service, compare_folders, title=title)
    blocks.queue(default_concurrency_limit=1, max_size=64)
    service.out_root.mkdir(parents=True, exist_ok=True)
    blocks.launch(server_name=host, server_port=port, share=False, inbrowser=False, prevent_thread_lock=True,
                  show_error=False, quiet=True, ssr_mode=False, allowed_paths=[str(service.out_root.resolve())],
                  app_kwargs={"middleware": [Middleware(OfflinePage)]}, enable_monitoring=False,
                  mcp_server=False, pwa=False)
    running = Running(blocks, blocks.local_url)
    if block:
        try:
            blocks.block_thread()
        finally:
            blocks.close()
    return running


def check_port(host: str, port: int) -> None:
    """Fail with a clear message when `port` is taken (instead of Gradio's search for another one)."""
    from ..models.requests import RequestError

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host.strip("[]"), port))
    except OSError as err:
        raise RequestError(f"cannot listen on {host}:{port} ({err.strerror}): is another app using it? Give another "
                           "--port") from None


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
