"""A local HTTP server that speaks the Energy-Charts API's shapes, for testing the live client.

It answers from recorded responses (the package's sample bundle plus the odd cases under
`energy_assets_tests/fixtures/energy_charts/`) and behaves like the real service where tests need it:

- unknown country or bidding zone -> 400 with the API's plain-text message;
- a day parameter that is not a date -> 422 `{"detail": [{"loc": [...], "msg": ..., "type": ...}]}`;
- `/price` without data -> 404 `{"detail": "No price data available for that bidding zone/time range"}`;
- scripted answers per endpoint (`script("price", [Scripted(429, headers={"Retry-After": "1"})])`) are served
  first, in order, so tests can stage 429-then-200 or 500-then-200.

Every request is logged with its parameters, headers and arrival time.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from energy_assets.sources.energy_charts.errors import SnapshotNotRecordedError
from energy_assets.sources.energy_charts.snapshot import SAMPLE_DIR, SnapshotEnergyChartsClient, SnapshotIndex
from energy_assets_tests.loopback import LoopbackServer

FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "energy_charts"

COUNTRIES = frozenset(
    "de ch eu all al am at az ba be bg by cy cz dk ee es fi fr ge gr hr hu ie it lt lu lv md me mk mt nie nl no pl"
    " pt ro rs ru se si sk tr ua uk xk".split()
)
BIDDING_ZONES = frozenset(
    "AT BE BG CH CZ DE-LU DE-AT-LU DK1 DK2 EE ES FI FR GR HR HU LT LV ME NL NO1 NO2 NO3 NO4 NO5 PL PT RO RS"
    " SE1 SE2 SE3 SE4 SI SK".split()
)


@dataclass(frozen=True)
class Scripted:
    """A canned answer: status, body (str or JSON-able) and headers."""

    status: int
    body: str | dict | list = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SeenRequest:
    endpoint: str
    params: dict[str, str]
    headers: dict[str, str]
    monotonic_time: float


class EnergyChartsTestServer(LoopbackServer):
    """Owns the recordings, the scripts and the request log (`LoopbackServer`: the socket and thread)."""

    def __init__(self, recording_roots: tuple[Path, ...] = (SAMPLE_DIR, FIXTURES_DIR)) -> None:
        self.indexes = [SnapshotIndex.load(root) for root in reversed(recording_roots)]
        self.joiner = SnapshotEnergyChartsClient(list(recording_roots))
        self.requests: list[SeenRequest] = []
        self._scripts: dict[str, list[Scripted]] = {}
        self._lock = threading.Lock()
        super().__init__(_make_handler(self), "energy-charts-test-server")

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._scripts.clear()

    def script(self, endpoint: str, answers: list[Scripted]) -> None:
        """Serve `answers` (in order) for the next requests to `endpoint`, then fall back to recordings."""
        with self._lock:
            self._scripts.setdefault(endpoint, []).extend(answers)

    def requests_to(self, endpoint: str) -> list[SeenRequest]:
        return [request for request in self.requests if request.endpoint == endpoint]

    def answer(self, endpoint: str, params: dict[str, str], headers: dict[str, str]) -> Scripted:
        with self._lock:
            self.requests.append(SeenRequest(endpoint, params, headers, time.monotonic()))
            queue = self._scripts.get(endpoint)
            if queue:
                return queue.pop(0)
        return self._recorded_answer(endpoint, params)

    def _recorded_answer(self, endpoint: str, params: dict[str, str]) -> Scripted:
        if "country" in params and params["country"] not in COUNTRIES:
            return Scripted(
                400,
                f"'{params['country']}' is not the code for an available country. Please refer to the API doc"
                " for information about available countries",
            )
        if "bzn" in params and params["bzn"] not in BIDDING_ZONES:
            return Scripted(400, f"'{params['bzn']}' is not the code for an available bidding zone.")
        for name in ("start", "end"):
            if name in params:
                try:
                    date.fromisoformat(params[name])
                except ValueError:
                    return Scripted(
                        422,
                        {
                            "detail": [
                                {
                                    "loc": ["query", name],
                                    "msg": "invalid date or unix timestamp",
                                    "type": "value_error",
                                }
                            ]
                        },
                    )
        for index in self.indexes:
            recording = index.find(endpoint, params)
            if recording is not None:
                return Scripted(200, index.read_bytes(recording).decode("utf-8"))
        try:
            return Scripted(200, self.joiner.get_json(endpoint, params))
        except SnapshotNotRecordedError:
            pass
        if endpoint == "price":
            return Scripted(404, {"detail": "No price data available for that bidding zone/time range"})
        return Scripted(404, {"detail": "Not recorded in the test fixtures"})


def _make_handler(server: EnergyChartsTestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            endpoint = url.path.strip("/")
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            answer = server.answer(endpoint, params, {key: value for key, value in self.headers.items()})
            if isinstance(answer.body, (dict, list)):
                payload, content_type = json.dumps(answer.body).encode(), "application/json"
            else:
                payload = answer.body.encode()
                content_type = "application/json" if answer.status == 200 else "text/plain; charset=utf-8"
            self.send_response(answer.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler
