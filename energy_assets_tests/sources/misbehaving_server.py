"""A loopback HTTP server that misbehaves on purpose, for the limits and dead-API tests of the live clients.

The first path segment picks the behaviour (`/drip-body/price?...`): drip the body or the headers one byte at a
time, send bodies over a cap with a true, a missing or a chunked length, add undocumented fields, answer 429
with `Retry-After` or 500 forever, or stall in the middle of the body. Every request's behaviour is logged
in `hits`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from energy_assets.sources.energy_charts.snapshot import SAMPLE_DIR
from energy_assets_tests.loopback import LoopbackServer

DRIP_INTERVAL_S = 0.5
CAP_BYTES = 1000
OVERSIZED = b'{"padding": "' + b"x" * 5000 + b'"}'
PRICE_BODY = json.loads((SAMPLE_DIR / "price_DE-LU_2025-03-30.json").read_text(encoding="utf-8"))

Behaviour = Callable[[BaseHTTPRequestHandler, threading.Event], None]


def _drip_body(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    body = json.dumps(PRICE_BODY).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    _drip(handler, body, stop)


def _drip_headers(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    _drip(handler, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"z" * 200, stop)


def _drip(handler: BaseHTTPRequestHandler, payload: bytes, stop: threading.Event) -> None:
    handler.wfile.flush()
    for byte in payload[:40]:  # 20 s at most, long after every test gave up
        if stop.wait(DRIP_INTERVAL_S):
            return
        try:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
        except OSError:  # the client hung up, as it should
            return


def _oversized_with_length(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(OVERSIZED)))
    handler.end_headers()
    handler.wfile.write(OVERSIZED)


def _oversized_without_length(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    # No Content-Length: the body runs until the server closes the connection.
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.close_connection = True
    _write_quietly(handler, OVERSIZED)


def _oversized_chunked(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for start in range(0, len(OVERSIZED), 500):
        piece = OVERSIZED[start : start + 500]
        if not _write_quietly(handler, f"{len(piece):x}\r\n".encode() + piece + b"\r\n"):
            return
    _write_quietly(handler, b"0\r\n\r\n")


def _rate_limited(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    _send(handler, 429, b"Too Many Requests", {"Retry-After": "5"})


def _extra_fields(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    body = {
        **PRICE_BODY,
        "debug_node": "lb-7",
        "internal": {"query_ms": 12, "path": "/srv/../etc"},
    }
    _send(handler, 200, json.dumps(body).encode(), {})


def _installed_with_extra_fields(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    body = {
        "time": ["2023", "2024"],
        "production_types": [{"name": "Solar", "data": [82.1, 99.3], "color": "#ffcc00"}],
        "last_update": 1735686000,
        "deprecated": False,
        "tracking_id": "abc",
    }
    _send(handler, 200, json.dumps(body).encode(), {})


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json" if status == 200 else "text/plain")
    handler.send_header("Content-Length", str(len(body)))
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


def _write_quietly(handler: BaseHTTPRequestHandler, data: bytes) -> bool:
    try:
        handler.wfile.write(data)
        handler.wfile.flush()
    except OSError:
        return False
    return True


def _server_error(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    _send(handler, 500, b"Internal Server Error: upstream database unavailable", {})


def _stall_mid_body(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    body = json.dumps(PRICE_BODY).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    _write_quietly(handler, body[: len(body) // 2])
    stop.wait(30)  # then nothing more, until the test ends


BEHAVIOURS: dict[str, Behaviour] = {
    "drip-body": _drip_body,
    "drip-headers": _drip_headers,
    "oversized-with-length": _oversized_with_length,
    "oversized-without-length": _oversized_without_length,
    "oversized-chunked": _oversized_chunked,
    "rate-limited": _rate_limited,
    "server-error": _server_error,
    "stall-mid-body": _stall_mid_body,
    "extra-fields": _extra_fields,
    "installed-extra-fields": _installed_with_extra_fields,
}


class MisbehavingServer(LoopbackServer):
    """Loopback HTTP server; the first path segment picks the behaviour (`/drip-body/price?...`)."""

    def __init__(self) -> None:
        self.stop_event = threading.Event()
        self.hits: list[str] = []
        stop, hits = self.stop_event, self.hits

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                behaviour = self.path.strip("/").split("/")[0]
                hits.append(behaviour)
                BEHAVIOURS[behaviour](self, stop)

            def log_message(self, format: str, *args: object) -> None:
                return

        super().__init__(Handler, "misbehaving-server")

    def url(self, behaviour: str) -> str:
        return f"{self.base_url}/{behaviour}"

    def stop(self) -> None:
        self.stop_event.set()  # releases handlers that wait on purpose, then the server stops
        super().stop()
