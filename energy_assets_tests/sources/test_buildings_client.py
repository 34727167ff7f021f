"""The live Zenodo client against a local server speaking Zenodo's shapes: records, versions, verified downloads."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from energy_assets.errors import ConfigurationError
from energy_assets.sources.buildings.cache import DownloadCache
from energy_assets.sources.buildings.client import LiveZenodoClient, fetch_file
from energy_assets.sources.buildings.errors import (
    ChecksumMismatchError,
    ZenodoApiError,
    ZenodoDownloadError,
    ZenodoFilesUnavailableError,
    ZenodoRecordGoneError,
    ZenodoRecordNotFoundError,
)
from energy_assets.sources.buildings.settings import BDG2_FILE_KEY
from energy_assets.sources.buildings.zenodo_records import content_path, parse_record_id
from energy_assets_tests.sources.zenodo_server import HTML_504, Scripted, ZenodoTestServer

RECORD = 3887306
# Not a zip: the client only moves and verifies bytes. 300 kB so an interruption lands mid-file.
CONTENT = bytes(range(256)) * 1200
MD5 = hashlib.md5(CONTENT, usedforsecurity=False).hexdigest()


@pytest.fixture(scope="module")
def _server() -> Iterator[ZenodoTestServer]:
    server = ZenodoTestServer().start()
    yield server
    server.stop()


@pytest.fixture
def server(_server: ZenodoTestServer) -> ZenodoTestServer:
    _server.reset()
    _server.add_record(RECORD, {BDG2_FILE_KEY: CONTENT})
    return _server


@pytest.fixture
def client(server: ZenodoTestServer) -> Iterator[LiveZenodoClient]:
    live = LiveZenodoClient(
        server.base_url,
        access_token="secret-token",
        connect_timeout_s=2.0,
        read_timeout_s=5.0,
        max_retries=3,
        backoff_factor_s=0.01,
        backoff_max_s=0.1,
        retry_after_max_s=5,
        max_resumes=3,
        chunk_bytes=16 * 1024,
    )
    yield live
    live.close()


@pytest.fixture
def cache(tmp_path: Path, client: LiveZenodoClient) -> DownloadCache:
    return client.cache_for(str(tmp_path / "cache"))


def test_record_ids_dois_and_urls_resolve_to_the_record_id() -> None:
    assert parse_record_id("3887306") == 3887306
    assert parse_record_id(3887306) == 3887306
    assert parse_record_id("10.5281/zenodo.3887306") == 3887306
    assert parse_record_id("https://doi.org/10.5281/zenodo.3887306") == 3887306
    assert parse_record_id("https://zenodo.org/records/3887306") == 3887306
    with pytest.raises(ConfigurationError, match="not a Zenodo record id"):
        parse_record_id("building-data-genome-project-2")


def test_the_key_with_a_slash_is_percent_encoded_in_the_content_url() -> None:
    assert content_path(RECORD, BDG2_FILE_KEY) == (
        "/api/records/3887306/files/buds-lab%2Fbuilding-data-genome-project-2-v1.0.zip/content"
    )


def test_record_lists_files_with_size_and_md5(client: LiveZenodoClient, server: ZenodoTestServer) -> None:
    record = client.record("10.5281/zenodo.3887306")

    assert record.record_id == RECORD
    assert record.concept_record_id == "3887305"
    [file] = record.files
    assert (file.key, file.size, file.md5) == (BDG2_FILE_KEY, len(CONTENT), MD5)
    [request] = server.requests
    assert request.path == "/api/records/3887306"
    assert request.headers["User-Agent"].startswith("energy_assets/")
    assert "buildings source" in request.headers["User-Agent"]
    assert request.headers["Authorization"] == "Bearer secret-token"


def test_a_checksum_without_the_md5_prefix_is_accepted(
    client: LiveZenodoClient, server: ZenodoTestServer
) -> None:
    server.add_record(4000000, {"data.csv": b"a,b\r\n"}, concept_record_id="4000001", checksum_prefix=False)

    assert client.record(4000000).file("data.csv").md5 == hashlib.md5(b"a,b\r\n").hexdigest()


def test_latest_version_follows_the_versions_latest_redirect(
    client: LiveZenodoClient, server: ZenodoTestServer
) -> None:
    server.add_record(3887307, {BDG2_FILE_KEY: CONTENT + b"v2"})

    latest = client.latest_version(RECORD)

    assert latest.record_id == 3887307
    assert latest.cursor == "3887307"
    assert [request.path for request in server.requests] == [
        "/api/records/3887306/versions/latest",
        "/api/records/3887307",
    ]


def test_a_concept_record_id_answers_404_with_advice(client: LiveZenodoClient) -> None:
    with pytest.raises(ZenodoRecordNotFoundError, match="concept record id answers 404 too"):
        client.record(3887305)


def test_download_verifies_md5_and_publishes_under_record_and_key(
    client: LiveZenodoClient, server: ZenodoTestServer, cache: DownloadCache, tmp_path: Path
) -> None:
    cached = fetch_file(client, RECORD, BDG2_FILE_KEY, cache)

    expected = (
        tmp_path
        / "cache"
        / cache.namespace
        / "3887306"
        / "buds-lab"
        / "building-data-genome-project-2-v1.0.zip"
    )
    assert cached.path == expected
    assert cached.path.read_bytes() == CONTENT
    assert cached.downloaded
    assert not cache.part_path(cached.file).exists()
    [content_request] = server.requests_of("content")
    assert (
        content_request.path
        == "/api/records/3887306/files/buds-lab%2Fbuilding-data-genome-project-2-v1.0.zip/content"
    )

    again = fetch_file(client, RECORD, BDG2_FILE_KEY, cache)

    assert not again.downloaded
    assert len(server.requests_of("content")) == 1


def test_a_new_version_is_a_new_cache_entry(
    client: LiveZenodoClient, server: ZenodoTestServer, cache: DownloadCache
) -> None:
    server.add_record(3887307, {BDG2_FILE_KEY: CONTENT + b"v2"})

    first = fetch_file(client, RECORD, BDG2_FILE_KEY, cache)
    second = fetch_file(client, client.latest_version(RECORD).record_id, BDG2_FILE_KEY, cache)

    assert first.path != second.path
    assert second.path.read_bytes() == CONTENT + b"v2"
    assert first.path.read_bytes() == CONTENT


def test_a_wrong_md5_raises_and_caches_nothing(
    client: LiveZenodoClient, server: ZenodoTestServer, cache: DownloadCache, tmp_path: Path
) -> None:
    server.add_record(RECORD, {BDG2_FILE_KEY: CONTENT}, listed_md5={BDG2_FILE_KEY: "0" * 32})

    with pytest.raises(ChecksumMismatchError, match="md5 mismatch") as raised:
        fetch_file(client, RECORD, BDG2_FILE_KEY, cache)

    assert raised.value.expected == "0" * 32
    assert raised.value.actual == MD5
    assert [path for path in (tmp_path / "cache").rglob("*") if path.is_file()] == []


def test_an_interrupted_download_resumes_with_range_and_if_range(
    client: LiveZenodoClient, server: ZenodoTestServer, cache: DownloadCache
) -> None:
    server.cut_after.append(100_000)

    cached = fetch_file(client, RECORD, BDG2_FILE_KEY, cache)

    assert cached.path.read_bytes() == CONTENT
    first, second = server.requests_of("content")
    assert "Range" not in first.headers
    # Every byte that arrived was kept: the download resumes exactly where the connection broke.
    assert second.headers["Range"] == "bytes=100000-"
    assert second.headers["If-Range"] == '"' + MD5 + '"'
    assert cached.restarts == 0


@pytest.mark.parametrize("ignore_range", [False, True])
def test_a_download_cut_inside_the_first_read_resumes_from_the_bytes_received(
    server: ZenodoTestServer, tmp_path: Path, ignore_range: bool
) -> None:
    # The default read size (1 MiB) is far larger than what arrived before the cut: those 20,000 bytes
    # must still be on disk, so the second GET asks for the rest.
    live = LiveZenodoClient(server.base_url, backoff_factor_s=0.01)
    cache = live.cache_for(str(tmp_path / "cache"))
    server.ignore_range = ignore_range
    server.cut_after.append(20_000)

    cached = fetch_file(live, RECORD, BDG2_FILE_KEY, cache)
    live.close()

    assert cached.path.read_bytes() == CONTENT
    first, second = server.requests_of("content")
    assert "Range" not in first.headers
    assert second.headers["Range"] == "bytes=20000-"
    assert second.headers["If-Range"] == '"' + MD5 + '"'
    # A server that ignores the range answers 200 with the whole file: it is written from byte 0.
    assert (cached.restarts, cached.resumed_from_bytes) == ((1, 0) if ignore_range else (0, 0))


def test_a_partial_file_left_by_an_earlier_run_is_resumed(
    client: LiveZenodoClient, server: ZenodoTestServer, cache: DownloadCache
) -> None:
    server.cut_after.extend([50_000, 50_000, 50_000, 50_000])  # more breaks than max_resumes allows
    with pytest.raises(ZenodoDownloadError, match="resumes from there"):
        fetch_file(client, RECORD, BDG2_FILE_KEY, cache)
    file = client.record(RECORD).file(BDG2_FILE_KEY)
    kept = cache.part_path(file).stat().st_size
    assert 150_000 < kept <= 200_000

    cached = client.download(file, cache)

    assert cached.path.read_bytes() == CONTENT
    assert cached.resumed_from_bytes == kept
    assert server.requests_of("content")[-1].headers["Range"] == f"bytes={kept}-"


def test_a_server_that_ignores_range_still_gives_a_correct_file(
    client: LiveZenodoClient, server: ZenodoTestServer, cache: DownloadCache
) -> None:
    server.ignore_range = True
    server.cut_after.append(120_000)

    cached = fetch_file(client, RECORD, BDG2_FILE_KEY, cache)

    assert cached.path.read_bytes() == CONTENT
    assert cached.restarts == 1
    assert server.requests_of("content")[1].headers["Range"].startswith("bytes=")


def test_410_gives_a_tombstone_error(client: LiveZenodoClient, server: ZenodoTestServer) -> None:
    server.delete_record(RECORD)

    with pytest.raises(ZenodoRecordGoneError) as raised:
        client.record(RECORD)

    assert raised.value.status == 410
    message = str(raised.value)
    assert "the record was deleted" in message
    assert "The record has been deleted." in message
    assert "Spam record, removed by Zenodo staff." in message


def test_a_restricted_record_says_so(client: LiveZenodoClient, server: ZenodoTestServer) -> None:
    server.add_record(RECORD, {BDG2_FILE_KEY: CONTENT}, restricted=True)

    with pytest.raises(ZenodoFilesUnavailableError, match="access_right='restricted'") as raised:
        client.record(RECORD)

    assert "ZENODO_ACCESS_TOKEN" in str(raised.value)


def test_a_persistent_504_with_html_gives_a_clear_error(
    client: LiveZenodoClient, server: ZenodoTestServer
) -> None:
    server.script("record", [Scripted(504, HTML_504)] * 4)

    with pytest.raises(ZenodoApiError) as raised:
        client.record(RECORD)

    assert raised.value.status == 504
    assert "persisted through 3 retries" in str(raised.value)
    assert "HTML page: 504 Gateway Time-out" in str(raised.value)
    assert len(server.requests_of("record")) == 4


def test_429_with_retry_after_is_retried_after_the_given_seconds(
    client: LiveZenodoClient, server: ZenodoTestServer, cache: DownloadCache
) -> None:
    limited = {"Retry-After": "1", "X-RateLimit-Limit": "133", "X-RateLimit-Remaining": "0"}
    server.script("content", [Scripted(429, {"status": 429, "message": "Too many requests"}, limited)])

    started = time.monotonic()
    cached = fetch_file(client, RECORD, BDG2_FILE_KEY, cache)

    assert cached.path.read_bytes() == CONTENT
    first, second = server.requests_of("content")
    assert second.monotonic_time - first.monotonic_time >= 0.95
    assert time.monotonic() - started >= 0.95


def test_the_deadline_stops_a_download_and_keeps_the_partial_file(
    server: ZenodoTestServer, tmp_path: Path
) -> None:
    ticks = iter(range(1000))
    slow = LiveZenodoClient(
        server.base_url, chunk_bytes=16 * 1024, download_deadline_s=3, clock=lambda: next(ticks)
    )
    cache = slow.cache_for(str(tmp_path / "cache"))

    with pytest.raises(ZenodoDownloadError, match="deadline of 3 s passed"):
        fetch_file(slow, RECORD, BDG2_FILE_KEY, cache)

    file = slow.record(RECORD).file(BDG2_FILE_KEY)
    assert 0 < cache.part_path(file).stat().st_size < len(CONTENT)
    assert not cache.path_for(file).exists()
    slow.close()


def test_a_missing_key_is_named_with_what_the_record_lists(client: LiveZenodoClient) -> None:
    with pytest.raises(ZenodoFilesUnavailableError, match="building-data-genome-project-2-v1.0.zip"):
        client.record(RECORD).file("building-data-genome-project-2-v1.0.zip")
