"""The managed local PostgreSQL cluster: the embedded default when no external server is configured.

`ManagedCluster` creates a cluster under the data home with the system's `initdb`, runs it with
`pg_ctl`, serves TLS with a certificate from the project's CA, and accepts TCP only as `hostssl`
with scram-sha-256 (optionally also requiring a client certificate). Run as root, the server runs
as an unprivileged OS user (`postgres` by default; PostgreSQL refuses to run as root).

Creating, starting, maintaining and stopping hold an exclusive lock (`flock` on
`<data home>/.cluster.lock`), so simultaneous `energy-assets db start` calls end with one cluster and
all succeed; the kernel drops the lock of a crashed process. Every start (and every connection that
finds the CRL stale, and the daily Dagster job) runs `maintain_certificates`: root CA rollover,
CRL re-signing, server certificate renewal, and publishing the trust bundle and CRL with a reload.

Layout under `<data home>/postgres/`:
    cluster.json          port, roles, server user, log settings (no secrets)
    superuser.password    the superuser's password, 0600, owned by the invoking user
    pgpass                the same as a libpq passfile (0600), named by `passfile=` in `db url`
    data/                 PGDATA, owned by the server user (server.crt/.key, root.crt, root.crl in it)
    log/                  the server log, rotated by size and age, old files pruned at start
    postgres.log          output of `pg_ctl start` before the log collector takes over
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from energy_assets.errors import CertificateError, ClusterError, DatabaseError
from energy_assets.files import check_private_file, exclusive_lock, write_atomic
from energy_assets.postgres.binaries import PostgresBinaries, find_binaries
from energy_assets.postgres.connection import PostgresSettings, connect, scalar
from energy_assets.postgres.tls_probe import presented_certificate
from energy_assets.settings import (
    DAGSTER_DATABASE,
    DATA_DATABASE,
    ENV_PG_LOG_CONNECTIONS,
    ENV_PG_LOG_ROTATION_SIZE_KB,
    ENV_PG_PORT,
    ENV_PG_SERVER_USER,
    DataHome,
)
from energy_assets.tls.ca import MAX_LEAF_VALIDITY_DAYS, CertificateAuthority, IssuedCertificate

SUPERUSER = "energy_admin"
LISTEN_ADDRESS = "127.0.0.1"
SERVER_DNS_NAMES = ("localhost",)
SERVER_IP_ADDRESSES = ("127.0.0.1", "::1")
RENEW_SERVER_CERT_WITHIN_DAYS = 30
LOG_FILE_PATTERN = "postgresql-%Y-%m-%d_%H%M%S.log"
_CONF_FILE = "energy_assets.conf"
_TRUE_WORDS = ("1", "on", "true", "yes")


@dataclass
class ClusterConfig:
    """What is persisted about a cluster in `cluster.json` (no secrets)."""

    port: int
    superuser: str = SUPERUSER
    server_user: str | None = None
    client_cert_auth: bool = False
    extra_dns_names: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=lambda: [DATA_DATABASE, DAGSTER_DATABASE])
    log_rotation_size_kb: int = 10240
    log_rotation_age_minutes: int = 1440
    log_retention_days: int = 14
    log_retention_files: int = 30
    log_connections: bool = False


@dataclass(frozen=True)
class ClusterStatus:
    """What `energy-assets db status` reports."""

    initialized: bool
    running: bool
    port: int | None
    data_dir: Path
    server_certificate_serial: int | None = None
    server_certificate_days_left: float | None = None

    def describe(self) -> str:
        if not self.initialized:
            return f"not initialized ({self.data_dir} does not exist); run `energy-assets db start`"
        state = "running" if self.running else "stopped"
        text = f"{state} on {LISTEN_ADDRESS}:{self.port} (data directory {self.data_dir})"
        if self.server_certificate_serial is not None:
            text += (
                f"; server certificate serial {self.server_certificate_serial:x}, "
                f"{self.server_certificate_days_left:.0f} days left"
            )
        return text


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LISTEN_ADDRESS, 0))
        return int(sock.getsockname()[1])


def _port_in_use(port: int) -> bool:
    """Whether another program listens on `port` (a port we may not bind is not "in use": see `start`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LISTEN_ADDRESS, port))
        except PermissionError:
            return False
        except OSError:
            return True
    return False


