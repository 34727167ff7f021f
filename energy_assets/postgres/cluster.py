"""The managed local PostgreSQL cluster: the embedded default when no external server is configured.

`ManagedCluster` creates a cluster under the data home with the system's `initdb`, runs it with
`pg_ctl`, serves TLS with a certificate from the project's CA, and accepts TCP only as `hostssl`
with scram-sha-256 (optionally also requiring a client certificate). Run as root, the server runs
as an unprivileged OS user (`postgres` by default; PostgreSQL refuses to run as root).

Layout under `<data home>/postgres/`:
    cluster.json          port, roles, server user (no secrets)
    superuser.password    the superuser's password, 0600, owned by the invoking user
    data/                 PGDATA, owned by the server user (server.crt/.key, root.crt, root.crl in it)
    postgres.log          the server log
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from energy_assets.errors import CertificateError, ClusterError, DatabaseError
from energy_assets.files import write_atomic
from energy_assets.postgres.binaries import PostgresBinaries, find_binaries
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.postgres.tls_probe import presented_certificate
from energy_assets.settings import DAGSTER_DATABASE, DATA_DATABASE, ENV_PG_PORT, ENV_PG_SERVER_USER, DataHome
from energy_assets.tls.ca import CertificateAuthority, IssuedCertificate

SUPERUSER = "energy_admin"
LISTEN_ADDRESS = "127.0.0.1"
SERVER_DNS_NAMES = ("localhost",)
SERVER_IP_ADDRESSES = ("127.0.0.1", "::1")
RENEW_SERVER_CERT_WITHIN_DAYS = 30
_CONF_FILE = "energy_assets.conf"


@dataclass
class ClusterConfig:
    """What is persisted about a cluster in `cluster.json` (no secrets)."""

    port: int
    superuser: str = SUPERUSER
    server_user: str | None = None
    client_cert_auth: bool = False
    extra_dns_names: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=lambda: [DATA_DATABASE, DAGSTER_DATABASE])


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
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LISTEN_ADDRESS, port))
        except OSError:
            return True
    return False


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
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

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
    def certificate_authority(self) -> CertificateAuthority:
        ca, _created = CertificateAuthority.init(self.home.ca_dir)
        if not ca.crl_path.exists():
            ca.write_crl()
        return ca

    def initialize(self) -> bool:
        """Create the cluster if it does not exist yet; returns True if it was created.

        `initdb` runs into a temporary folder that is renamed into place only when everything
        succeeded, so a failed attempt leaves nothing that blocks the next one.
        """
        if (self.data_dir / "PG_VERSION").exists():
            if self.load_config() is None:
                raise ClusterError(
                    f"{self.data_dir} holds a cluster but {self.config_path} is missing; restore it or remove "
                    f"{self.directory} to start over."
                )
            return False
        binaries = self.binaries
        self.home.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home.root, os.stat(self.home.root).st_mode | 0o711)
        self.directory.mkdir(mode=0o711, exist_ok=True)
        os.chmod(self.directory, 0o711)
        self._check_server_can_reach(self.directory)
        for stale in self.directory.glob("data.initdb-*"):
            shutil.rmtree(stale, ignore_errors=True)

        config = ClusterConfig(
            port=self._requested_port or _free_port(),
            server_user=(self._server_user().pw_name if self._server_user() else None),
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
            self._install_tls_files(pgdata, self._issue_server_certificate(config))
            write_atomic(self.password_path, password.encode(), mode=0o600)
            self._save_config(config)
            os.rename(pgdata, self.data_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return True

    def _write_server_config(self, pgdata: Path, config: ClusterConfig) -> None:
        settings = {
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
            "log_connections": "on",
            "log_timezone": "UTC",
            "timezone": "UTC",
        }
        lines = [f"{key} = '{value}'" for key, value in settings.items()]
        conf = pgdata / _CONF_FILE
        conf.write_text(
            "# Written by energy_assets; edit through `energy-assets db`.\n" + "\n".join(lines) + "\n"
        )
        self._chown_to_server(conf)
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

    def _issue_server_certificate(self, config: ClusterConfig) -> IssuedCertificate:
        ca = self.certificate_authority()
        return ca.issue_server_certificate(
            dns_names=[*SERVER_DNS_NAMES, *config.extra_dns_names],
            ip_addresses=list(SERVER_IP_ADDRESSES),
            common_name="localhost",
        )

    def _install_tls_files(self, pgdata: Path, issued: IssuedCertificate) -> None:
        """Copy the server certificate, key, CA and CRL into PGDATA, owned by the server user."""
        ca = self.certificate_authority()
        files = {
            "server.crt": (issued.cert_path.read_bytes(), 0o644),
            "server.key": (issued.key_path.read_bytes(), 0o600),
            "root.crt": (ca.ca_cert_path.read_bytes(), 0o644),
            "root.crl": (ca.crl_path.read_bytes(), 0o644),
        }
        for name, (data, mode) in files.items():
            write_atomic(pgdata / name, data, mode, owner=self._server_owner())

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        result = self._run([self.binaries.pg_ctl, "status", "-D", str(self.data_dir)], check=False)
        return result.returncode == 0

    def start(self) -> bool:
        """Start the server (initializing it first if needed); returns False if it was already running."""
        self.initialize()
        if self.is_running():
            return False
        config = self.config
        if self._requested_port and self._requested_port != config.port:
            config.port = self._requested_port
            self._save_config(config)
            self._write_port(config.port)
        if _port_in_use(config.port):
            raise ClusterError(
                f"Port {config.port} on {LISTEN_ADDRESS} is in use by another program; set {ENV_PG_PORT} to a "
                f"free port (or stop the other server) and run `energy-assets db start` again."
            )
        self._renew_server_certificate_if_due()
        if not self.log_path.exists():
            self.log_path.touch(mode=0o640)
        self._chown_to_server(self.log_path)
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
        if result.returncode != 0:
            raise ClusterError(
                f"PostgreSQL did not start (pg_ctl exit {result.returncode}). Last lines of {self.log_path}:\n"
                + self.log_tail()
            )
        return True

    def _write_port(self, port: int) -> None:
        conf = self.data_dir / _CONF_FILE
        lines = [
            f"port = '{port}'" if line.startswith("port =") else line
            for line in conf.read_text().splitlines()
        ]
        conf.write_text("\n".join(lines) + "\n")

    def stop(self) -> bool:
        """Stop the server; returns False if it was not running."""
        if not self.is_running():
            return False
        self._run([self.binaries.pg_ctl, "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60"])
        return True

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def status(self) -> ClusterStatus:
        config = self.load_config()
        initialized = config is not None and (self.data_dir / "PG_VERSION").exists()
        serial = days_left = None
        if initialized:
            from cryptography import x509

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

    # ------------------------------------------------------------------ connections
    def superuser_password(self) -> str:
        try:
            return self.password_path.read_text().strip()
        except FileNotFoundError as exc:
            raise ClusterError(
                f"{self.password_path} is missing; the managed cluster cannot be reached without it. "
                f"Restore it or remove {self.directory} to start over."
            ) from exc

    def settings(self, dbname: str = DATA_DATABASE, *, host: str = "localhost") -> PostgresSettings:
        """Connection settings for a database of this cluster: verify-full against the project CA."""
        config = self.config
        client: dict[str, str] = {}
        if config.client_cert_auth:
            client = self._client_certificate_files(config.superuser)
        return PostgresSettings(
            host=host,
            hostaddr=LISTEN_ADDRESS,
            port=config.port,
            dbname=dbname,
            user=config.superuser,
            password=self.superuser_password(),
            sslmode="verify-full",
            sslrootcert=str(self.home.ca_dir / "ca.crt"),
            sslcrl=str(self.home.ca_dir / "crl.pem"),
            **client,
        )

    def _client_certificate_files(self, role: str) -> dict[str, str]:
        ca = self.certificate_authority()
        current = [
            cert
            for cert in ca.issued()
            if cert.kind == "client"
            and cert.subject_cn == role
            and cert.days_left() > RENEW_SERVER_CERT_WITHIN_DAYS
        ]
        revoked = {s.serial for s in ca.status() if s.revoked}
        current = [cert for cert in current if cert.serial not in revoked]
        issued = current[-1] if current else ca.issue_client_certificate(role)
        return {"sslcert": str(issued.cert_path), "sslkey": str(issued.key_path)}

    def ensure_running(self, dbname: str = DATA_DATABASE) -> PostgresSettings:
        """Initialize and start the cluster if needed, create its databases, return settings for `dbname`."""
        self.start()
        self.ensure_databases()
        return self.settings(dbname)

    def ensure_databases(self) -> None:
        from energy_assets.postgres.admin import create_database

        with connect(self.settings("postgres"), autocommit=True) as conn:
            for name in self.config.databases:
                create_database(conn, name)

    # ------------------------------------------------------------------ certificate rotation
    def _renew_server_certificate_if_due(self) -> None:
        from cryptography import x509

        cert_path = self.data_dir / "server.crt"
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        days_left = (cert.not_valid_after_utc.timestamp() - time.time()) / 86400
        if days_left < RENEW_SERVER_CERT_WITHIN_DAYS:
            self._install_tls_files(self.data_dir, self._issue_server_certificate(self.config))

    def install_server_certificate(
        self, issued: IssuedCertificate, *, verify_timeout_s: float = 15.0
    ) -> None:
        """Install a server certificate, reload without restart, and check the server presents it."""
        self._install_tls_files(self.data_dir, issued)
        if not self.is_running():
            return
        self._run([self.binaries.pg_ctl, "reload", "-D", str(self.data_dir)])
        deadline = time.monotonic() + verify_timeout_s
        served = None
        while time.monotonic() < deadline:
            served = presented_certificate(LISTEN_ADDRESS, self.config.port).serial_number
            if served == issued.serial:
                return
            time.sleep(0.2)
        raise CertificateError(
            f"After reloading, PostgreSQL still presents certificate serial {served:x}, not the new "
            f"{issued.serial:x}: the server kept its old certificate. Check {self.log_path}:\n{self.log_tail()}"
        )

    def rotate_server_certificate(self, *, validity_days: int = 397) -> IssuedCertificate:
        """Issue a new server certificate from the project CA, install it and verify it is served."""
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
        """Copy the CA's current CRL into the cluster and reload, after a revocation."""
        ca = self.certificate_authority()
        target = self.data_dir / "root.crl"
        write_atomic(target, ca.crl_path.read_bytes(), 0o644, owner=self._server_owner())
        if self.is_running():
            self._reload_and_wait()

    def _reload_and_wait(self, timeout_s: float = 10.0) -> None:
        """Reload the configuration and wait until new sessions see it (the reload is asynchronous)."""
        settings = self.settings("postgres")
        with connect(settings, autocommit=True) as conn:
            before = conn.execute("SELECT pg_conf_load_time()").fetchone()[0]
            conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with connect(settings, autocommit=True) as conn:
                    if conn.execute("SELECT pg_conf_load_time()").fetchone()[0] > before:
                        return
            except DatabaseError:
                return  # the new configuration already refuses us (e.g. our own certificate was revoked)
            time.sleep(0.05)
        raise ClusterError(
            f"PostgreSQL did not reload its configuration within {timeout_s:.0f} s; see {self.log_path}."
        )
