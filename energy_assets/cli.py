"""The `energy-assets` operator CLI: the certificate authority, the managed cluster, the Dagster home.

Each command is a thin shell over the domain modules; errors from them are printed as one line
(what, where, what to do) with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence

from energy_assets.errors import EnergyAssetsError
from energy_assets.postgres.admin import create_database, drop_database, list_sessions, terminate_sessions
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.postgres.settings_from_env import external_settings
from energy_assets.settings import DAGSTER_DATABASE, DATA_DATABASE, ENV_PG_URL, DataHome
from energy_assets.tls.ca import CertificateAuthority


def _home() -> DataHome:
    return DataHome.from_env()


def _cluster() -> ManagedCluster:
    return ManagedCluster(_home())


def _settings(database: str) -> PostgresSettings:
    """The external server if ENERGY_PG_URL is set, else the managed cluster (started if needed)."""
    url = os.environ.get(ENV_PG_URL)
    if url:
        return external_settings(url).with_database(database)
    return _cluster().ensure_running(database)


# ---------------------------------------------------------------- ca
def cmd_ca_init(args: argparse.Namespace) -> int:
    ca, created = CertificateAuthority.init(_home().ca_dir, common_name=args.common_name)
    if not ca.crl_path.exists():
        ca.write_crl()
    verb = "Created" if created else "Kept the existing"
    print(f"{verb} CA {ca.certificate.subject.rfc4514_string()} at {ca.ca_cert_path}")
    return 0


def cmd_ca_issue(args: argparse.Namespace) -> int:
    ca, _ = CertificateAuthority.init(_home().ca_dir)
    if args.kind == "server":
        issued = ca.issue_server_certificate(
            args.dns or ["localhost"], args.ip or [], validity_days=args.days
        )
    else:
        issued = ca.issue_client_certificate(args.role, validity_days=args.days)
    print(f"Issued {issued.kind} certificate serial {issued.serial:x} for {issued.subject_cn}")
    print(f"  certificate: {issued.cert_path}\n  key:         {issued.key_path}")
    print(f"  valid until: {issued.not_after.isoformat()}")
    return 0


def cmd_ca_revoke(args: argparse.Namespace) -> int:
    ca, _ = CertificateAuthority.init(_home().ca_dir)
    crl = ca.revoke(int(args.serial, 16))
    print(f"Revoked serial {args.serial}; CRL written to {crl}")
    cluster = _cluster()
    if cluster.status().initialized:
        cluster.refresh_crl()
        print("The managed cluster now uses the new CRL.")
    return 0


def cmd_ca_rotate_server(args: argparse.Namespace) -> int:
    cluster = _cluster()
    cluster.initialize()
    issued = cluster.rotate_server_certificate(validity_days=args.days)
    where = "verified: the server presents it" if cluster.is_running() else "installed; the server is stopped"
    print(
        f"New server certificate serial {issued.serial:x}, valid until {issued.not_after.isoformat()} ({where})."
    )
    return 0


def cmd_ca_status(args: argparse.Namespace) -> int:
    ca = CertificateAuthority(_home().ca_dir)
    statuses = ca.status(warn_days=args.warn_days)
    cluster_status = _cluster().status()
    in_use = cluster_status.server_certificate_serial if cluster_status.initialized else None
    expiring = 0
    for status in statuses:
        superseded = in_use is not None and status.kind == "server" and status.serial != in_use
        if status.revoked:
            flag = "REVOKED"
        elif superseded:
            flag = "superseded"
        else:
            flag = "EXPIRING" if status.expiring else "ok"
            expiring += status.expiring
        if status.serial == in_use:
            flag += " (served by the managed cluster)"
        print(
            f"{status.kind:7} {status.serial:040x} {status.subject_cn:30} "
            f"{status.days_left:8.1f} days left  {flag}"
        )
    if expiring:
        print(
            f"{expiring} certificate(s) expire within {args.warn_days} days: `energy-assets ca rotate-server`."
        )
        return 1
    return 0


# ---------------------------------------------------------------- db
def cmd_db_start(args: argparse.Namespace) -> int:
    cluster = _cluster()
    started = cluster.start()
    cluster.ensure_databases()
    print(("Started: " if started else "Already running: ") + cluster.status().describe())
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    stopped = _cluster().stop()
    print("Stopped." if stopped else "Not running.")
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    if os.environ.get(ENV_PG_URL):
        settings = external_settings(os.environ[ENV_PG_URL])
        with connect(settings) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        print(f"External server {settings.describe()}: reachable, PostgreSQL {version}")
        return 0
    status = _cluster().status()
    print(status.describe())
    return 0 if status.running else 3


def cmd_db_url(args: argparse.Namespace) -> int:
    print(_settings(args.database).uri(with_password=args.with_password))
    return 0


def cmd_db_sessions(args: argparse.Namespace) -> int:
    with connect(_settings("postgres"), autocommit=True) as conn:
        sessions = list_sessions(conn, database=args.database, state=args.state)
    if args.json:
        print(json.dumps([s.as_dict() for s in sessions], indent=2))
        return 0
    for s in sessions:
        tls = s.ssl_version if s.ssl else "no TLS"
        print(
            f"{s.pid:>7} {s.database or '-':15} {s.user or '-':15} {s.state or '-':20} {tls:8} {s.application_name}"
        )
    return 0


def cmd_db_terminate(args: argparse.Namespace) -> int:
    with connect(_settings("postgres"), autocommit=True) as conn:
        ended = terminate_sessions(conn, database=args.database, state=args.state)
    print(f"Terminated {len(ended)} session(s): {', '.join(map(str, ended)) or '-'}")
    return 0


def cmd_db_create(args: argparse.Namespace) -> int:
    with connect(_settings("postgres"), autocommit=True) as conn:
        created = create_database(conn, args.name)
    print(f"Created database {args.name!r}." if created else f"Database {args.name!r} already exists.")
    return 0


def cmd_db_drop(args: argparse.Namespace) -> int:
    with connect(_settings("postgres"), autocommit=True) as conn:
        dropped = drop_database(conn, args.name, force=args.force)
    print(f"Dropped database {args.name!r}." if dropped else f"Database {args.name!r} does not exist.")
    return 0


# ---------------------------------------------------------------- dagster
def cmd_dagster_env(args: argparse.Namespace) -> int:
    from energy_assets.dagster_instance import dagster_environment, write_dagster_yaml

    home = _home()
    dagster_home = home.dagster_home
    write_dagster_yaml(dagster_home)
    env = dagster_environment(_settings(DAGSTER_DATABASE), dagster_home)
    env["ENERGY_ASSETS_HOME"] = str(home.root)
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def cmd_sample_run(args: argparse.Namespace) -> int:
    from energy_assets.pipeline import run_sample_pipeline

    summary = run_sample_pipeline(_home(), ephemeral_instance=args.ephemeral_instance)
    print(summary)
    return 0


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="energy-assets",
        description=(
            "Operate the energy_assets platform: its certificate authority, its managed PostgreSQL cluster "
            "and its Dagster home. The data home is ENERGY_ASSETS_HOME (default ~/.local/share/energy_assets, "
            "or /var/lib/energy_assets for root)."
        ),
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="{ca,db,dagster,sample}")

    ca = groups.add_parser(
        "ca", help="the project's certificate authority", description="Manage the private CA."
    )
    ca_cmds = ca.add_subparsers(dest="command", required=True)
    p = ca_cmds.add_parser("init", help="create the CA, or keep the existing valid one")
    p.add_argument("--common-name", default="energy_assets local CA", help="subject CN of a new CA")
    p.set_defaults(func=cmd_ca_init)
    p = ca_cmds.add_parser("issue", help="issue a server or client certificate")
    p.add_argument("kind", choices=["server", "client"], help="certificate kind")
    p.add_argument("--dns", action="append", help="DNS name for the SAN (server; repeatable)")
    p.add_argument("--ip", action="append", help="IP address for the SAN (server; repeatable)")
    p.add_argument("--role", default="energy_admin", help="database role, the CN (client)")
    p.add_argument("--days", type=int, default=397, help="validity in days (at most 397)")
    p.set_defaults(func=cmd_ca_issue)
    p = ca_cmds.add_parser("revoke", help="revoke a certificate by serial and publish the CRL")
    p.add_argument("serial", help="serial number in hex, as `ca status` prints it")
    p.set_defaults(func=cmd_ca_revoke)
    p = ca_cmds.add_parser(
        "rotate-server", help="new server certificate for the managed cluster, reloaded live"
    )
    p.add_argument("--days", type=int, default=397, help="validity in days (at most 397)")
    p.set_defaults(func=cmd_ca_rotate_server)
    p = ca_cmds.add_parser("status", help="every certificate with its days left; exit 1 if any expires soon")
    p.add_argument("--warn-days", type=int, default=30, help="report certificates expiring within N days")
    p.set_defaults(func=cmd_ca_status)

    db = groups.add_parser("db", help="the PostgreSQL server", description="Operate PostgreSQL.")
    db_cmds = db.add_subparsers(dest="command", required=True)
    p = db_cmds.add_parser("start", help="create (first time) and start the managed cluster")
    p.set_defaults(func=cmd_db_start)
    p = db_cmds.add_parser("stop", help="stop the managed cluster")
    p.set_defaults(func=cmd_db_stop)
    p = db_cmds.add_parser("status", help="is the server running; exit 3 if not")
    p.set_defaults(func=cmd_db_status)
    p = db_cmds.add_parser("url", help="libpq URI of the data database (sslmode=verify-full, sslrootcert)")
    p.add_argument("--database", default=DATA_DATABASE, help="database name (default: energy)")
    p.add_argument("--with-password", action="store_true", help="include the password (keep it out of logs)")
    p.set_defaults(func=cmd_db_url)
    p = db_cmds.add_parser("sessions", help="list client sessions")
    p.add_argument("--database", help="only sessions on this database")
    p.add_argument("--state", help="only sessions in this state (active, idle, ...)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_db_sessions)
    p = db_cmds.add_parser("terminate", help="end sessions on a database, optionally only in one state")
    p.add_argument("--database", required=True, help="database whose sessions end")
    p.add_argument("--state", help="only sessions in this state (e.g. idle)")
    p.set_defaults(func=cmd_db_terminate)
    p = db_cmds.add_parser("create", help="create a database")
    p.add_argument("name", help="database name")
    p.set_defaults(func=cmd_db_create)
    p = db_cmds.add_parser("drop", help="drop a database (never a maintenance database)")
    p.add_argument("name", help="database name")
    p.add_argument("--force", action="store_true", help="end live sessions first")
    p.set_defaults(func=cmd_db_drop)

    dagster = groups.add_parser(
        "dagster", help="the Dagster instance home", description="Dagster on PostgreSQL."
    )
    dagster_cmds = dagster.add_subparsers(dest="command", required=True)
    p = dagster_cmds.add_parser("env", help="write dagster.yaml into DAGSTER_HOME and print its variables")
    p.set_defaults(func=cmd_dagster_env)

    sample = groups.add_parser(
        "sample", help="the offline sample pipeline", description="Run the bundled sample."
    )
    sample_cmds = sample.add_subparsers(dest="command", required=True)
    p = sample_cmds.add_parser(
        "run", help="materialize every sample partition and its aggregates, end to end"
    )
    p.add_argument(
        "--ephemeral-instance", action="store_true", help="keep run history in memory, not in PostgreSQL"
    )
    p.set_defaults(func=cmd_sample_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except EnergyAssetsError as exc:
        print(f"energy-assets: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