def _refused_bind(log_tail: str) -> str | None:
    """Why the server could not listen, from its log ("Permission denied", ...), or None."""
    match = re.search(r'could not bind IPv[46] address "[^"]*": ([^\n]+)', log_tail)
    return match.group(1).strip().rstrip(".") if match else None


class ManagedCluster:
    """A PostgreSQL cluster owned by this project, under `<data home>/postgres`."""

    def __init__(
        self,
        home: DataHome,
        *,
        port: int | None = None,
        server_user: str | None = None,
        client_cert_auth: bool | None = None,
        binaries: PostgresBinaries | None = None,
    ) -> None:
        self.home = home
        self.directory = home.cluster_dir
        self._requested_port = port if port is not None else self._port_from_env()
        self._requested_server_user = server_user or os.environ.get(ENV_PG_SERVER_USER)
        self._requested_client_cert_auth = client_cert_auth
        self._binaries = binaries

    @classmethod
    def from_data_home(cls, home: DataHome | None = None, **kwargs: object) -> ManagedCluster:
        return cls(home or DataHome.from_env(), **kwargs)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ paths and config
    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def config_path(self) -> Path:
        return self.directory / "cluster.json"

    @property
    def password_path(self) -> Path:
        return self.directory / "superuser.password"

    @property
    def passfile_path(self) -> Path:
        return self.directory / "pgpass"

    @property
    def log_path(self) -> Path:
        """Where `pg_ctl start` writes until the server's log collector takes over."""
        return self.directory / "postgres.log"

    @property
    def log_dir(self) -> Path:
        """The server log, rotated by size and age (`logging_collector`)."""
        return self.directory / "log"

    @property
    def binaries(self) -> PostgresBinaries:
        if self._binaries is None:
            self._binaries = find_binaries()
        return self._binaries

    @staticmethod
    def _port_from_env() -> int | None:
        value = os.environ.get(ENV_PG_PORT)
        if not value:
            return None
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise ClusterError(f"{ENV_PG_PORT}={value!r} is not a TCP port number (1-65535).")
        return int(value)

    def load_config(self) -> ClusterConfig | None:
        if not self.config_path.exists():
            return None
        try:
            return ClusterConfig(**json.loads(self.config_path.read_text()))
        except (ValueError, TypeError) as exc:
            raise ClusterError(
                f"{self.config_path} is not a valid cluster configuration ({exc}); fix it or remove "
                f"{self.directory} to start over."
            ) from exc

    def _save_config(self, config: ClusterConfig) -> None:
        write_atomic(self.config_path, json.dumps(asdict(config), indent=2).encode(), mode=0o644)

    @property
    def config(self) -> ClusterConfig:
        config = self.load_config()
        if config is None:
            raise ClusterError(
                f"The managed cluster in {self.directory} is not initialized; run `energy-assets db start`."
            )
        return config

    # ------------------------------------------------------------------ the OS user that runs the server
    def _server_user(self) -> pwd.struct_passwd | None:
        """The OS user to run the server as, or None to run as ourselves (when not root)."""
        if os.geteuid() != 0:
            return None
        name = self._requested_server_user or "postgres"
        try:
            return pwd.getpwnam(name)
        except KeyError as exc:
            raise ClusterError(
                f"PostgreSQL refuses to run as root and the OS user {name!r} does not exist. Create it "
                f"(`useradd --system {name}`) or set {ENV_PG_SERVER_USER} to an existing unprivileged user."
            ) from exc

    def _run(
        self, args: Sequence[str], *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        user = self._server_user()
        kwargs: dict = {}
        if user is not None:
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        if user is not None:
            env["HOME"] = user.pw_dir
        env.pop("PGDATA", None)
        result = subprocess.run(
            list(args), capture_output=True, text=True, env=env, timeout=timeout, cwd="/", **kwargs
        )
        if check and result.returncode != 0:
            raise ClusterError(
                f"`{' '.join(args)}` failed with exit code {result.returncode}: "
                f"{(result.stderr or result.stdout).strip()}"
            )
        return result

    def _server_owner(self) -> tuple[int, int] | None:
        """(uid, gid) for files the server must own, or None when it runs as ourselves."""
        user = self._server_user()
        return (user.pw_uid, user.pw_gid) if user is not None else None

    def _chown_to_server(self, path: Path) -> None:
        owner = self._server_owner()
        if owner is not None:
            os.chown(path, *owner)

    def _check_server_can_reach(self, directory: Path) -> None:
        user = self._server_user()
        if user is None:
            return
        probe = self._run(["/bin/sh", "-c", 'cd "$0"', str(directory)], check=False)
        if probe.returncode != 0:
            raise ClusterError(
                f"The server user {user.pw_name!r} cannot enter {directory}: a parent folder is not "
                f"searchable by it. Set ENERGY_ASSETS_HOME to a folder outside private home directories "
                f"(the root default is /var/lib/energy_assets), or `chmod o+x` the parent folders."
            )

    # ------------------------------------------------------------------ lifecycle
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One process at a time creates, starts, maintains or stops the cluster (re-entrant)."""
        self.home.ensure()
        with exclusive_lock(self.home.lock_path):
            yield

    def certificate_authority(self) -> CertificateAuthority:
        """The project CA (created if missing) with every due renewal of the CA itself done."""
        with self._locked():
            ca = CertificateAuthority.load_or_create(self.home.ca_dir)
            ca.maintain()
            return ca

    def initialize(self) -> bool:
        """Create the cluster if it does not exist yet; returns True if it was created.

        `initdb` runs into a temporary folder that is renamed into place only when everything
        succeeded, so a failed attempt leaves nothing that blocks the next one.
        """
        with self._locked():
            return self._initialize()

    def _initialize(self) -> bool:
        if (self.data_dir / "PG_VERSION").exists():
            if self.load_config() is None:
                raise ClusterError(
                    f"{self.data_dir} holds a cluster but {self.config_path} is missing; restore it or remove "
                    f"{self.directory} to start over."
                )
            return False
        binaries = self.binaries
        os.chmod(self.home.root, os.stat(self.home.root).st_mode | 0o711)
        self.directory.mkdir(mode=0o711, exist_ok=True)
        os.chmod(self.directory, 0o711)
        self._check_server_can_reach(self.directory)
        # Under the lock, a staging folder can only be left over from a process that died.
        for stale in self.directory.glob("data.initdb-*"):
            shutil.rmtree(stale, ignore_errors=True)

        # A requested port (ENERGY_PG_PORT) is kept only once the server started on it (`start`).
        config = ClusterConfig(
            port=_free_port(),
            server_user=(user.pw_name if (user := self._server_user()) is not None else None),
            client_cert_auth=bool(self._requested_client_cert_auth),
        )
        password = secrets.token_urlsafe(32)
        staging = Path(tempfile.mkdtemp(prefix="data.initdb-", dir=self.directory))
        try:
            self._chown_to_server(staging)
            os.chmod(staging, 0o700)
            pwfile = staging / "pwfile"
            pwfile.write_text(password + "\n")
            self._chown_to_server(pwfile)
            os.chmod(pwfile, 0o600)
            pgdata = staging / "data"
            self._run(
                [
                    binaries.initdb,
                    "--pgdata",
                    str(pgdata),
                    "--username",
                    config.superuser,
                    "--pwfile",
                    str(pwfile),
                    "--auth",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                ],
                timeout=300,
            )
            pwfile.unlink()
            self._write_server_config(pgdata, config)
            ca = self.certificate_authority()
            self._install_tls_files(pgdata, self._issue_server_certificate(ca, config), ca)
            write_atomic(self.password_path, password.encode(), mode=0o600)
            self._save_config(config)
            self._write_passfile(config, password)
            os.rename(pgdata, self.data_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return True

    def _server_settings(self, config: ClusterConfig) -> dict[str, str]:
        log_connections = config.log_connections or (
            os.environ.get(ENV_PG_LOG_CONNECTIONS, "").lower() in _TRUE_WORDS
        )
        rotation_kb = os.environ.get(ENV_PG_LOG_ROTATION_SIZE_KB) or str(config.log_rotation_size_kb)
        if not rotation_kb.isdigit():
            raise ClusterError(
                f"{ENV_PG_LOG_ROTATION_SIZE_KB}={rotation_kb!r} is not a size in kB (e.g. 10240)."
            )
        return {
            "listen_addresses": LISTEN_ADDRESS,
            "port": str(config.port),
            # No Unix socket: every connection, even local, goes through TLS on TCP.
            "unix_socket_directories": "",
            "ssl": "on",
            "ssl_cert_file": "server.crt",
            "ssl_key_file": "server.key",
            "ssl_ca_file": "root.crt",
            "ssl_crl_file": "root.crl",
            "ssl_min_protocol_version": "TLSv1.2",
            "password_encryption": "scram-sha-256",
            # Bounded logs: the collector rotates by size and age; `prune_logs` removes old files.
            "logging_collector": "on",
            "log_directory": str(self.log_dir),
            "log_filename": LOG_FILE_PATTERN,
            "log_rotation_size": f"{rotation_kb}kB",
            "log_rotation_age": f"{config.log_rotation_age_minutes}min",
            "log_truncate_on_rotation": "off",
            # Dagster opens a connection per storage call: logging each one is opt-in.
            "log_connections": "on" if log_connections else "off",
            "log_disconnections": "on" if log_connections else "off",
            "log_timezone": "UTC",
            "timezone": "UTC",
        }

    def _write_server_config(self, pgdata: Path, config: ClusterConfig) -> None:
        self._write_conf_file(pgdata, config)
        with open(pgdata / "postgresql.conf", "a") as handle:
            handle.write(f"\ninclude = '{_CONF_FILE}'\n")
        client_cert = " clientcert=verify-full" if config.client_cert_auth else ""
        hba = pgdata / "pg_hba.conf"
        hba.write_text(
            "# Written by energy_assets: TCP only over TLS, scram-sha-256; plain TCP is rejected.\n"
            "# TYPE     DATABASE  USER  ADDRESS        METHOD\n"
            "hostnossl  all       all   0.0.0.0/0      reject\n"
            "hostnossl  all       all   ::/0           reject\n"
            f"hostssl    all       all   127.0.0.1/32   scram-sha-256{client_cert}\n"
            f"hostssl    all       all   ::1/128        scram-sha-256{client_cert}\n"
        )
        self._chown_to_server(hba)

    def _write_conf_file(self, pgdata: Path, config: ClusterConfig) -> bool:
        """Write `energy_assets.conf` from the config; returns True if its content changed."""
        lines = [f"{key} = '{value}'" for key, value in self._server_settings(config).items()]
        text = "# Written by energy_assets; edit through `energy-assets db`.\n" + "\n".join(lines) + "\n"
        conf = pgdata / _CONF_FILE
        if conf.exists() and conf.read_text() == text:
            return False
        write_atomic(conf, text.encode(), 0o644, owner=self._server_owner())
        return True

    def _write_passfile(self, config: ClusterConfig, password: str) -> None:
        """A libpq passfile for the superuser (0600), so URIs never carry the password."""

        def escape(value: str) -> str:
            return value.replace("\\", "\\\\").replace(":", "\\:")

        line = f"*:{config.port}:*:{escape(config.superuser)}:{escape(password)}\n"
        if self.passfile_path.exists() and self.passfile_path.read_text() == line:
            return
        write_atomic(self.passfile_path, line.encode(), mode=0o600)

    def _issue_server_certificate(self, ca: CertificateAuthority, config: ClusterConfig) -> IssuedCertificate:
        return ca.issue_server_certificate(
            dns_names=[*SERVER_DNS_NAMES, *config.extra_dns_names],
            ip_addresses=list(SERVER_IP_ADDRESSES),
            common_name="localhost",
        )

    def _install_tls_files(
        self, pgdata: Path, issued: IssuedCertificate | None, ca: CertificateAuthority
    ) -> bool:
        """Copy the server certificate and key (if given), the trust bundle and the CRL into PGDATA,
        owned by the server user; returns True if any file changed."""
        files = {
            "root.crt": (ca.trust_bundle_path.read_bytes(), 0o644),
            "root.crl": (ca.crl_path.read_bytes(), 0o644),
        }
        if issued is not None:
            files["server.crt"] = (issued.cert_path.read_bytes(), 0o644)
            files["server.key"] = (issued.key_path.read_bytes(), 0o600)
        changed = False
        for name, (data, mode) in files.items():
            target = pgdata / name
            if target.exists() and target.read_bytes() == data:
                continue
            write_atomic(target, data, mode, owner=self._server_owner())
            changed = True
        return changed

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        result = self._run([self.binaries.pg_ctl, "status", "-D", str(self.data_dir)], check=False)
        return result.returncode == 0

    def _seen_running(self, *, within_s: float) -> bool:
        """Whether `pg_ctl status` sees the server within `within_s` seconds (asked when our port is taken: a
        status read while the server rewrites `postmaster.pid` can miss it, as a loaded CI machine showed once)."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if self.is_running():
                return True
        return False

    def start(self) -> bool:
        """Start the server (initializing it first if needed); returns False if it was already running.

        Either way the certificates are maintained first (CRL, server certificate, root rollover).
        """
        with self._locked():
            self._initialize()
            config = self.config
            self._write_passfile(config, self.superuser_password())
            if self.is_running() or (_port_in_use(config.port) and self._seen_running(within_s=3.0)):
                self.maintain_certificates()
                return False
            kept_port = config.port
            if self._requested_port:
                config.port = self._requested_port
            if _port_in_use(config.port):
                raise ClusterError(
                    f"Port {config.port} on {LISTEN_ADDRESS} is in use by another program; set {ENV_PG_PORT} to "
                    f"a free port (or stop the other server) and run `energy-assets db start` again."
                )
            self.maintain_certificates()
            self._write_conf_file(self.data_dir, config)
            try:
                self._start_server(config.port, kept_port)
            except ClusterError:
                if config.port != kept_port:
                    config.port = kept_port
                    self._write_conf_file(self.data_dir, config)
                raise
            if config.port != kept_port:
                self._save_config(config)
                self._write_passfile(config, self.superuser_password())
            return True

    def _start_server(self, port: int, kept_port: int) -> None:
        """`pg_ctl start` on the configuration just written; a port the server could not listen on gets
        a message saying what to do (`start` then puts `kept_port` back)."""
        self._prepare_logs()
        result = self._run(
            [
                self.binaries.pg_ctl,
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                "60",
            ],
            check=False,
        )
        if result.returncode == 0:
            return
        tail = self.log_tail()
        refused = _refused_bind(tail)
        if refused is None:
            raise ClusterError(
                f"PostgreSQL did not start (pg_ctl exit {result.returncode}). Last lines of the log:\n" + tail
            )
        if port != kept_port:
            todo = (
                f"The cluster keeps port {kept_port}: unset {ENV_PG_PORT} to start on it, or set {ENV_PG_PORT} to "
                "a free port from 1024 to 65535, and run `energy-assets db start` again."
            )
        else:
            todo = (
                f"Set {ENV_PG_PORT} to a free port from 1024 to 65535 and run `energy-assets db start` again."
            )
        why = refused.lower()
        if why == "permission denied" and port < 1024:
            why += "; ports below 1024 need privileges the server user does not have"
        raise ClusterError(
            f"PostgreSQL cannot listen on {LISTEN_ADDRESS}:{port} ({why}). {todo} Last lines of the log:\n{tail}"
        )

    def _prepare_logs(self) -> None:
        if not self.log_path.exists():
            self.log_path.touch(mode=0o640)
        self._chown_to_server(self.log_path)
        self.log_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown_to_server(self.log_dir)
        self.prune_logs()

    def log_files(self) -> list[Path]:
        """The collector's log files, oldest first."""
        if not self.log_dir.exists():
            return []
        return sorted(
            self.log_dir.glob("postgresql-*.log"), key=lambda path: (path.stat().st_mtime, path.name)
        )

    def prune_logs(self) -> list[Path]:
        """Delete collector logs beyond the retention (age and count), never the newest; returns them."""
        config = self.config
        files = self.log_files()
        cutoff = time.time() - config.log_retention_days * 86400
        removed = []
        for index, path in enumerate(files[:-1]):
            too_many = len(files) - index > config.log_retention_files
            if too_many or path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    def configure_logging(
        self, *, rotation_size_kb: int | None = None, log_connections: bool | None = None
    ) -> None:
        """Change the log settings in `cluster.json` and apply them (reload if running)."""
        with self._locked():
            config = self.config
            if rotation_size_kb is not None:
                config.log_rotation_size_kb = rotation_size_kb
            if log_connections is not None:
                config.log_connections = log_connections
            self._save_config(config)
            if self._write_conf_file(self.data_dir, config) and self.is_running():
                self._reload()

    def stop(self) -> bool:
        """Stop the server; returns False if it was not running."""
        with self._locked():
            if not self.is_running():
                return False
            self._run(
                [self.binaries.pg_ctl, "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60"]
            )
            return True

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the newest log (the collector's, or pg_ctl's before it took over)."""
        candidates = [path for path in [self.log_path, *self.log_files()] if path.exists()]
        if not candidates:
            return "(no log)"
        newest = max(candidates, key=lambda path: path.stat().st_mtime)
        text = "\n".join(newest.read_text(errors="replace").splitlines()[-lines:])
        return f"({newest})\n{text}"

    def status(self) -> ClusterStatus:
        config = self.load_config()
        initialized = config is not None and (self.data_dir / "PG_VERSION").exists()
        serial = days_left = None
        if initialized:
            cert = x509.load_pem_x509_certificate((self.data_dir / "server.crt").read_bytes())
            serial = cert.serial_number
            days_left = (cert.not_valid_after_utc.timestamp() - time.time()) / 86400
        return ClusterStatus(
            initialized=initialized,
            running=initialized and self.is_running(),
            port=config.port if config else None,
            data_dir=self.data_dir,
            server_certificate_serial=serial,
            server_certificate_days_left=days_left,
        )

    def served_certificate_serial(self) -> int | None:
        """Serial of the certificate the server presents (or will present at start); None if no cluster."""
        if not (self.data_dir / "server.crt").exists():
            return None
        if self.is_running():
            return presented_certificate(LISTEN_ADDRESS, self.config.port).serial_number
        return x509.load_pem_x509_certificate((self.data_dir / "server.crt").read_bytes()).serial_number

    # ------------------------------------------------------------------ connections
    def superuser_password(self) -> str:
        try:
            check_private_file(self.password_path, what="Password file")
            return self.password_path.read_text().strip()
        except FileNotFoundError as exc:
            raise ClusterError(
                f"{self.password_path} is missing; the managed cluster cannot be reached without it. "
                f"Restore it or remove {self.directory} to start over."
            ) from exc

    def settings(self, dbname: str = DATA_DATABASE, *, host: str = "localhost") -> PostgresSettings:
        """Connection settings for a database of this cluster: verify-full against the project CA.

        They trust the CA's bundle (both roots during a rollover), check its CRL, name the passfile, and
        renew a stale CRL before connecting (`on_stale_crl`).
        """
        config = self.config
        if self.passfile_path.exists():
            check_private_file(self.passfile_path, what="Password file")
        client: dict[str, Any] = {}
        if config.client_cert_auth:
            client = self._client_certificate_files(config.superuser)
        bundle = self.home.ca_dir / "trust.pem"
        return PostgresSettings(
            host=host,
            hostaddr=LISTEN_ADDRESS,
            port=config.port,
            dbname=dbname,
            user=config.superuser,
            password=self.superuser_password(),
            sslmode="verify-full",
            sslrootcert=str(bundle if bundle.exists() else self.home.ca_dir / "ca.crt"),
            sslcrl=str(self.home.ca_dir / "crl.pem"),
            passfile=str(self.passfile_path),
            on_stale_crl=self.maintain_certificates,
            **client,
        )

    def _client_certificate_files(self, role: str) -> dict[str, str]:
        ca = self.certificate_authority()
        active = ca.certificate.serial_number
        usable = {
            status.serial
            for status in ca.status()
            if status.kind == "client"
            and status.subject_cn == role
            and not status.revoked
            and status.issuer_serial == active
            and status.days_left > RENEW_SERVER_CERT_WITHIN_DAYS
        }
        current = [cert for cert in ca.issued() if cert.serial in usable]
        issued = current[-1] if current else ca.issue_client_certificate(role)
        return {"sslcert": str(issued.cert_path), "sslkey": str(issued.key_path)}

    def ensure_running(self, dbname: str = DATA_DATABASE) -> PostgresSettings:
        """Initialize and start the cluster if needed, create its databases, return settings for `dbname`."""
        with self._locked():
            self.start()
            self.ensure_databases()
            return self.settings(dbname)

    def start_with_databases(self) -> bool:
        """`start` and `ensure_databases` under one lock; returns whether the server was started."""
        with self._locked():
            started = self.start()
            self.ensure_databases()
            return started

    def ensure_databases(self) -> None:
        from energy_assets.postgres.admin import create_database

        # Under the lock: two CREATE DATABASE from template1 at once fail ("being accessed by other users").
        with self._locked(), connect(self.settings("postgres"), autocommit=True) as conn:
            for name in self.config.databases:
                create_database(conn, name)

    # ------------------------------------------------------------------ certificate lifecycle
    def maintain_certificates(self) -> list[str]:
        """Do every certificate renewal that is due and publish the result to the server.

        Rolls the root CA over before it expires (and retires the old one after the overlap), re-signs
        the CRL well before its next update, renews a server certificate that expires within
        `RENEW_SERVER_CERT_WITHIN_DAYS`, is revoked or comes from a root no longer active, and copies the
        trust bundle and CRL into PGDATA; a running server reloads (no restart) and the served serial is
        checked. Returns what was done, one sentence per action.
        """
        with self._locked():
            ca = CertificateAuthority.load_or_create(self.home.ca_dir)
            done = ca.maintain()
            if not (self.data_dir / "PG_VERSION").exists():
                return done
            reason = self._server_certificate_renewal_reason(ca)
            issued = None
            if reason:
                issued = self._issue_server_certificate(ca, self.config)
                done.append(f"issued server certificate {issued.serial:x} ({reason})")
            changed = self._install_tls_files(self.data_dir, issued, ca)
            if changed and issued is None:
                done.append("published the trust bundle and CRL to the server")
            if changed and self.is_running():
                self._reload(expect_serial=issued.serial if issued else None)
            return done

    def _server_certificate_renewal_reason(self, ca: CertificateAuthority) -> str | None:
        cert = x509.load_pem_x509_certificate((self.data_dir / "server.crt").read_bytes())
        days_left = (cert.not_valid_after_utc.timestamp() - time.time()) / 86400
        if days_left < RENEW_SERVER_CERT_WITHIN_DAYS:
            return f"the served one had {days_left:.0f} days left"
        if cert.issuer != ca.certificate.subject:
            return "the served one comes from a previous root CA"
        if any(s.serial == cert.serial_number and s.revoked for s in ca.status()):
            return "the served one was revoked"
        return None

    def install_server_certificate(
        self, issued: IssuedCertificate, *, verify_timeout_s: float = 15.0
    ) -> None:
        """Install a server certificate, reload without restart, and check the server presents it."""
        with self._locked():
            ca = CertificateAuthority.load_or_create(self.home.ca_dir)
            self._install_tls_files(self.data_dir, issued, ca)
            if self.is_running():
                self._reload(expect_serial=issued.serial, timeout_s=verify_timeout_s)

    def rotate_server_certificate(self, *, validity_days: int = MAX_LEAF_VALIDITY_DAYS) -> IssuedCertificate:
        """Issue a new server certificate from the project CA, install it and verify it is served."""
        with self._locked():
            ca = self.certificate_authority()
            config = self.config
            issued = ca.issue_server_certificate(
                dns_names=[*SERVER_DNS_NAMES, *config.extra_dns_names],
                ip_addresses=list(SERVER_IP_ADDRESSES),
                common_name="localhost",
                validity_days=validity_days,
            )
            self.install_server_certificate(issued)
            return issued

    def refresh_crl(self) -> None:
        """Copy the CA's current trust bundle and CRL into the cluster and reload, after a revocation."""
        with self._locked():
            ca = CertificateAuthority.load_or_create(self.home.ca_dir)
            if self._install_tls_files(self.data_dir, None, ca) and self.is_running():
                self._reload()

    def _reload(self, *, expect_serial: int | None = None, timeout_s: float = 15.0) -> None:
        """Reload by signal (`pg_ctl reload`, no login needed: the old CRL may already refuse us) and
        wait until the server uses the new files: the expected serial is presented, or new sessions see
        a newer `pg_conf_load_time()`."""
        settings = self.settings("postgres").replace(on_stale_crl=None)
        before = None
        with contextlib.suppress(DatabaseError), connect(settings, autocommit=True) as conn:
            before = scalar(conn, "SELECT pg_conf_load_time()")
        self._run([self.binaries.pg_ctl, "reload", "-D", str(self.data_dir)])
        deadline = time.monotonic() + timeout_s
        served = None
        while time.monotonic() < deadline:
            if expect_serial is not None:
                served = presented_certificate(LISTEN_ADDRESS, self.config.port).serial_number
                if served == expect_serial:
                    return
            else:
                try:
                    with connect(settings, autocommit=True) as conn:
                        loaded = scalar(conn, "SELECT pg_conf_load_time()")
                    if before is None or loaded > before:
                        return
                except DatabaseError:
                    if before is not None:
                        return  # the new configuration refuses us (e.g. our own certificate was revoked)
            time.sleep(0.1)
        if expect_serial is not None:
            raise CertificateError(
                f"After reloading, PostgreSQL still presents certificate serial {served:x}, not the new "
                f"{expect_serial:x}: the server kept its old certificate. Check the log:\n{self.log_tail()}"
            )
        raise ClusterError(
            f"PostgreSQL did not reload its configuration within {timeout_s:.0f} s:\n{self.log_tail()}"
        )
