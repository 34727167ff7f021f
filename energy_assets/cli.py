"""The `energy-assets` operator CLI: the certificate authority, the managed cluster, the Dagster home.

Each command is a thin shell over the domain modules. Every expected failure (the platform's own
errors, OS errors such as permissions or a missing program, database errors, damaged files) is printed
as one line (what, where, what to do) with exit code 2; an unexpected bug prints one line and where its
full traceback was written, with exit code 70 (EX_SOFTWARE). No command prints a Python traceback.

Exit codes: 0 ok, 1 `ca status` found something expiring or expired or `source ingest` refused a file,
2 an expected error (or a usage error),
3 `db status` found the server stopped, 70 a bug, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from energy_assets.errors import ConfigurationError, EnergyAssetsError
from energy_assets.postgres.admin import create_database, drop_database, list_sessions, terminate_sessions
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import PostgresSettings, connect, scalar
from energy_assets.postgres.settings_from_env import external_settings
from energy_assets.settings import (
    DAGSTER_DATABASE,
    DATA_DATABASE,
    ENV_HOME,
    ENV_PG_URL,
    DataHome,
    environment_problems,
)
from energy_assets.tls.ca import CertificateAuthority, CertificateStatus

EXIT_EXPIRING = 1
EXIT_ERROR = 2
EXIT_STOPPED = 3
EXIT_BUG = 70
EXIT_INTERRUPTED = 130


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
    home = _home()
    home.ensure()
    ca, created = CertificateAuthority.init(home.ca_dir, common_name=args.common_name)
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


def _parse_serial(text: str) -> int:
    try:
        return int(text, 16)
    except ValueError as exc:
        raise ConfigurationError(
            f"{text!r} is not a certificate serial; pass it in hex as `energy-assets ca status` prints it."
        ) from exc


def cmd_ca_revoke(args: argparse.Namespace) -> int:
    serial = _parse_serial(args.serial)
    cluster = _cluster()
    ca = cluster.certificate_authority()
    ca.get(serial)  # an unknown serial fails here, before anything changes
    initialized = cluster.status().initialized
    if initialized and cluster.served_certificate_serial() == serial:
        # Revoking first would leave the server presenting a revoked certificate: every client
        # (checking the CRL) would refuse it. Rotate first, then revoke.
        issued = cluster.rotate_server_certificate()
        print(
            f"Serial {serial:x} is the certificate the managed cluster presents; it now presents {issued.serial:x}."
        )
    crl = ca.revoke(serial)
    print(f"Revoked serial {serial:x}; CRL written to {crl}")
    if initialized:
        cluster.refresh_crl()
        print("The managed cluster now uses the new CRL.")
    return 0


def cmd_ca_renew(args: argparse.Namespace) -> int:
    cluster = _cluster()
    if cluster.load_config() is not None:
        done = cluster.maintain_certificates()
    else:
        done = CertificateAuthority.load_or_create(_home().ca_dir).maintain()
    print("\n".join(f"Done: {action}." for action in done) if done else "Nothing was due.")
    return 0


def cmd_ca_rollover(args: argparse.Namespace) -> int:
    cluster = _cluster()
    ca = CertificateAuthority.load_or_create(_home().ca_dir)
    new_root = ca.rollover()
    print(
        f"New root CA serial {new_root.serial_number:x}, valid until {new_root.not_valid_after_utc.isoformat()}."
    )
    previous = ca.previous_certificate
    if previous is not None:
        print(
            f"The previous root stays trusted (in {ca.trust_bundle_path}) until it expires on "
            f"{previous.not_valid_after_utc.isoformat()}."
        )
    if cluster.load_config() is not None:
        for action in cluster.maintain_certificates():
            print(f"Done: {action}.")
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


def _fix_for(status: CertificateStatus) -> str:
    if status.kind == "ca":
        return "energy-assets ca rollover"
    if status.kind == "server":
        return "energy-assets ca rotate-server"
    return f"energy-assets ca issue client --role {status.subject_cn}"


def _superseded(status: CertificateStatus, statuses: list[CertificateStatus], in_use: int | None) -> bool:
    """A leaf nobody should use any more: not the served server certificate, or an older client one."""
    active_ca = statuses[0].serial
    if status.kind == "server":
        return in_use is not None and status.serial != in_use
    if status.kind != "client":
        return False
    if status.issuer_serial != active_ca:
        return True
    newer = [
        other
        for other in statuses
        if other.kind == "client"
        and other.subject_cn == status.subject_cn
        and not other.revoked
        and other.issuer_serial == active_ca
        and other.not_after > status.not_after
    ]
    return bool(newer)


def cmd_ca_status(args: argparse.Namespace) -> int:
    ca = CertificateAuthority(_home().ca_dir)
    statuses = ca.status(warn_days=args.warn_days)
    cluster_status = _cluster().status()
    in_use = cluster_status.server_certificate_serial if cluster_status.initialized else None
    problems: list[str] = []
    for status in statuses:
        if status.revoked:
            flag = "REVOKED"
        elif status.kind == "ca-prev":
            flag = "previous root, trusted until it expires (rollover overlap)"
        elif _superseded(status, statuses, in_use):
            flag = "superseded"
        elif status.expired:
            flag = f"EXPIRED: run `{_fix_for(status)}`"
            problems.append(f"{status.kind} {status.serial:x} expired")
        elif status.expiring:
            flag = f"EXPIRING: run `{_fix_for(status)}`"
            problems.append(f"{status.kind} {status.serial:x} expires in {status.days_left:.0f} days")
        else:
            flag = "ok"
        if status.serial == in_use:
            flag += " (served by the managed cluster)"
        print(
            f"{status.kind:7} {status.serial:040x} {status.subject_cn:30} "
            f"{status.days_left:8.1f} days left  until {status.not_after:%Y-%m-%d}  {flag}"
        )
    crl = ca.crl_status()
    if crl.next_update is None or crl.days_left is None:
        flag = "MISSING or unreadable: run `energy-assets ca renew`"
        problems.append(f"CRL {crl.path} missing")
        print(f"{'crl':7} {str(crl.path):71} {flag}")
    else:
        if crl.expired:
            flag = "EXPIRED: run `energy-assets ca renew`"
            problems.append("the CRL expired")
        elif crl.renewal_due:
            flag = "RENEWAL DUE: run `energy-assets ca renew`"
            problems.append(f"the CRL's next update is in {crl.days_left:.0f} days")
        else:
            flag = "ok"
        print(
            f"{'crl':7} {'next update':71} {crl.days_left:8.1f} days left  "
            f"until {crl.next_update:%Y-%m-%d}  {flag}"
        )
    if problems:
        print(f"{len(problems)} problem(s): {'; '.join(problems)}.")
        return EXIT_EXPIRING
    return 0


# ---------------------------------------------------------------- db
def cmd_db_start(args: argparse.Namespace) -> int:
    cluster = _cluster()
    started = cluster.start_with_databases()
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
            version = scalar(conn, "SHOW server_version")
        print(f"External server {settings.describe()}: reachable, PostgreSQL {version}")
        return 0
    status = _cluster().status()
    print(status.describe())
    return 0 if status.running else EXIT_STOPPED


def cmd_db_url(args: argparse.Namespace) -> int:
    # The URI names the 0600 passfile (managed cluster): psql connects without a prompt, and the password
    # stays out of shell history, process lists and logs.
    print(_settings(args.database).uri(with_password=args.with_password))
    return 0


def cmd_db_sessions(args: argparse.Namespace) -> int:
    with connect(_settings("postgres"), autocommit=True) as conn:
        sessions = list_sessions(conn, database=args.database, state=args.state)
    if args.json:
        print(json.dumps([s.as_dict() for s in sessions], indent=2))
        return 0
    print(f"{'PID':>7} {'DATABASE':15} {'USER':15} {'STATE':20} {'TLS':8} APPLICATION")
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
    from energy_assets.instance.home import dagster_environment, write_dagster_yaml

    home = _home()
    home.ensure()
    dagster_home = home.dagster_home
    write_dagster_yaml(dagster_home)
    env = dagster_environment(_settings(DAGSTER_DATABASE), dagster_home)
    env[ENV_HOME] = str(home.root)
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def cmd_sample_run(args: argparse.Namespace) -> int:
    from energy_assets.defs.sample import run_sample_pipeline

    summary = run_sample_pipeline(_home(), ephemeral_instance=args.ephemeral_instance)
    print(summary)
    return 0


# ---------------------------------------------------------------- meters
def cmd_meters_ingest(args: argparse.Namespace) -> int:
    from energy_assets.defs.build import build_defs
    from energy_assets.defs.meters import ingest_files
    from energy_assets.defs.sample import dagster_instance

    home = _home()
    defs = build_defs()
    with dagster_instance(home, ephemeral=args.ephemeral_instance) as instance:
        outcomes = ingest_files(defs, instance, [Path(path) for path in args.paths])
    for outcome in outcomes:
        print(f"{outcome.path}: {'ok' if outcome.ok else 'FAILED'}: {outcome.message}")
    return 0 if all(outcome.ok for outcome in outcomes) else EXIT_ERROR


def cmd_meters_rotate_keys(args: argparse.Namespace) -> int:
    from energy_assets.defs.declarations import declared_sources
    from energy_assets.defs.file_source.component import FileSource
    from energy_assets.defs.meters.component import Nem12Inbox
    from energy_assets.sources.files.ledger import FileLedger
    from energy_assets.sources.meters import ledger
    from energy_assets.sources.meters.identifiers import NmiProtector
    from energy_assets.sources.meters.settings import ENV_NMI_FERNET_KEYS, ENV_NMI_HMAC_KEY, MeterSettings

    # One key set for the platform: protected NMIs and the file sources' sensitive columns.
    sources = declared_sources()
    file_sources = [
        s.name
        for s in sources
        if isinstance(s.component, FileSource) and any(c.sensitive for c in s.component.columns)
    ]
    # The meters declaration's `protect_nmi` wins over the environment, as in the inbox's own runs.
    declared = [s.component.protect_nmi for s in sources if isinstance(s.component, Nem12Inbox)]
    protect_nmi = next((flag for flag in declared if flag is not None), MeterSettings.from_env().protect_nmi)
    if not protect_nmi and not file_sources:
        raise ConfigurationError(
            "Identifiers are not protected (ENERGY_METERS_PROTECT_NMI is off) and no file source declares a sensitive"
            " column; nothing to re-encrypt."
        )
    protector = NmiProtector.from_text(os.environ.get(ENV_NMI_HMAC_KEY), os.environ.get(ENV_NMI_FERNET_KEYS))
    count = 0
    with connect(_settings(DATA_DATABASE)) as conn:
        if protect_nmi:
            ledger.ensure_tables(conn)
            count = ledger.rotate_protected_nmis(conn, lambda tokens: [protector.rotate(t) for t in tokens])
        for name in file_sources:
            files = FileLedger(name)
            files.ensure_tables(conn)
            count += files.rotate(conn, lambda tokens: [protector.rotate(t) for t in tokens])
    what = (
        "protected NMI(s)"
        if not file_sources
        else "protected value(s) (NMIs and sensitive file-source columns)"
    )
    print(
        f"Re-encrypted {count} {what} under the newest key; older keys can be removed once no token needs them."
    )
    return 0


def cmd_meters_keys(args: argparse.Namespace) -> int:
    from energy_assets.sources.meters.identifiers import generate_keys
    from energy_assets.sources.meters.settings import ENV_NMI_FERNET_KEYS, ENV_NMI_HMAC_KEY

    hmac_key, fernet_key = generate_keys()
    print("# Keep these secret (a secrets manager or a 0600 file); they never appear in logs or the UI.")
    print(f"export {ENV_NMI_HMAC_KEY}={shlex.quote(hmac_key)}")
    print(f"export {ENV_NMI_FERNET_KEYS}={shlex.quote(fernet_key)}")
    return 0


# ---------------------------------------------------------------- source (users' own files)
EXIT_REFUSED = 1


def _file_source(name: str) -> tuple[object, object]:
    """The declared file source `name` and the definitions it loads with; a usage error if there is none."""
    from energy_assets.defs.build import build_defs
    from energy_assets.defs.declarations import declared_sources
    from energy_assets.defs.file_source.component import FileSource
    from energy_assets.sources.files.declaration import FileSourceDeclaration

    sources = [s for s in declared_sources() if isinstance(s.component, FileSource)]
    match = next((s for s in sources if s.name == name), None)
    if match is None:
        known = ", ".join(s.name for s in sources) or "none yet"
        raise ConfigurationError(
            f"no file source named {name!r} is declared (declared: {known}); create it with `energy-assets source add {name} --sample FILE`."
        )
    assert isinstance(match.component, FileSource)
    return FileSourceDeclaration.model_validate(match.component.model_dump()), build_defs()


def cmd_source_add(args: argparse.Namespace) -> int:
    import re

    from energy_assets.defs.declarations import DECLARATION_FILE, operator_sources_dir
    from energy_assets.defs.file_source.ingest import refuse_unsafe
    from energy_assets.sources.files.declaration import SOURCE_NAME_PATTERN
    from energy_assets.sources.files.inference import infer_declaration

    if not re.fullmatch(SOURCE_NAME_PATTERN, args.name):
        raise ConfigurationError(
            f"{args.name!r} is not a source name; use lower-case letters, digits and _ ({SOURCE_NAME_PATTERN})."
        )
    sample = Path(args.sample)
    refused = refuse_unsafe(sample)
    if refused is not None:
        raise ConfigurationError(f"--sample {sample}: {refused}.")
    target = operator_sources_dir() / args.name / DECLARATION_FILE
    if target.exists() and not args.force:
        print(f"{target} exists; kept (use --force to replace it).")
        return 0

    def split(text: str | None) -> list[str]:
        return [part for part in text.split(",") if part.strip()] if text else []

    inferred = infer_declaration(
        sample,
        args.name,
        key=split(args.key),
        time=args.time,
        time_name=args.time_name,
        timezone=args.timezone,
        sensitive=split(args.sensitive),
        partition=args.partition,
        skip_rows=args.skip_rows,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    from energy_assets.files import write_atomic

    write_atomic(target, inferred.to_yaml().encode("utf-8"), 0o600)
    d = inferred.declaration
    print(f"Wrote {target}")
    for column in d.columns:
        fmt = f" ({column.format})" if column.format else ""
        flag = " sensitive" if column.sensitive else ""
        print(f"  {column.name:<28} {column.type}{fmt}{flag}  <- {column.header!r}")
    for combined in d.combined_times:
        print(f"  {combined.name:<28} timestamptz  <- {combined.date} + {combined.time} in {d.timezone}")
    print(
        f"key: {', '.join(d.key)}; time: {d.time_column or 'none'}; partition: {d.partition}; sensitive: {', '.join(d.sensitive_columns) or 'none'}"
    )
    for note in inferred.notes:
        print(f"note: {note}")
    return 0


def cmd_source_ingest(args: argparse.Namespace) -> int:
    from energy_assets.defs.file_source.ingest import ingest_files
    from energy_assets.defs.sample import dagster_instance

    declaration, defs = _file_source(args.name)
    with dagster_instance(_home(), ephemeral=args.ephemeral_instance) as instance:
        outcomes = ingest_files(defs, instance, declaration, [Path(path) for path in args.paths])  # type: ignore[arg-type]
    for outcome in outcomes:
        print(f"{outcome.path}: {_one_line(outcome.message)}")
    return 0 if all(outcome.ok for outcome in outcomes) else EXIT_REFUSED


def cmd_source_list(args: argparse.Namespace) -> int:
    from energy_assets.defs.declarations import declared_sources
    from energy_assets.defs.file_source.component import FileSource
    from energy_assets.sources.files.ledger import FileLedger

    sources = [s for s in declared_sources() if isinstance(s.component, FileSource)]
    if not sources:
        print("No file sources declared; add one with `energy-assets source add NAME --sample FILE`.")
        return 0
    with connect(_settings(DATA_DATABASE)) as conn:
        for source in sources:
            ledger = FileLedger(source.name)
            ledger.ensure_tables(conn)
            summary = ledger.summary(conn)
            last = summary.last_load.isoformat(timespec="seconds") if summary.last_load else "never"
            print(
                f"{source.name}: {summary.processed} file(s) loaded, {summary.quarantined} quarantined,"
                f" {summary.rows} rows loaded, last load {last} ({source.folder})"
            )
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
    groups = parser.add_subparsers(
        dest="group", required=True, metavar="{ca,db,dagster,sample,meters,source}"
    )

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
    p = ca_cmds.add_parser(
        "revoke", help="revoke a certificate and publish the CRL (the served one is rotated first)"
    )
    p.add_argument("serial", help="serial number in hex, as `ca status` prints it")
    p.set_defaults(func=cmd_ca_revoke)
    p = ca_cmds.add_parser(
        "rotate-server", help="new server certificate for the managed cluster, reloaded live"
    )
    p.add_argument("--days", type=int, default=397, help="validity in days (at most 397)")
    p.set_defaults(func=cmd_ca_rotate_server)
    p = ca_cmds.add_parser(
        "renew", help="do every renewal that is due now: CRL, server certificate, root rollover"
    )
    p.set_defaults(func=cmd_ca_renew)
    p = ca_cmds.add_parser(
        "rollover", help="new root CA now; the old one stays trusted until it expires, the server moves over"
    )
    p.set_defaults(func=cmd_ca_rollover)
    p = ca_cmds.add_parser(
        "status", help="certificates, CA and CRL with days left; exit 1 if any expires soon or expired"
    )
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
    p = db_cmds.add_parser(
        "url", help="libpq URI of the data database (verify-full, sslrootcert, passfile; no password)"
    )
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
    p = dagster_cmds.add_parser(
        "env", help="write dagster.yaml into DAGSTER_HOME and print DAGSTER_HOME and DAGSTER_PG_URL"
    )
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

    meters = groups.add_parser(
        "meters", help="NEM12 meter files", description="Load meter files and manage protected identifiers."
    )
    meters_cmds = meters.add_subparsers(dest="command", required=True)
    p = meters_cmds.add_parser(
        "ingest", help="load NEM12 files exactly as the inbox sensor's runs do (one line per file)"
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="NEM12 files (.csv or .zip)")
    p.add_argument(
        "--ephemeral-instance", action="store_true", help="keep run history in memory, not in PostgreSQL"
    )
    p.set_defaults(func=cmd_meters_ingest)
    p = meters_cmds.add_parser("rotate-keys", help="re-encrypt protected NMIs under the newest Fernet key")
    p.set_defaults(func=cmd_meters_rotate_keys)
    p = meters_cmds.add_parser("keys", help="print a new HMAC key and Fernet key as export lines")
    p.set_defaults(func=cmd_meters_keys)

    source = groups.add_parser(
        "source",
        help="users' own files (declared file sources)",
        description="Declare, load and list file sources.",
    )
    source_cmds = source.add_subparsers(dest="command", required=True)
    p = source_cmds.add_parser(
        "add", help="infer a declaration from a whole sample file and write its defs.yaml"
    )
    p.add_argument("name", metavar="NAME", help="source name ([a-z][a-z0-9_]{0,40})")
    p.add_argument("--sample", required=True, metavar="FILE", help="a representative CSV file (read whole)")
    p.add_argument(
        "--key", metavar="COL[,COL...]", help="natural key (headers or snake_case names); default: proposed"
    )
    p.add_argument(
        "--time", metavar="COL[+COL]", help="the time column, or a date and a time column combined"
    )
    p.add_argument(
        "--time-name", default="recorded_at", metavar="NAME", help="name of a combined time column"
    )
    p.add_argument(
        "--timezone", metavar="TZ", help="IANA zone of local wall-clock times (e.g. Europe/London)"
    )
    p.add_argument("--sensitive", metavar="COL[,COL...]", help="personal columns: stored as pseudonyms only")
    p.add_argument(
        "--partition", choices=["month", "none"], help="lake partitions (default: month if a time column)"
    )
    p.add_argument("--skip-rows", type=int, default=0, metavar="N", help="preamble lines before the header")
    p.add_argument("--force", action="store_true", help="replace an existing declaration")
    p.set_defaults(func=cmd_source_add)
    p = source_cmds.add_parser(
        "ingest", help="load files exactly as the source's inbox sensor does (one line per file)"
    )
    p.add_argument("name", metavar="NAME", help="a declared file source")
    p.add_argument("paths", nargs="+", metavar="FILE", help="files to load")
    p.add_argument(
        "--ephemeral-instance", action="store_true", help="keep run history in memory, not in PostgreSQL"
    )
    p.set_defaults(func=cmd_source_ingest)
    p = source_cmds.add_parser(
        "list", help="each declared file source with files loaded, rows and the last load"
    )
    p.set_defaults(func=cmd_source_list)
    return parser


# Commands that only print (new keys) run whatever the environment says; every other one checks it first.
_NO_SETTINGS_CHECK = {("meters", "keys")}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if (args.group, args.command) not in _NO_SETTINGS_CHECK:
            problems = environment_problems()
            for problem in problems:
                print(f"energy-assets: error: {problem}", file=sys.stderr)
            if problems:
                return EXIT_ERROR
        return int(args.func(args))
    except KeyboardInterrupt:
        print("energy-assets: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        message = describe_expected_error(exc)
        if message is not None:
            print(f"energy-assets: error: {_one_line(message)}", file=sys.stderr)
            return EXIT_ERROR
        log = _log_traceback(exc)
        print(
            f"energy-assets: internal error (a bug): {type(exc).__name__}: {_one_line(str(exc))}; "
            f"the full traceback is in {log}. Please report it.",
            file=sys.stderr,
        )
        return EXIT_BUG


def describe_expected_error(exc: BaseException) -> str | None:
    """One message for an expected failure (naming the file or setting and what to do), else None.

    Errors wrapped by other layers (a Dagster step failure, `raise ... from`) are unwrapped to the
    first expected cause.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        message = _describe_one(current)
        if message is not None:
            return message
        user_exception = getattr(current, "user_exception", None)
        current = user_exception if isinstance(user_exception, BaseException) else current.__cause__
    return None


