"""Clients for the Energy-Charts API: one interface, a live HTTP implementation and (in `snapshot`) a recorded one.

`EnergyChartsClient` returns parsed JSON per endpoint; validation and normalization live in `responses`.
`LiveEnergyChartsClient` talks to `https://api.energy-charts.info` (or `ENERGY_CHARTS_BASE_URL`). Its retries,
overall deadline per request, body-size cap and User-Agent come from the shared `energy_assets.http.HttpClient`
(read its docstring for who retries what); this module adds:

- the endpoints, one request per call (`public_power`, `price`, `installed_power`);
- a thread-safe rate limiter: at least `min_seconds_between_requests` between requests (the API publishes no
  limits; about one request per second is what others found safe);
- errors mapped to `EnergyChartsApiError` carrying the server's message: a 400 plain-text body (unknown
  country or zone), a 404 (`/price`: no data for that zone/range), a 422 `{"detail": [...]}`, and 429/5xx
  that persisted through the retries the request's deadline allowed (`client_retried=True`: the step's
  retry policy need not repeat them).

Defaults (`DEFAULT_BUDGET`): 5 s connect and 20 s read timeouts, 4 retries with 1 s exponential backoff, a
`Retry-After` honoured up to 30 s, 45 s per request in all, 50 MiB per body.
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

from energy_assets.http import (
    RETRY_STATUSES,
    Call,
    HttpClient,
    RequestBudget,
    Transfer,
    TransferInterrupted,
    decoded_text,
    retries_made,
    user_agent,
)
from energy_assets.sources.energy_charts import endpoints
from energy_assets.sources.energy_charts.errors import (
    EnergyChartsApiError,
    EnergyChartsDeadlineError,
    EnergyChartsResponseTooLargeError,
    EnergyChartsTransferError,
)
from energy_assets.sources.energy_charts.responses import parse_json_body
from energy_assets.sources.energy_charts.settings import DEFAULT_ENERGY_CHARTS_BASE_URL

# The API answers quick repeats with `429, Retry-After: 19`: two such waits fit in 45 s. With the step's one
# retry (defs/policy.py) a dead API fails a step within 2 x 45 s + the step's pause (see energy_assets.http).
# A 31-day /public_power response for Germany is about 0.7 MB; 50 MiB leaves room without inviting abuse.
DEFAULT_BUDGET = RequestBudget(
    connect_timeout_s=5.0,
    read_timeout_s=20.0,
    max_retries=4,
    backoff_factor_s=1.0,
    backoff_max_s=15.0,
    retry_after_max_s=30,
    request_deadline_s=45.0,
    max_response_bytes=50 * 1024 * 1024,
)
DEFAULT_REQUEST_DEADLINE_S = DEFAULT_BUDGET.request_deadline_s
DEFAULT_MAX_RESPONSE_BYTES = DEFAULT_BUDGET.max_response_bytes


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


class LiveEnergyChartsClient(HttpClient, EnergyChartsClient):
    """HTTP client for the real API (or anything speaking its shapes at `base_url`).

    Retries, the deadline and the body limit come from `HttpClient` (`energy_assets.http`); this class adds
    the endpoints, the rate limit and the mapping to `EnergyChartsApiError`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_ENERGY_CHARTS_BASE_URL,
        *,
        connect_timeout_s: float = DEFAULT_BUDGET.connect_timeout_s,
        read_timeout_s: float = DEFAULT_BUDGET.read_timeout_s,
        max_retries: int = DEFAULT_BUDGET.max_retries,
        backoff_factor_s: float = DEFAULT_BUDGET.backoff_factor_s,
        backoff_max_s: float = DEFAULT_BUDGET.backoff_max_s,
        retry_after_max_s: int = DEFAULT_BUDGET.retry_after_max_s,
        min_seconds_between_requests: float = 1.0,
        user_agent: str | None = None,
        request_deadline_s: float = DEFAULT_REQUEST_DEADLINE_S,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        EnergyChartsClient.__init__(self)
        budget = RequestBudget(
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
            max_retries=max_retries,
            backoff_factor_s=backoff_factor_s,
            backoff_max_s=backoff_max_s,
            retry_after_max_s=retry_after_max_s,
            request_deadline_s=request_deadline_s,
            max_response_bytes=max_response_bytes,
        )
        HttpClient.__init__(self, base_url, budget, agent=user_agent or default_user_agent())
        self.rate_limiter = RateLimiter(min_seconds_between_requests)
        self.session.headers["Accept"] = "application/json"

    @property
    def timeout(self) -> tuple[float, float]:
        return self.budget.timeout

    @property
    def request_deadline_s(self) -> float:
        return self.budget.request_deadline_s

    @property
    def max_response_bytes(self) -> int:
        return self.budget.max_response_bytes

    @property
    def max_retries(self) -> int:
        return self.budget.max_retries

    def describe(self) -> str:
        return f"LiveEnergyChartsClient({self.base_url})"

    def get_json(self, endpoint: str, params: Mapping[str, str]) -> dict[str, Any]:
        self.rate_limiter.acquire()
        body = self.get_body(Call(f"{self.base_url}/{endpoint}", endpoint, dict(params)))
        return parse_json_body(body, endpoint=endpoint, partition=endpoints.partition_of(params))

    # ------------------------------------------------------------------ error hooks (HttpClient)
    def server_message(self, response: requests.Response, body: bytes) -> str:
        return server_message(response, body)

    def error_for_response(
        self, call: Call, response: requests.Response, body: bytes
    ) -> EnergyChartsApiError:
        return _error_for_response(
            call.label, call.params, response, self.max_retries, body=body, deadline_s=self.request_deadline_s
        )

    def no_response_error(self, call: Call, exc: requests.RequestException) -> EnergyChartsApiError:
        return EnergyChartsApiError(
            call.label,
            call.params,
            f"no response from {self.base_url} after {self.max_retries} retries ({exc})",
            client_retried=True,
        )

    def broken_body_error(
        self, call: Call, status: int, interrupted: TransferInterrupted
    ) -> EnergyChartsTransferError:
        return EnergyChartsTransferError(call.label, call.params, str(interrupted), status=status)

    def deadline_error(self, call: Call, transfer: Transfer) -> EnergyChartsDeadlineError:
        return EnergyChartsDeadlineError(
            call.label,
            call.params,
            f"no complete response within the overall deadline of {self.request_deadline_s:g} s for partition"
            f" {endpoints.partition_of(call.params)} ({transfer.bytes_received} bytes of the body had arrived);"
            " the server is stalled or very slow. Retry later, or raise request_deadline_s in the"
            " energy_charts resource config (or ask for fewer days per request with max_days_per_request).",
            deadline_s=self.request_deadline_s,
        )

    def too_large_error(self, call: Call, status: int, evidence: str) -> EnergyChartsResponseTooLargeError:
        return EnergyChartsResponseTooLargeError(
            call.label,
            call.params,
            f"response body refused for partition {endpoints.partition_of(call.params)}: {evidence}, over the"
            f" limit of max_response_bytes={self.max_response_bytes}; nothing of it was kept. Raise"
            " max_response_bytes in the energy_charts resource config, or ask for fewer days per request"
            " with max_days_per_request.",
            max_bytes=self.max_response_bytes,
            status=status,
        )


