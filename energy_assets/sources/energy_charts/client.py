"""Clients for the Energy-Charts API: one interface, a live HTTP implementation and (in `snapshot`) a recorded one.

`EnergyChartsClient` returns parsed JSON per endpoint; validation and normalization live in `responses`.
`LiveEnergyChartsClient` talks to `https://api.energy-charts.info` (or `ENERGY_CHARTS_BASE_URL`):

- a `requests.Session` with an `HTTPAdapter` whose urllib3 `Retry` retries GETs on 429/500/502/503/504 with
  exponential backoff and honours `Retry-After` (the API answers quick repeats with `429, Retry-After: 19`);
- `(connect, read)` timeouts on every socket operation, and an overall deadline per call
  (`request_deadline_s`, retries and the body included): a server that drips a byte every few seconds never
  trips a read timeout, so the call waits at most the deadline and the body read stops there too;
- a size cap (`max_response_bytes`) on the body, counted while it streams in, so a `Content-Length` that lies
  or is absent does not matter;
- a thread-safe rate limiter: at least `min_seconds_between_requests` between requests (the API publishes no
  limits; about one request per second is what others found safe);
- a descriptive User-Agent;
- errors mapped to `EnergyChartsApiError` carrying the server's message: a 400 plain-text body (unknown
  country or zone), a 404 (`/price`: no data for that zone/range), a 422 `{"detail": [...]}`, and 429/5xx
  that persisted through all retries.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import requests
import urllib3

from energy_assets.http import retrying_session, user_agent
from energy_assets.settings import DEFAULT_ENERGY_CHARTS_BASE_URL
from energy_assets.sources.energy_charts import endpoints
from energy_assets.sources.energy_charts.errors import (
    EnergyChartsApiError,
    EnergyChartsDeadlineError,
    EnergyChartsResponseTooLargeError,
)
from energy_assets.sources.energy_charts.responses import parse_json_body

# Five retries honouring `Retry-After: 19` plus backoff must fit in the deadline.
DEFAULT_REQUEST_DEADLINE_S = 300.0
# A 31-day /public_power response for Germany is about 0.7 MB; 50 MiB leaves room without inviting abuse.
DEFAULT_MAX_RESPONSE_BYTES = 50 * 1024 * 1024
# Error bodies are only quoted (500 characters), so only their start is read.
_ERROR_BODY_BYTES = 64 * 1024
_READ_CHUNK_BYTES = 64 * 1024


def default_user_agent(contact: str | None = None) -> str:
    """`energy_assets/0.1.0 (energy data platform; python-requests/2.x[; +contact])`."""
    return user_agent(contact=contact)


@dataclass(frozen=True)
class RequestRecord:
    """One request a client made (or answered from a recording): for metadata and tests."""

    endpoint: str
    params: dict[str, str]


class EnergyChartsClient(ABC):
    """What the assets need from Energy-Charts: parsed JSON per endpoint, one request per call.

    Day ranges are local days, both inclusive; a range of days is one request, so a backfill asks once per
    series and chunk of days rather than once per day or interval.
    """

    def __init__(self) -> None:
        self.requests_made: list[RequestRecord] = []
        self._log_lock = threading.Lock()

    def public_power(self, country: str, start: date, end: date) -> dict[str, Any]:
        """`/public_power` for the local days `start`..`end` (MW per interval, 15-min for DE)."""
        return self._get(endpoints.PUBLIC_POWER, endpoints.public_power_params(country, start, end))

    def price(self, bzn: str, start: date, end: date) -> dict[str, Any]:
        """`/price` (day-ahead) for a bidding zone and the local days `start`..`end`."""
        return self._get(endpoints.PRICE, endpoints.price_params(bzn, start, end))

    def installed_power(self, country: str, time_step: str = "yearly") -> dict[str, Any]:
        """`/installed_power` by `yearly` or `monthly` period (GW)."""
        return self._get(endpoints.INSTALLED_POWER, endpoints.installed_power_params(country, time_step))

    def _get(self, endpoint: str, params: dict[str, str]) -> dict[str, Any]:
        with self._log_lock:
            self.requests_made.append(RequestRecord(endpoint, dict(params)))
        return self.get_json(endpoint, params)

    @abstractmethod
    def get_json(self, endpoint: str, params: Mapping[str, str]) -> dict[str, Any]:
        """The parsed JSON object for `GET /<endpoint>?<params>`."""

    def describe(self) -> str:
        """One line for logs and metadata: which implementation and where it reads from."""
        return type(self).__name__


class RateLimiter:
    """Spaces calls at least `min_interval_s` apart, across threads (the caller sleeps, in order)."""

    def __init__(
        self,
        min_interval_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got {min_interval_s}")
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_allowed: float | None = None

    def acquire(self) -> float:
        """Wait for the next slot; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            waited = 0.0
            if self._next_allowed is not None and now < self._next_allowed:
                waited = self._next_allowed - now
                self._sleep(waited)
                now = self._clock()
            self._next_allowed = now + self.min_interval_s
            return waited


