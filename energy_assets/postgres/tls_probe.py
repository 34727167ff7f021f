"""Read the certificate a PostgreSQL server presents, without logging in.

PostgreSQL starts TLS inside its own protocol: the client sends an SSLRequest packet and the server
answers `S` before the handshake. This is how a certificate rotation is verified: a reload can keep
the old certificate silently (for instance when the new key does not load), so we look at what the
server really serves.
"""

from __future__ import annotations

import socket
import ssl
import struct

from cryptography import x509

from energy_assets.errors import DatabaseError

SSL_REQUEST_CODE = 80877103


def presented_certificate(host: str, port: int, *, timeout_s: float = 5.0) -> x509.Certificate:
    """The leaf certificate the server at host:port presents for TLS."""
    # Verification is deliberately off here: this reads the certificate, it does not trust it.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw:
            raw.sendall(struct.pack("!ii", 8, SSL_REQUEST_CODE))
            answer = raw.recv(1)
            if answer != b"S":
                raise DatabaseError(
                    f"PostgreSQL at {host}:{port} refused TLS (answered {answer!r}); is ssl = on?"
                )
            with context.wrap_socket(raw, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        raise DatabaseError(
            f"Cannot reach PostgreSQL at {host}:{port} to read its certificate: {exc}"
        ) from exc
    if not der:
        raise DatabaseError(f"PostgreSQL at {host}:{port} presented no certificate.")
    return x509.load_der_x509_certificate(der)
