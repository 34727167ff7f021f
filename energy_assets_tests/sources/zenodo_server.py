"""A local HTTP server that speaks the Zenodo REST API's shapes, for testing the live Zenodo client.

- `GET /api/records/{id}`: the record JSON (legacy-compatible shape, built by `sample_builder.zenodo_record`), a 410
  with a tombstone for deleted records, 404 `{"status": 404, "message": "PID does not exist."}` otherwise (concept
  ids included, as on the real service);
- `GET /api/records/{id}/versions/latest`: a 302 redirect to the newest version;
- `GET /api/records/{id}/files/{percent-encoded key}/content`: the bytes, with `ETag` and `Accept-Ranges`;
  `Range: bytes=N-` gets a 206 (honouring `If-Range`) unless `ignore_range` is set; `cut_after` makes the next
  answers stop after that many body bytes and drop the connection (an interrupted download);
- scripted answers per kind (`record`, `latest`, `content`) are served first, in order: 429 with `Retry-After`,
  a 504 with an HTML body, ...

Every request is logged with its path and headers.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote, urlsplit

from energy_assets.sources.buildings.sample_builder import zenodo_record
from energy_assets_tests.loopback import LoopbackServer

HTML_504 = (
    "<!DOCTYPE html>\n<html><head><title>504 Gateway Time-out</title></head>"
    "<body><center><h1>504 Gateway Time-out</h1></center><hr><center>nginx</center></body></html>\n"
)


@dataclass(frozen=True)
class Scripted:
    """A canned answer: status, body (str, bytes or JSON-able) and headers."""

    status: int
    body: str | bytes | dict | list = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SeenRequest:
    kind: str
    path: str
    headers: dict[str, str]
    monotonic_time: float


class ZenodoTestServer(LoopbackServer):
    """Owns the records, files, scripts and the request log (`LoopbackServer`: the socket and thread)."""

    def __init__(self) -> None:
        self.records: dict[int, dict] = {}
        self.files: dict[tuple[int, str], bytes] = {}
        self.latest: dict[int, int] = {}
        self.tombstones: dict[int, dict] = {}
        self.requests: list[SeenRequest] = []
        self.ignore_range = False
        self.cut_after: list[int] = []
        self._scripts: dict[str, list[Scripted]] = {}
        self._lock = threading.Lock()
        super().__init__(_make_handler(self), "zenodo-test-server")

    def reset(self) -> None:
        with self._lock:
            self.records.clear()
            self.files.clear()
            self.latest.clear()
            self.tombstones.clear()
            self.requests.clear()
            self._scripts.clear()
            self.cut_after.clear()
            self.ignore_range = False

    def add_record(
        self,
        record_id: int,
        files: dict[str, bytes],
        *,
        concept_record_id: str = "3887305",
        checksum_prefix: bool = True,
        listed_md5: dict[str, str] | None = None,
        restricted: bool = False,
    ) -> dict:
        """Serve a record with `files`; `listed_md5` overrides the md5 the record lists (a wrong checksum)."""
        body = zenodo_record(
            record_id,
            files,
            base_url=self.base_url,
            concept_record_id=concept_record_id,
            checksum_prefix=checksum_prefix,
        )
        for entry in body["files"]:
            if listed_md5 and entry["key"] in listed_md5:
                entry["checksum"] = f"md5:{listed_md5[entry['key']]}"
        if restricted:
            body["files"] = []
            body["metadata"]["access_right"] = "restricted"
        with self._lock:
            self.records[record_id] = body
            for key, content in files.items():
                self.files[(record_id, key)] = content
            family = [rid for rid, rec in self.records.items() if rec["conceptrecid"] == concept_record_id]
            for rid in family:
                self.latest[rid] = max(family)
        return body

    def delete_record(self, record_id: int, note: str = "Spam record, removed by Zenodo staff.") -> None:
        with self._lock:
            self.records.pop(record_id, None)
            self.tombstones[record_id] = {
                "status": 410,
                "message": "The record has been deleted.",
                "tombstone": {
                    "removal_reason": {"id": "spam", "title": {"en": "Spam"}},
                    "note": note,
                    "removed_by": {"user": "system"},
                    "removal_date": "2025-01-15T10:00:00+00:00",
                    "citation_text": "",
                    "is_visible": True,
                },
            }

    def script(self, kind: str, answers: list[Scripted]) -> None:
        with self._lock:
            self._scripts.setdefault(kind, []).extend(answers)

    def requests_of(self, kind: str) -> list[SeenRequest]:
        return [request for request in self.requests if request.kind == kind]

    def _scripted(self, kind: str) -> Scripted | None:
        with self._lock:
            queue = self._scripts.get(kind)
            return queue.pop(0) if queue else None


def etag_of(content: bytes) -> str:
    return '"' + hashlib.md5(content, usedforsecurity=False).hexdigest() + '"'


def _make_handler(server: ZenodoTestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            parts = path.strip("/").split("/")
            if parts[:2] != ["api", "records"] or len(parts) < 3 or not parts[2].isdigit():
                return self._send(
                    Scripted(404, {"status": 404, "message": "The requested URL was not found."})
                )
            record_id = int(parts[2])
            rest = parts[3:]
            if not rest:
                kind = "record"
            elif rest == ["versions", "latest"]:
                kind = "latest"
            elif len(rest) >= 3 and rest[0] == "files" and rest[-1] == "content":
                kind = "content"
            else:
                kind = "other"
            server.requests.append(SeenRequest(kind, path, dict(self.headers.items()), time.monotonic()))
            scripted = server._scripted(kind)
            if scripted is not None:
                return self._send(scripted)
            if kind == "record":
                return self._record(record_id)
            if kind == "latest":
                if record_id not in server.latest:
                    return self._send(Scripted(404, {"status": 404, "message": "PID does not exist."}))
                location = f"{server.base_url}/api/records/{server.latest[record_id]}"
                return self._send(Scripted(302, "", {"Location": location}))
            if kind == "content":
                key = unquote("/".join(rest[1:-1]))
                return self._content(record_id, key)
            return self._send(Scripted(404, {"status": 404, "message": "Not found."}))

        def _record(self, record_id: int) -> None:
            if record_id in server.tombstones:
                return self._send(Scripted(410, server.tombstones[record_id]))
            if record_id not in server.records:
                return self._send(Scripted(404, {"status": 404, "message": "PID does not exist."}))
            return self._send(Scripted(200, server.records[record_id]))

        def _content(self, record_id: int, key: str) -> None:
            content = server.files.get((record_id, key))
            if content is None:
                return self._send(Scripted(404, {"status": 404, "message": "File not found."}))
            etag = etag_of(content)
            headers = {"ETag": etag, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
            status, body = 200, content
            range_header = self.headers.get("Range")
            if range_header and not server.ignore_range:
                if_range = self.headers.get("If-Range")
                if if_range is None or if_range == etag:
                    start = int(range_header.removeprefix("bytes=").split("-")[0])
                    if start >= len(content):
                        return self._send(Scripted(416, "", {"Content-Range": f"bytes */{len(content)}"}))
                    status, body = 206, content[start:]
                    headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
            with server._lock:
                cut = server.cut_after.pop(0) if server.cut_after else None
            if cut is None:
                return self._send(Scripted(status, body, headers))
            # Promise the whole body, send part of it, drop the connection: an interrupted download.
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def _send(self, answer: Scripted) -> None:
            headers = dict(answer.headers)
            if isinstance(answer.body, (dict, list)):
                payload = json.dumps(answer.body).encode()
                headers.setdefault("Content-Type", "application/json")
            elif isinstance(answer.body, bytes):
                payload = answer.body
            else:
                payload = answer.body.encode()
                if payload.lstrip().lower().startswith(b"<!doctype html"):
                    headers.setdefault("Content-Type", "text/html; charset=utf-8")
                else:
                    headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            self.send_response(answer.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler
