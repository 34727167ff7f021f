"""Zenodo clients: one interface, a live HTTP implementation and (in `snapshot`) the bundled sample.

`ZenodoClient` resolves a record (id, DOI or URL) and its latest version and downloads one file into a
`DownloadCache`, where it is verified (size and md5) before it is published. `LiveZenodoClient` speaks the
Zenodo REST API (`ZENODO_BASE_URL`, default `https://zenodo.org`), the way PUDL's datastore does and stricter:

- `GET /api/records/{id}`; the latest version is `GET /api/records/{id}/versions/latest` (a redirect), because
  `GET /api/records/{conceptrecid}` answers 404;
- files are picked by exact key (keys contain `/`: percent-encoded in URLs), never by substring;
- retries (connection errors, 429 honouring `Retry-After`, 5xx), a deadline per request (60 s) and the size
  limit of record answers come from the shared `energy_assets.http.HttpClient`; a descriptive User-Agent (Zenodo
  throttles generic `python-requests` clients); an optional access token sent as `Authorization: Bearer`;
- downloads stream into `<entry>.part`, every byte written as it arrives; a broken or stalled download (read
  timeout) resumes with `Range: bytes=<bytes on disk>-` and `If-Range` (the ETag or Last-Modified of the first
  answer), at most `max_resumes` times and within `download_deadline_s` (4 h); a server that ignores the
  range (200 instead of 206), answers 416, or sends a range that does not start where asked makes the
  download start again from byte 0;
- 404, 410 (tombstone), restricted/embargoed records (no files), persistent 429 and 5xx (HTML bodies too) become
  `ZenodoApiError` subclasses quoting the server.
"""

from __future__ import annotations

import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import requests

from energy_assets.http import (
    ERROR_BODY_BYTES,
    RETRY_STATUSES,
    Call,
    HttpClient,
    RequestBudget,
    Transfer,
    TransferInterrupted,
    decoded_text,
    iter_body,
    retries_made,
    user_agent,
)
from energy_assets.sources.buildings.cache import CachedFile, DownloadCache
from energy_assets.sources.buildings.errors import (
    ZenodoApiError,
    ZenodoDownloadError,
    ZenodoRecordGoneError,
    ZenodoRecordNotFoundError,
    ZenodoTransferError,
)
from energy_assets.sources.buildings.settings import DEFAULT_ZENODO_BASE_URL
from energy_assets.sources.buildings.zenodo_records import (
    RecordVersion,
    ZenodoFile,
    ZenodoRecord,
    parse_record,
    parse_record_id,
)

DOWNLOAD_CHUNK_BYTES = 1 << 20
# Record requests: 10 s to connect, 30 s per read, 4 retries, 60 s in all. Downloads: 4 h (595 MB at 40 kB/s).
DEFAULT_BUDGET = RequestBudget(
    connect_timeout_s=10.0,
    read_timeout_s=30.0,
    max_retries=4,
    backoff_factor_s=1.0,
    backoff_max_s=15.0,
    retry_after_max_s=30,
    request_deadline_s=60.0,
    max_response_bytes=10 * 1024 * 1024,
)
DEFAULT_DOWNLOAD_DEADLINE_S = 4 * 3600.0


def default_user_agent(contact: str | None = None) -> str:
    """`energy_assets/0.1.0 (energy data platform; buildings source; python-requests/2.x[; +contact])`."""
    return user_agent("buildings source", contact=contact)


class ZenodoClient(ABC):
    """What the buildings assets need from Zenodo: records, their latest version, verified downloads."""

    #: Cache namespace: downloads from different servers (or the sample) never share a cache entry.
    namespace: str = "zenodo"

    @abstractmethod
    def record(self, record: str | int) -> ZenodoRecord:
        """The record with this id, DOI (`10.5281/zenodo.<id>`) or URL."""

    @abstractmethod
    def latest_record(self, record: str | int) -> ZenodoRecord:
        """The newest version of the record family that `record` (any version's id) belongs to."""

    @abstractmethod
    def download(self, file: ZenodoFile, cache: DownloadCache) -> CachedFile:
        """`file` verified (size, md5) in `cache`; reuses an earlier verified copy."""

    def latest_version(self, record: str | int) -> RecordVersion:
        """The newest version's id, DOI and label: the pure function behind a new-version sensor."""
        return self.latest_record(record).version_info

    def cache_for(self, root: str) -> DownloadCache:
        return DownloadCache(root, self.namespace)

    def describe(self) -> str:
        return type(self).__name__