def server_message(response: requests.Response, body: bytes | None = None) -> str:
    """The server's explanation: FastAPI `detail` (string or list of `{loc, msg}`) or the plain-text body.

    `body` is the (possibly cut) body already read from a streamed response; without it, `response.content`.
    """
    text = decoded_text(response, response.content if body is None else body)
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
    deadline_s: float | None = None,
) -> EnergyChartsApiError:
    status = response.status_code
    retried = retries_made(response)
    # Fewer retries than allowed: the next wait would have ended after the request's deadline.
    cut_short = (
        f"; the next wait would pass the request deadline of {deadline_s:g} s"
        if retried < max_retries and deadline_s is not None
        else ""
    )
    if status == 400:
        problem = "the API rejected the request (check the country or bidding zone code)"
    elif status == 404:
        problem = "the API has no data for this request"
    elif status == 422:
        problem = "the API found the parameters invalid"
    elif status == 429:
        retry_after = response.headers.get("Retry-After")
        problem = f"still rate limited after {retried} retries (last Retry-After: {retry_after or 'none'}){cut_short}"
    elif status >= 500:
        problem = f"server error persisted through {retried} retries{cut_short}"
    else:
        problem = "unexpected response"
    return EnergyChartsApiError(
        endpoint,
        params,
        problem,
        status=status,
        server_message=server_message(response, body),
        client_retried=status in RETRY_STATUSES,
    )
