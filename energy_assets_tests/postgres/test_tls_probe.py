"""The TLS probe against small loopback servers that play PostgreSQL's SSLRequest, and what it reports."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from energy_assets.errors import DatabaseError
from energy_assets.postgres.tls_probe import SSL_REQUEST_CODE, presented_certificate
from energy_assets.tls.ca import CertificateAuthority

SSL_REQUEST = struct.pack("!ii", 8, 80877103)


class LoopbackServer:
    """Accepts connections on 127.0.0.1 and hands each socket to `answer` in a thread of its own."""

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        self.requests: list[bytes] = []
        self._answer = answer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(5)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve_one, daemon=True)
        self._thread.start()

    def _serve_one(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        with client:
            client.settimeout(5)
            self.requests.append(client.recv(8))
            try:
                self._answer(client)
            except OSError:
                pass  # the probe gave up first

    def close(self) -> None:
        self._listener.close()
        self._thread.join(timeout=5)


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[socket.socket], None]], LoopbackServer]]:
    servers: list[LoopbackServer] = []

    def start(answer: Callable[[socket.socket], None]) -> LoopbackServer:
        servers.append(LoopbackServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_the_request_is_postgresql_s_ssl_request() -> None:
    assert SSL_REQUEST_CODE == 80877103  # 1234 << 16 | 5679, fixed by the protocol
    assert SSL_REQUEST == b"\x00\x00\x00\x08\x04\xd2\x16\x2f"


def test_reads_the_certificate_the_server_presents(serve, tmp_path: Path) -> None:
    ca, _ = CertificateAuthority.init(tmp_path / "ca")
    issued = ca.issue_server_certificate(["localhost"], ["127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert_path, issued.key_path)

    def tls(client: socket.socket) -> None:
        client.sendall(b"S")
        with context.wrap_socket(client, server_side=True) as session:
            session.recv(1)  # until the probe closes

    server = serve(tls)
    certificate = presented_certificate("127.0.0.1", server.port)
    assert certificate.serial_number == issued.serial
    assert server.requests == [SSL_REQUEST]


def test_a_server_that_refuses_tls_is_reported(serve) -> None:
    server = serve(lambda client: client.sendall(b"N"))
    with pytest.raises(DatabaseError) as error:
        presented_certificate("127.0.0.1", server.port)
    assert (
        str(error.value) == f"PostgreSQL at 127.0.0.1:{server.port} refused TLS (answered b'N'); is ssl = on?"
    )
    assert server.requests == [SSL_REQUEST]


def test_a_server_that_hangs_up_before_answering_is_reported(serve) -> None:
    server = serve(lambda client: None)
    with pytest.raises(DatabaseError, match=rf"127.0.0.1:{server.port} refused TLS \(answered b''\)"):
        presented_certificate("127.0.0.1", server.port)


def test_an_unreachable_server_is_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(
            DatabaseError, match=f"Cannot reach PostgreSQL at 127.0.0.1:{port} to read its certificate"
        ):
            presented_certificate("127.0.0.1", port)


def test_a_server_that_never_answers_times_out(serve) -> None:
    stop = threading.Event()
    server = serve(lambda client: stop.wait(5))
    try:
        with pytest.raises(
            DatabaseError, match=f"Cannot reach PostgreSQL at 127.0.0.1:{server.port}.*timed out"
        ):
            presented_certificate("127.0.0.1", server.port, timeout_s=0.3)
    finally:
        stop.set()


def test_a_server_without_a_certificate_is_reported(serve) -> None:
    """Anonymous TLS (no certificate) is never negotiated: the handshake fails and the probe says so."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("aNULL:@SECLEVEL=0")

    def anonymous(client: socket.socket) -> None:
        client.sendall(b"S")
        context.wrap_socket(client, server_side=True).close()

    server = serve(anonymous)
    with pytest.raises(DatabaseError, match=f"Cannot reach PostgreSQL at 127.0.0.1:{server.port}.*SSL"):
        presented_certificate("127.0.0.1", server.port)


def test_a_session_without_a_peer_certificate_is_reported(serve, tmp_path: Path, monkeypatch) -> None:
    """Should a TLS session ever come without a peer certificate, the probe refuses to return nothing."""
    ca, _ = CertificateAuthority.init(tmp_path / "ca")
    issued = ca.issue_server_certificate(["localhost"], ["127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert_path, issued.key_path)

    def tls(client: socket.socket) -> None:
        client.sendall(b"S")
        with context.wrap_socket(client, server_side=True) as session:
            session.recv(1)

    server = serve(tls)
    monkeypatch.setattr(ssl.SSLSocket, "getpeercert", lambda self, binary_form=False: None)
    with pytest.raises(
        DatabaseError, match=f"PostgreSQL at 127.0.0.1:{server.port} presented no certificate"
    ):
        presented_certificate("127.0.0.1", server.port)