def fetch_file(client: ZenodoClient, record: str | int, key: str, cache: DownloadCache) -> CachedFile:
    """Resolve `record`, pick the file with exactly `key`, and return it verified from `cache`."""
    return client.download(client.record(record).file(key), cache)


class LiveZenodoClient(HttpClient, ZenodoClient):
    """HTTP client for Zenodo (or anything speaking its API at `base_url`).

    Retries, the deadline per request and the body limit come from `HttpClient` (`energy_assets.http`);
    this class adds the record endpoints, the resumable download and the mapping to `ZenodoApiError`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_ZENODO_BASE_URL,
        *,
        access_token: str | None = None,
        connect_timeout_s: float = DEFAULT_BUDGET.connect_timeout_s,
        read_timeout_s: float = DEFAULT_BUDGET.read_timeout_s,
        max_retries: int = DEFAULT_BUDGET.max_retries,
        backoff_factor_s: float = DEFAULT_BUDGET.backoff_factor_s,
        backoff_max_s: float = DEFAULT_BUDGET.backoff_max_s,
        retry_after_max_s: int = DEFAULT_BUDGET.retry_after_max_s,
        request_deadline_s: float = DEFAULT_BUDGET.request_deadline_s,
        max_resumes: int = 10,
        download_deadline_s: float = DEFAULT_DOWNLOAD_DEADLINE_S,
        user_agent: str | None = None,
        chunk_bytes: int = DOWNLOAD_CHUNK_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        budget = RequestBudget(
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
            max_retries=max_retries,
            backoff_factor_s=backoff_factor_s,
            backoff_max_s=backoff_max_s,
            retry_after_max_s=retry_after_max_s,
            request_deadline_s=request_deadline_s,
            max_response_bytes=DEFAULT_BUDGET.max_response_bytes,
        )
        HttpClient.__init__(
            self, base_url, budget, agent=user_agent or default_user_agent(), methods=("GET", "HEAD")
        )
        self.namespace = urlsplit(self.base_url).netloc.replace(":", "_")
        self.max_resumes = max_resumes
        self.download_deadline_s = download_deadline_s
        self.chunk_bytes = chunk_bytes
        self._clock = clock
        if access_token:
            # requests drops this header on redirects to another host.
            self.session.headers["Authorization"] = f"Bearer {access_token}"

    @property
    def timeout(self) -> tuple[float, float]:
        return self.budget.timeout

    @property
    def max_retries(self) -> int:
        return self.budget.max_retries

    def describe(self) -> str:
        return f"LiveZenodoClient({self.base_url})"

    # ------------------------------------------------------------------ error hooks (HttpClient)
    def server_message(self, response: requests.Response, body: bytes) -> str:
        return server_message(response, body)

    def error_for_response(self, call: Call, response: requests.Response, body: bytes) -> ZenodoApiError:
        return error_for_response(call.url, response, self.max_retries, body=body)

    def no_response_error(self, call: Call, exc: requests.RequestException) -> ZenodoApiError:
        return ZenodoApiError(
            call.url, f"no answer after {self.max_retries} retries ({exc})", client_retried=True
        )

    def deadline_error(self, call: Call, transfer: Transfer) -> ZenodoApiError:
        return ZenodoApiError(
            call.url,
            f"no complete answer within the request deadline of {self.budget.request_deadline_s:g} s"
            f" ({transfer.bytes_received} bytes had arrived); Zenodo is stalled or very slow, try again later",
            client_retried=True,
        )

    def too_large_error(self, call: Call, status: int, evidence: str) -> ZenodoApiError:
        return ZenodoApiError(
            call.url,
            f"the record description is refused: {evidence}, over {self.budget.max_response_bytes} bytes",
            status=status,
        )

    def broken_body_error(self, call: Call, status: int, interrupted: TransferInterrupted) -> ZenodoApiError:
        return ZenodoTransferError(call.url, str(interrupted), status=status)

    # ------------------------------------------------------------------ records
    def record(self, record: str | int) -> ZenodoRecord:
        return self._get_record(f"{self.base_url}/api/records/{parse_record_id(record)}")

    def latest_record(self, record: str | int) -> ZenodoRecord:
        return self._get_record(f"{self.base_url}/api/records/{parse_record_id(record)}/versions/latest")

    def _get_record(self, url: str) -> ZenodoRecord:
        body = self.get_body(Call(url, "record"), headers={"Accept": "application/json"})
        try:
            parsed = json.loads(body)
        except ValueError:
            excerpt = " ".join(body[:300].decode("utf-8", "replace").split())
            raise ZenodoApiError(url, "the answer is not JSON", status=200, server_message=excerpt) from None
        return parse_record(parsed, base_url=self.base_url, url=url)

    # ------------------------------------------------------------------ downloads
    def download(self, file: ZenodoFile, cache: DownloadCache) -> CachedFile:
        cached = cache.lookup(file)
        if cached is not None:
            return cached
        part = cache.part_path(file)
        part.parent.mkdir(parents=True, exist_ok=True)
        deadline = self._clock() + self.download_deadline_s
        first_offset = _size(part)
        breaks = restarts = 0
        while True:
            offset = _size(part)
            if offset > file.size:
                cache.discard_partial(file)
                restarts += 1
                continue
            if offset == file.size:
                break
            try:
                restarted = self._transfer(file, cache, offset, deadline)
            except TransferInterrupted as interrupted:
                breaks += 1
                if breaks > self.max_resumes:
                    raise ZenodoDownloadError(
                        file.content_url,
                        f"the connection broke {breaks} times; {_size(part):,} of {file.size:,} bytes are"
                        f" kept in {part} and the next run resumes from there ({interrupted.cause})",
                        client_retried=True,
                    ) from interrupted.cause
                self._pause(min(self.budget.backoff_factor_s * 2 ** (breaks - 1), 30.0), deadline, file, part)
                continue
            restarts += restarted
            if _size(part) < file.size:
                breaks += 1  # the server closed the body early without an error
                if breaks > self.max_resumes:
                    raise ZenodoDownloadError(
                        file.content_url,
                        f"the server kept closing the download early; {_size(part):,} of {file.size:,}"
                        f" bytes are kept in {part}; run again to resume",
                        client_retried=True,
                    )
        return cache.verify_and_publish(
            file, resumed_from_bytes=first_offset if restarts == 0 else 0, restarts=restarts
        )

    def _transfer(self, file: ZenodoFile, cache: DownloadCache, offset: int, deadline: float) -> int:
        """One GET of the rest of the file, appended to the partial file; returns 1 if it restarted at 0.

        Every byte that arrives is written before a break is raised (`iter_body`), so the next GET asks
        for `Range: bytes=<what is on disk>-`.
        """
        headers = {"Accept": "*/*", "Accept-Encoding": "identity"}
        validator = cache.read_validator(file)
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if validator:
                headers["If-Range"] = validator
        part = cache.part_path(file)
        url = file.content_url
        # urllib3's retries of this GET stay within one request deadline (and the download's).
        open_deadline = time.monotonic() + min(
            self.budget.request_deadline_s, max(deadline - self._clock(), 0.0)
        )
        with self.open(Call(url, "content"), headers=headers, deadline=open_deadline) as response:
            restarted = 0
            if response.status_code == 206 and offset:
                if _content_range_start(response) != offset:
                    cache.discard_partial(file)
                    return 1
                mode = "ab"
            elif response.status_code == 200:
                mode = "wb"  # no range asked, or the server ignored it / the file changed (If-Range failed)
                restarted = 1 if offset else 0
            elif response.status_code == 416:
                cache.discard_partial(file)
                return 1
            else:
                body = response.raw.read(ERROR_BODY_BYTES, decode_content=True) or b""
                raise error_for_response(url, response, self.max_retries, body=body)
            cache.write_validator(file, _validator(response))
            with open(part, mode) as handle:
                for chunk in iter_body(response, chunk_bytes=self.chunk_bytes):
                    handle.write(chunk)
                    if self._clock() > deadline:
                        handle.flush()
                        raise ZenodoDownloadError(
                            url,
                            f"the download deadline of {self.download_deadline_s:.0f} s passed with"
                            f" {handle.tell():,} of {file.size:,} bytes; they are kept in {part} and the next"
                            " run resumes from there (raise the deadline for slow links)",
                            client_retried=True,
                        )
        return restarted

    def _pause(self, seconds: float, deadline: float, file: ZenodoFile, part: Path) -> None:
        if self._clock() + seconds > deadline:
            raise ZenodoDownloadError(
                file.content_url,
                f"the download deadline of {self.download_deadline_s:.0f} s passed; the partial file {part} is"
                " kept and the next run resumes from there",
                client_retried=True,
            )
        time.sleep(seconds)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _content_range_start(response: requests.Response) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _validator(response: requests.Response) -> str | None:
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):  # If-Range needs a strong validator
        return etag
    return response.headers.get("Last-Modified")


def server_message(response: requests.Response, body: bytes | None = None) -> str:
    """A short excerpt of the answer: JSON `message` (and tombstone note), an HTML `<title>`, or the text.

    `body` is the (possibly cut) body already read from a streamed answer; without it, `response.content`.
    """
    content_type = response.headers.get("Content-Type", "")
    text = decoded_text(response, response.content if body is None else body)
    if "html" in content_type or text.lstrip().lower().startswith(("<!doctype html", "<html")):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        plain = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
        return "HTML page: " + " ".join(plain.split())[:200]
    try:
        parsed = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300]
    if isinstance(parsed, dict):
        parts = [str(parsed["message"])] if parsed.get("message") else []
        tombstone = parsed.get("tombstone") or {}
        if isinstance(tombstone, dict):
            reason = tombstone.get("removal_reason")
            if isinstance(reason, dict):
                reason = (
                    reason.get("title", {}).get("en")
                    if isinstance(reason.get("title"), dict)
                    else reason.get("id")
                )
            for label, value in (("reason", reason), ("note", tombstone.get("note"))):
                if value:
                    parts.append(f"{label}: {value}")
        if parts:
            return "; ".join(parts)[:300]
    return " ".join(text.split())[:300]


def error_for_response(
    url: str, response: requests.Response, max_retries: int, *, body: bytes | None = None
) -> ZenodoApiError:
    """The specific error for a non-success answer (`body`: its start, when already read)."""
    status = response.status_code
    message = server_message(response, body)
    retried = retries_made(response)
    if status == 410:
        return ZenodoRecordGoneError(
            url,
            "the record was deleted (tombstone); pin another record or version",
            status=status,
            server_message=message,
        )
    if status == 404:
        return ZenodoRecordNotFoundError(
            url,
            "no such record or file; a concept record id answers 404 too: use a version's id (or its DOI)",
            status=status,
            server_message=message,
        )
    if status in (401, 403):
        problem = (
            "access denied: the record or file is restricted; set ZENODO_ACCESS_TOKEN to a token with access"
        )
    elif status == 429:
        problem = (
            f"still rate limited after {retried} retries (Retry-After: {response.headers.get('Retry-After', 'none')},"
            f" X-RateLimit-Reset: {response.headers.get('X-RateLimit-Reset', 'none')}); try again later"
        )
    elif status >= 500:
        problem = f"Zenodo server error persisted through {retried} retries; try again later"
    else:
        problem = "unexpected answer"
    if status in RETRY_STATUSES and retried < max_retries:
        problem += " (the next wait would have passed the request deadline)"
    return ZenodoApiError(
        url, problem, status=status, server_message=message, client_retried=status in RETRY_STATUSES
    )
