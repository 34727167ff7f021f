"""The HTTP client base shared by every source client: retries, time budget, body limit, error hooks.

One place for how the platform talks to APIs; a source's client (`sources/energy_charts/client.py`,
`sources/buildings/client.py`) subclasses `HttpClient` and keeps only its endpoints and its error type.

Who retries what (and how long a dead API can hold a run):

1. **urllib3's `Retry`, inside one request** (`DeadlineRetry`): connection errors, 429 (honouring
   `Retry-After`, capped at `retry_after_max_s`) and 500/502/503/504, at most `max_retries` times with
   exponential backoff. A wait that would end after the request's deadline is not taken: the last answer is
   reported at once, with the server's message, instead of sleeping into the deadline.
2. **The request deadline** (`RequestBudget.request_deadline_s`): one request, retries, waits and body
   included, never takes longer. The request runs in a daemon thread so the deadline also bounds what no
   socket timeout can (a server dripping its headers); the body is read with `read1`, so a dripping body
   stops there too.
3. **The source client** retries nothing more, except that a download resumes from the bytes it has
   (`Range`/`If-Range`, `sources/buildings/client.py`).
4. **The step** (`defs/policy.py` `NETWORK_RETRY`) retries once, after a pause. It is meant for what the
   client did not retry itself: the source errors say so in `client_retried`.

So a dead API fails a request within `request_deadline_s`, and a step within 2 x `request_deadline_s` plus
the step's pause. Each source sets its budget (`DEFAULT_BUDGET` in its client module). Every request names
the platform in its User-Agent. No Dagster here.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from energy_assets import __version__

RETRY_STATUSES: tuple[int, ...] = (429, 500, 502, 503, 504)
# Error bodies are only quoted, so only their start is read.
ERROR_BODY_BYTES = 64 * 1024
READ_CHUNK_BYTES = 64 * 1024


def user_agent(*parts: str, contact: str | None = None) -> str:
    """`energy_assets/0.1.0 (energy data platform; <parts>; python-requests/2.x[; +contact])`."""
    items = ["energy data platform", *parts, f"python-requests/{requests.__version__}"]
    if contact:
        items.append(f"+{contact}")
    return f"energy_assets/{__version__} ({'; '.join(items)})"


@dataclass(frozen=True)
class RequestBudget:
    """How long one request may take and how often it is retried (see the module docstring)."""

    connect_timeout_s: float
    read_timeout_s: float
    max_retries: int
    backoff_factor_s: float
    backoff_max_s: float
    retry_after_max_s: int
    request_deadline_s: float
    max_response_bytes: int

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "read_timeout_s", "request_deadline_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("max_retries", "backoff_factor_s", "backoff_max_s", "retry_after_max_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.max_response_bytes < 1:
            raise ValueError(f"max_response_bytes must be at least 1, got {self.max_response_bytes}")

    @property
    def timeout(self) -> tuple[float, float]:
        """`(connect, read)` for requests."""
        return (self.connect_timeout_s, self.read_timeout_s)


class _Deadlines(threading.local):
    """The deadline of the request the current thread is making (`None`: no deadline)."""

    current: float | None = None


class DeadlineRetry(Retry):
    """urllib3 `Retry` that takes no wait (backoff or `Retry-After`) ending after the request's deadline."""

    def __init__(self, *args: Any, deadlines: _Deadlines | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadlines = deadlines if deadlines is not None else _Deadlines()

    def new(self, **kw: Any) -> DeadlineRetry:
        renewed = super().new(**kw)
        renewed.deadlines = self.deadlines
        return renewed

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> DeadlineRetry:
        renewed = super().increment(method, url, response, error, _pool, _stacktrace)
        deadline = self.deadlines.current
        if deadline is None:
            return renewed
        wait = renewed.get_retry_after(response) if response is not None else None
        if wait is None:
            wait = renewed.get_backoff_time()
        if time.monotonic() + wait >= deadline:
            # With raise_on_status=False urllib3 hands back the last 429/5xx; an error is raised as usual.
            reason = error or ResponseError(f"the next wait of {wait:g} s would pass the request deadline")
            raise MaxRetryError(_pool, url, reason) from reason
        return renewed


def retrying_session(
    budget: RequestBudget, *, agent: str, methods: Iterable[str] = ("GET",)
) -> tuple[requests.Session, DeadlineRetry]:
    """A session whose adapters retry connection errors and 429/5xx within `budget`."""
    retry = DeadlineRetry(
        total=budget.max_retries,
        connect=budget.max_retries,
        read=budget.max_retries,
        status=budget.max_retries,
        backoff_factor=budget.backoff_factor_s,
        backoff_max=budget.backoff_max_s,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset(methods),
        respect_retry_after_header=True,
        retry_after_max=budget.retry_after_max_s,
        # Hand back the last 429/5xx instead of raising, so the error can quote the server's message.
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = agent
    return session, retry


@dataclass(frozen=True)
class Call:
    """One logical request, as errors name it: `label` is what the source calls it (endpoint, url)."""

    url: str
    label: str
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Transfer:
    """One request's deadline and progress, shared between the caller and the thread doing it."""

    deadline: float
    bytes_received: int = 0
    abandoned: bool = False


class TransferInterrupted(Exception):
    """The connection broke (or stalled past the read timeout) while the body was arriving."""

    def __init__(self, received: int, cause: BaseException) -> None:
        self.received = received
        self.cause = cause
        super().__init__(f"the connection broke after {received} bytes of the body ({cause})")


def retries_made(response: requests.Response) -> int:
    """How many times urllib3 retried before this (final) answer."""
    retries = getattr(response.raw, "retries", None)
    return len(retries.history) if retries is not None else 0


def iter_body(response: requests.Response, *, chunk_bytes: int = READ_CHUNK_BYTES) -> Iterator[bytes]:
    """The decoded body as it arrives: every byte received is handed over before a break is raised.

    `read1` returns whatever one socket read brings, so bytes that arrived before the connection broke are
    never lost in a half-filled buffer (a download resumes from exactly there), and a dripping server cannot
    hold one read for long. A broken or stalled connection raises `TransferInterrupted`.
    """
    raw = response.raw
    # urllib3 < 2.3 has no `read1`: small reads keep what a break can lose small.
    read = getattr(raw, "read1", None) or (lambda amount, **kw: raw.read(min(amount, 16 * 1024), **kw))
    received = 0
    while True:
        try:
            chunk = read(chunk_bytes, decode_content=True)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            raise TransferInterrupted(received, exc) from exc
        if not chunk:
            return
        received += len(chunk)
        yield chunk


class HttpClient(ABC):
    """A source's live client: a retrying session, a deadline per request, a body limit, error hooks.

    Subclasses name their errors through the hooks (`error_for_response`, `no_response_error`,
    `deadline_error`, `too_large_error`, `broken_body_error`) and quote the server with `server_message`.
    """

    def __init__(
        self,
        base_url: str,
        budget: RequestBudget,
        *,
        agent: str,
        methods: Iterable[str] = ("GET",),
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.budget = budget
        self.session, self.retry = retrying_session(budget, agent=agent, methods=methods)

    # ------------------------------------------------------------------ what subclasses name
    @abstractmethod
    def server_message(self, response: requests.Response, body: bytes) -> str:
        """The server's explanation in a few hundred characters, from its API's error shape."""

    @abstractmethod
    def error_for_response(self, call: Call, response: requests.Response, body: bytes) -> Exception:
        """The error for a final non-success answer (`body`: its start)."""

    @abstractmethod
    def no_response_error(self, call: Call, exc: requests.RequestException) -> Exception:
        """No answer at all after urllib3's retries (refused, reset, DNS, timeouts)."""

    @abstractmethod
    def deadline_error(self, call: Call, transfer: Transfer) -> Exception:
        """No complete answer within the request deadline."""

    @abstractmethod
    def too_large_error(self, call: Call, status: int, evidence: str) -> Exception:
        """A body over `max_response_bytes`; `evidence` says how that is known."""

    @abstractmethod
    def broken_body_error(self, call: Call, status: int, interrupted: TransferInterrupted) -> Exception:
        """The connection broke (or stalled past the read timeout) during the body."""

    # ------------------------------------------------------------------ requests
    def get_body(self, call: Call, *, headers: Mapping[str, str] | None = None) -> bytes:
        """The body of a 200 answer, within the deadline and the size limit; anything else raises a hook's error."""
        transfer = Transfer(deadline=time.monotonic() + self.budget.request_deadline_s)
        outcome: dict[str, Any] = {}
        finished = threading.Event()

        def fetch() -> None:
            try:
                outcome["body"] = self._fetch(call, headers, transfer)
            except BaseException as exc:  # handed to the caller below
                outcome["error"] = exc
            finally:
                finished.set()

        threading.Thread(target=fetch, name=f"http-{call.label}", daemon=True).start()
        if not finished.wait(self.budget.request_deadline_s):
            transfer.abandoned = True
            raise self.deadline_error(call, transfer)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["body"]

    def open(
        self, call: Call, *, headers: Mapping[str, str] | None = None, deadline: float | None = None
    ) -> requests.Response:
        """A streamed answer (any status), urllib3 retrying within `deadline` (default: the request deadline)."""
        self.retry.deadlines.current = (
            deadline if deadline is not None else time.monotonic() + self.budget.request_deadline_s
        )
        try:
            return self.session.get(
                call.url,
                params=dict(call.params),
                headers=dict(headers or {}),
                timeout=self.budget.timeout,
                stream=True,
            )
        except requests.RequestException as exc:
            raise self.no_response_error(call, exc) from exc
        finally:
            self.retry.deadlines.current = None

    def _fetch(self, call: Call, headers: Mapping[str, str] | None, transfer: Transfer) -> bytes:
        with self.open(call, headers=headers, deadline=transfer.deadline) as response:
            if response.status_code != 200:
                body = self._read(call, response, transfer, limit=ERROR_BODY_BYTES)
                raise self.error_for_response(call, response, body)
            declared = _declared_length(response)
            limit = self.budget.max_response_bytes
            if declared is not None and declared > limit:
                raise self.too_large_error(
                    call, response.status_code, f"its Content-Length is {declared} bytes"
                )
            body = self._read(call, response, transfer, limit=limit + 1)
            if len(body) > limit:
                raise self.too_large_error(call, response.status_code, f"more than {limit} bytes arrived")
            return body

    def _read(self, call: Call, response: requests.Response, transfer: Transfer, *, limit: int) -> bytes:
        """At most `limit` bytes of the body, checking the deadline between reads."""
        chunks: list[bytes] = []
        try:
            for chunk in iter_body(response, chunk_bytes=min(READ_CHUNK_BYTES, limit)):
                if transfer.abandoned or time.monotonic() >= transfer.deadline:
                    raise self.deadline_error(call, transfer)
                chunks.append(chunk)
                transfer.bytes_received += len(chunk)
                if transfer.bytes_received >= limit:
                    break
        except TransferInterrupted as interrupted:
            raise self.broken_body_error(call, response.status_code, interrupted) from interrupted.cause
        return b"".join(chunks)[:limit]

    def close(self) -> None:
        self.session.close()


def _declared_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isdigit() else None


def decoded_text(response: requests.Response, body: bytes) -> str:
    """`body` as text in the answer's charset (UTF-8 when unknown), stripped."""
    try:
        return body.decode(response.encoding or "utf-8", "replace").strip()
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", "replace").strip()
