"""HTTP plumbing shared by every source client: a retrying `requests` session and the User-Agent.

One place for how the platform talks to APIs: urllib3's `Retry` retries 429 and 5xx with exponential
backoff, honouring `Retry-After` (capped), and hands back the last error response instead of raising, so
a client can quote the server's message; every request names the platform in its User-Agent. Sources
keep their own error mapping and endpoints. No Dagster here.
"""

from __future__ import annotations

from collections.abc import Iterable

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from energy_assets import __version__

RETRY_STATUSES: tuple[int, ...] = (429, 500, 502, 503, 504)


def user_agent(*parts: str, contact: str | None = None) -> str:
    """`energy_assets/0.1.0 (energy data platform; <parts>; python-requests/2.x[; +contact])`."""
    items = ["energy data platform", *parts, f"python-requests/{requests.__version__}"]
    if contact:
        items.append(f"+{contact}")
    return f"energy_assets/{__version__} ({'; '.join(items)})"


def retrying_session(
    *,
    max_retries: int,
    backoff_factor_s: float,
    backoff_max_s: float,
    retry_after_max_s: int,
    agent: str,
    methods: Iterable[str] = ("GET",),
) -> tuple[requests.Session, Retry]:
    """A session whose adapters retry 429/5xx (and connection errors) `max_retries` times."""
    retry = Retry(
        total=max_retries,
        connect=max_retries,
        read=max_retries,
        status=max_retries,
        backoff_factor=backoff_factor_s,
        backoff_max=backoff_max_s,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset(methods),
        respect_retry_after_header=True,
        retry_after_max=retry_after_max_s,
        # Hand back the last 429/5xx instead of raising, so the error can quote the server's message.
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = agent
    return session, retry