class LiveEnergyChartsClient(EnergyChartsClient):
    """HTTP client for the real API (or anything speaking its shapes at `base_url`)."""

    def __init__(
        self,
        base_url: str = DEFAULT_ENERGY_CHARTS_BASE_URL,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
        max_retries: int = 5,
        backoff_factor_s: float = 2.0,
        backoff_max_s: float = 60.0,
        retry_after_max_s: int = 120,
        min_seconds_between_requests: float = 1.0,
        user_agent: str | None = None,
        request_deadline_s: float = DEFAULT_REQUEST_DEADLINE_S,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        super().__init__()
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not request_deadline_s > 0:
            raise ValueError(f"request_deadline_s must be positive, got {request_deadline_s}")
        if max_response_bytes < 1:
            raise ValueError(f"max_response_bytes must be at least 1, got {max_response_bytes}")
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout_s, read_timeout_s)
        self.request_deadline_s = request_deadline_s
        self.max_response_bytes = max_response_bytes
        self.max_retries = max_retries
        self.rate_limiter = RateLimiter(min_seconds_between_requests)
        self.session, self.retry = retrying_session(
            max_retries=max_retries,
            backoff_factor_s=backoff_factor_s,
            backoff_max_s=backoff_max_s,
            retry_after_max_s=retry_after_max_s,
            agent=user_agent or default_user_agent(),
        )
        self.session.headers["Accept"] = "application/json"

    def describe(self) -> str:
        return f"LiveEnergyChartsClient({self.base_url})"

    def get_json(self, endpoint: str, params: Mapping[str, str]) -> dict[str, Any]:
        self.rate_limiter.acquire()
        transfer = _Transfer(deadline=time.monotonic() + self.request_deadline_s)
        # The request runs in a daemon thread so the deadline also bounds what no socket timeout can: urllib3's
        # retry sleeps and a server dripping its headers. The worker stops reading the body at the deadline.
        outcome: dict[str, Any] = {}
        finished = threading.Event()

        def fetch() -> None:
            try:
                outcome["body"] = self._fetch(endpoint, params, transfer)
            except BaseException as exc:  # handed to the caller below
                outcome["error"] = exc
            finally:
                finished.set()

        threading.Thread(target=fetch, name=f"energy-charts-{endpoint}", daemon=True).start()
        if not finished.wait(self.request_deadline_s):
            transfer.abandoned = True
            raise self._deadline_error(endpoint, params, transfer)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["body"]

    def _fetch(self, endpoint: str, params: Mapping[str, str], transfer: _Transfer) -> dict[str, Any]:
        url = f"{self.base_url}/{endpoint}"
        try:
            response = self.session.get(url, params=dict(params), timeout=self.timeout, stream=True)
        except requests.RequestException as exc:
            raise EnergyChartsApiError(
                endpoint, params, f"no response from {self.base_url} after {self.max_retries} retries ({exc})"
            ) from exc
        with response:
            if response.status_code != 200:
                body = self._read_body(response, endpoint, params, transfer, limit=_ERROR_BODY_BYTES)
                raise _error_for_response(endpoint, params, response, self.max_retries, body=body)
            declared = _declared_length(response)
            if declared is not None and declared > self.max_response_bytes:
                raise self._too_large_error(
                    endpoint, params, response.status_code, f"its Content-Length is {declared} bytes"
                )
            body = self._read_body(response, endpoint, params, transfer, limit=self.max_response_bytes + 1)
            if len(body) > self.max_response_bytes:
                raise self._too_large_error(
                    endpoint,
                    params,
                    response.status_code,
                    f"more than {self.max_response_bytes} bytes arrived",
                )
        return parse_json_body(body, endpoint=endpoint, partition=endpoints.partition_of(params))

    def _read_body(
        self,
        response: requests.Response,
        endpoint: str,
        params: Mapping[str, str],
        transfer: _Transfer,
        *,
        limit: int,
    ) -> bytes:
        """The (decoded) body, at most `limit` bytes, checking the deadline between reads."""
        raw = response.raw
        # `read1` returns whatever one socket read brings, so a dripping server cannot hold a read for long;
        # `read` (urllib3 < 2.3) blocks until a whole chunk arrived, and the caller's deadline still holds.
        read = getattr(raw, "read1", raw.read)
        chunks: list[bytes] = []
        received = 0
        try:
            while received < limit:
                if transfer.abandoned or time.monotonic() >= transfer.deadline:
                    raise self._deadline_error(endpoint, params, transfer)
                chunk = read(min(_READ_CHUNK_BYTES, limit - received), decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
                received += len(chunk)
                transfer.bytes_received = received
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            raise EnergyChartsApiError(
                endpoint,
                params,
                f"the connection broke after {received} bytes of the body ({exc})",
                status=response.status_code,
            ) from exc
        return b"".join(chunks)

    def _deadline_error(
        self, endpoint: str, params: Mapping[str, str], transfer: _Transfer
    ) -> EnergyChartsDeadlineError:
        return EnergyChartsDeadlineError(
            endpoint,
            params,
            f"no complete response within the overall deadline of {self.request_deadline_s:g} s for partition"
            f" {endpoints.partition_of(params)} ({transfer.bytes_received} bytes of the body had arrived);"
            " the server is stalled or very slow. Retry later, or raise request_deadline_s in the"
            " energy_charts resource config (or ask for fewer days per request with max_days_per_request).",
            deadline_s=self.request_deadline_s,
        )

    def _too_large_error(
        self, endpoint: str, params: Mapping[str, str], status: int, evidence: str
    ) -> EnergyChartsResponseTooLargeError:
        return EnergyChartsResponseTooLargeError(
            endpoint,
            params,
            f"response body refused for partition {endpoints.partition_of(params)}: {evidence}, over the limit"
            f" of max_response_bytes={self.max_response_bytes}; nothing of it was kept. Raise"
            " max_response_bytes in the energy_charts resource config, or ask for fewer days per request"
            " with max_days_per_request.",
            max_bytes=self.max_response_bytes,
            status=status,
        )

    def close(self) -> None:
        self.session.close()


@dataclass
class _Transfer:
    """One call's deadline and progress, shared between the caller and the thread doing the request."""

    deadline: float
    bytes_received: int = 0
    abandoned: bool = False


def _declared_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isdigit() else None


def server_message(response: requests.Response, body: bytes | None = None) -> str:
    """The server's explanation: FastAPI `detail` (string or list of `{loc, msg}`) or the plain-text body.

    `body` is the (possibly cut) body already read from a streamed response; without it, `response.content`.
    """
    raw_body = response.content if body is None else body
    try:
        text = raw_body.decode(response.encoding or "utf-8", "replace").strip()
    except LookupError:  # a charset Python does not know
        text = raw_body.decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:500]
    detail = parsed.get("detail") if isinstance(parsed, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        messages = []
        for item in detail:
            if isinstance(item, dict):
                location = ".".join(str(part) for part in item.get("loc", []))
                messages.append(
                    f"{location}: {item.get('msg', item)}" if location else str(item.get("msg", item))
                )
            else:
                messages.append(str(item))
        return "; ".join(messages)
    return text[:500]


def _error_for_response(
    endpoint: str,
    params: Mapping[str, str],
    response: requests.Response,
    max_retries: int,
    *,
    body: bytes | None = None,
) -> EnergyChartsApiError:
    status = response.status_code
    if status == 400:
        problem = "the API rejected the request (check the country or bidding zone code)"
    elif status == 404:
        problem = "the API has no data for this request"
    elif status == 422:
        problem = "the API found the parameters invalid"
    elif status == 429:
        retry_after = response.headers.get("Retry-After")
        problem = (
            f"still rate limited after {max_retries} retries (last Retry-After: {retry_after or 'none'})"
        )
    elif status >= 500:
        problem = f"server error persisted through {max_retries} retries"
    else:
        problem = "unexpected response"
    return EnergyChartsApiError(
        endpoint, params, problem, status=status, server_message=server_message(response, body)
    )
