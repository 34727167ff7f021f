"""`LoopbackServer`: real HTTP on 127.0.0.1 (a free port) from a daemon thread, for the fake APIs.

The Zenodo and Energy-Charts test servers, the benchmark's replay server and the misbehaving server of the
limit tests are subclasses: each brings its request handler, this class owns the socket and the thread.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

# `typing.Self` needs Python 3.11; the project supports 3.10.
_Server = TypeVar("_Server", bound="LoopbackServer")


class LoopbackServer:
    """A `ThreadingHTTPServer` on 127.0.0.1 serving `handler` from a daemon thread once started."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # request threads are daemons
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=name, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self: _Server) -> _Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self: _Server) -> _Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