def _describe_one(exc: BaseException) -> str | None:
    if isinstance(exc, EnergyAssetsError):
        return str(exc)
    if isinstance(exc, json.JSONDecodeError):
        return (
            f"a JSON document is damaged (line {exc.lineno}, column {exc.colno}: {exc.msg}); restore the file "
            "or delete it so it is fetched again"
        )
    if isinstance(exc, PermissionError):
        where = exc.filename or "a file"
        return (
            f"permission denied: {where}. Run as the owner of the data home, fix the permissions, or set "
            f"{ENV_HOME} to a folder you can write."
        )
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return (
            f"{exc.filename} does not exist ({exc.strerror}); check the path, or install the missing program."
        )
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return (
            f"{exc.strerror or exc}{where}. Check the path, free disk space and permissions ({ENV_HOME} names "
            "the data home)."
        )
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"`{exc.cmd}` did not finish within {exc.timeout:.0f} s; check the server log and the machine's load."
    if isinstance(exc, psycopg.Error):
        return (
            f"database error: {str(exc).strip()}. Check the server with `energy-assets db status` "
            f"(or {ENV_PG_URL})."
        )
    return None


def _one_line(text: str) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def _log_traceback(exc: BaseException) -> Path:
    """Append the traceback to `<data home>/logs/cli-errors.log` (or the temp folder); returns the file."""
    text = f"--- {datetime.now(timezone.utc).isoformat()} energy-assets {' '.join(sys.argv[1:])}\n"
    text += "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    candidates = []
    try:
        candidates.append(DataHome.from_env().root / "logs")
    except Exception:  # the data home itself may be what is broken
        pass
    candidates.append(Path(tempfile.gettempdir()))
    for folder in candidates:
        path = folder / (
            "cli-errors.log" if folder.name == "logs" else f"energy-assets-errors-{os.getuid()}.log"
        )
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as handle:
                handle.write(text)
            return path
        except OSError:
            continue
    return Path("(nowhere: no writable folder)")


if __name__ == "__main__":
    sys.exit(main())
