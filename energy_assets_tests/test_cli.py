"""The operator CLI, called in-process (`main([...])`): output, exit codes, and one-line errors."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from energy_assets.cli import build_parser, main
from energy_assets.errors import DataValidationError
from energy_assets.files import write_atomic
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import connect
from energy_assets.postgres.tls_probe import presented_certificate
from energy_assets.settings import DataHome
from energy_assets.tls.ca import CertificateAuthority, load_private_key


def _all_command_paths(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.extend(_all_command_paths(sub, (*prefix, name)))
    return paths


def test_every_command_has_help(capsys) -> None:
    paths = _all_command_paths(build_parser())
    assert ("db", "url") in paths and ("ca", "rotate-server") in paths and ("db", "sessions") in paths
    for path in paths:
        with pytest.raises(SystemExit) as exit_info:
            main([*path, "--help"])
        assert exit_info.value.code == 0
        assert "usage: energy-assets" in capsys.readouterr().out


def test_ca_init_twice_keeps_the_ca(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(tmp_path))
    assert main(["ca", "init"]) == 0
    assert "Created CA" in capsys.readouterr().out
    key = tmp_path / "ca" / "ca.key"
    first = (tmp_path / "ca" / "ca.crt").read_bytes()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert main(["ca", "init"]) == 0
    assert "Kept the existing CA" in capsys.readouterr().out
    assert (tmp_path / "ca" / "ca.crt").read_bytes() == first


def test_db_url_is_verify_full_with_rootcert(
    managed_cluster: ManagedCluster, data_home: DataHome, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(data_home.root))
    monkeypatch.delenv("ENERGY_PG_URL", raising=False)
    assert main(["db", "url"]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith(f"postgresql://energy_admin@localhost:{managed_cluster.config.port}/energy?")
    assert "sslmode=verify-full" in url
    assert f"sslrootcert={data_home.ca_dir}/trust.pem" in url
    assert f"passfile={managed_cluster.passfile_path}" in url
    assert managed_cluster.superuser_password() not in url


def test_errors_are_one_clear_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(tmp_path))
    assert main(["ca", "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("energy-assets: error:")
    assert "energy-assets ca init" in err
    monkeypatch.setenv("ENERGY_PG_URL", "postgresql://app@db.example/energy?sslmode=prefer")
    assert main(["db", "url"]) == 2
    assert "sslmode=prefer" in capsys.readouterr().err


def test_ca_status_marks_the_served_and_superseded_server_certificates(
    managed_cluster: ManagedCluster, data_home: DataHome, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(data_home.root))
    served = managed_cluster.rotate_server_certificate()
    assert main(["ca", "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    served_lines = [line for line in lines if f"{served.serial:040x}" in line]
    assert len(served_lines) == 1 and served_lines[0].endswith("ok (served by the managed cluster)")
    assert any(line.startswith("server") and line.endswith("superseded") for line in lines)
    assert any(line.startswith("ca ") for line in lines)


# -- no tracebacks: expected failures are one line with exit 2, bugs one line with exit 70 -------------------


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    return lines[0]


@pytest.mark.parametrize("command", [["db", "start"], ["ca", "init"], ["dagster", "env"], ["db", "url"]])
def test_unwritable_data_home_is_one_line_naming_it(tmp_path, monkeypatch, capsys, command) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    home = blocker / "energy_assets"
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(home))
    monkeypatch.delenv("ENERGY_PG_URL", raising=False)
    assert main(command) == 2
    line = _one_error_line(capsys)
    assert line.startswith("energy-assets: error:")
    assert str(home) in line
    assert "Not a directory" in line


def test_data_home_where_the_os_refuses_writes(monkeypatch, capsys) -> None:
    monkeypatch.setenv("ENERGY_ASSETS_HOME", "/sys/energy_assets_test")  # refused even for root
    assert main(["db", "start"]) == 2
    line = _one_error_line(capsys)
    assert "The data home /sys/energy_assets_test is not a writable folder" in line
    assert "Set ENERGY_ASSETS_HOME to a folder you can write" in line


def test_damaged_json_file_is_named_even_inside_a_wrapped_error(tmp_path, monkeypatch, capsys) -> None:
    """A damaged-file error naming the file, wrapped as a Dagster step failure would be."""
    damaged = tmp_path / "raw" / "public_power" / "DE" / "2024-06-15.json"
    damaged.parent.mkdir(parents=True)
    damaged.write_text('{"unix_seconds": [1, 2,, 3]}')

    class StepFailure(Exception):  # stands in for DagsterExecutionStepExecutionError
        def __init__(self, user_exception: BaseException) -> None:
            super().__init__("Error occurred while executing op")
            self.user_exception = user_exception

    def run(args) -> int:
        try:
            json.loads(damaged.read_text())
        except json.JSONDecodeError as error:
            problem = DataValidationError(
                f"{damaged} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg});"
                " delete it and materialize the raw asset again."
            )
            raise StepFailure(problem) from None
        return 0

    monkeypatch.setattr("energy_assets.cli.cmd_sample_run", run)
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(tmp_path))
    assert main(["sample", "run"]) == 2
    line = _one_error_line(capsys)
    assert f"{damaged} is not valid JSON (line 1, column 24: Expecting value)" in line
    assert "delete it and materialize the raw asset again" in line


def test_unexpected_bug_is_one_line_and_the_traceback_is_logged(tmp_path, monkeypatch, capsys) -> None:
    def broken(args) -> int:
        raise ZeroDivisionError("division by zero in a command")

    monkeypatch.setattr("energy_assets.cli.cmd_db_url", broken)
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(tmp_path))
    assert main(["db", "url"]) == 70
    line = _one_error_line(capsys)
    log = tmp_path / "logs" / "cli-errors.log"
    assert line == (
        "energy-assets: internal error (a bug): ZeroDivisionError: division by zero in a command; "
        f"the full traceback is in {log}. Please report it."
    )
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in broken" in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_missing_program_and_database_errors_are_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(tmp_path))
    monkeypatch.setenv("ENERGY_PG_BINDIR", str(tmp_path / "no-bin"))
    monkeypatch.delenv("ENERGY_PG_URL", raising=False)
    assert main(["db", "start"]) == 2
    assert "does not contain initdb and pg_ctl" in _one_error_line(capsys)
    monkeypatch.delenv("ENERGY_PG_BINDIR")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("")
    monkeypatch.setenv(
        "ENERGY_PG_URL", f"postgresql://app@127.0.0.1:1/energy?sslmode=verify-full&sslrootcert={ca_file}"
    )
    assert main(["db", "status"]) == 2
    assert "Cannot connect to PostgreSQL at app@127.0.0.1:1/energy" in _one_error_line(capsys)


def test_bad_settings_are_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(tmp_path))
    assert main(["ca", "revoke", "not-hex"]) == 2
    assert "'not-hex' is not a certificate serial" in _one_error_line(capsys)
    monkeypatch.setenv("ENERGY_PG_URL", "postgresql://app@db.example:port/energy")
    assert main(["db", "url"]) == 2
    assert "ENERGY_PG_URL (or PGPORT) has an invalid number" in _one_error_line(capsys)
    monkeypatch.delenv("ENERGY_PG_URL")
    monkeypatch.setenv("ENERGY_PG_PORT", "99999")
    assert main(["db", "start"]) == 2
    assert "ENERGY_PG_PORT='99999' is not a TCP port number" in _one_error_line(capsys)
    monkeypatch.delenv("ENERGY_PG_PORT")
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "cluster.json").write_text("{not json")
    assert main(["db", "status"]) == 2
    assert f"{tmp_path}/postgres/cluster.json is not a valid cluster configuration" in _one_error_line(capsys)


# -- settings: every bad one reported first, one line each, before any work ------------------------------------

SOURCE_LINE = "energy-assets: error: ENERGY_ASSETS_SOURCE='bogus' is not a source; use `sample` (bundled data) or `live`."
CONVENTION_LINE = (
    "energy-assets: error: BDG2_TIMESTAMP_CONVENTION='bogus' is not a timestamp convention; use one of: utc,"
    " site_standard_time"
)


def test_sample_run_with_bad_settings_lists_them_all_before_any_run_log(tmp_path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ENERGY_", "BDG2_", "ZENODO_", "DAGSTER_"))
    }
    env.update(
        ENERGY_ASSETS_HOME=str(tmp_path / "home"),
        ENERGY_ASSETS_SOURCE="bogus",
        BDG2_TIMESTAMP_CONVENTION="bogus",
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )

    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "energy_assets.cli", "sample", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started

    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.splitlines() == [SOURCE_LINE, CONVENTION_LINE]
    assert elapsed < 10  # the import of the CLI, not a run: before, 24 s and 8 lines of run logs
    assert not (tmp_path / "home").exists()  # nothing was created


def test_every_working_command_checks_the_settings_first(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ENERGY_ASSETS_SOURCE", "bogus")
    monkeypatch.setenv("ENERGY_PG_PORT", "99999")
    monkeypatch.delenv("ENERGY_PG_URL", raising=False)
    for command in (["db", "start"], ["dagster", "env"], ["meters", "ingest", "x.csv"], ["ca", "init"]):
        assert main(command) == 2
        assert capsys.readouterr().err.splitlines() == [
            SOURCE_LINE,
            "energy-assets: error: ENERGY_PG_PORT='99999' is not a TCP port number (1-65535).",
        ]
    assert not (tmp_path / "home").exists()
    assert main(["meters", "keys"]) == 0  # only prints new keys: runs whatever the environment says


def test_the_code_location_refuses_to_load_with_the_same_lines(monkeypatch) -> None:
    from energy_assets.defs.build import build_defs
    from energy_assets.errors import ConfigurationError

    monkeypatch.setenv("ENERGY_ASSETS_SOURCE", "bogus")
    monkeypatch.setenv("BDG2_TIMESTAMP_CONVENTION", "bogus")

    with pytest.raises(ConfigurationError) as raised:
        build_defs()

    prefix = "energy-assets: error: "
    assert str(raised.value).splitlines() == [
        SOURCE_LINE.removeprefix(prefix),
        CONVENTION_LINE.removeprefix(prefix),
    ]


def test_meter_keys_are_checked_when_protection_is_on(monkeypatch) -> None:
    from energy_assets.settings import environment_problems

    problems = environment_problems(
        {
            "ENERGY_METERS_PROTECT_NMI": "yes",
            "ENERGY_METERS_NMI_FERNET_KEYS": "c2hvcnQ=",
            "ENERGY_METERS_BATCH_ROWS": "0",
        }
    )

    assert problems == [
        "ENERGY_METERS_BATCH_ROWS='0': expected a positive integer",
        "ENERGY_METERS_NMI_HMAC_KEY is not set; protected identifiers need it",
        "ENERGY_METERS_NMI_FERNET_KEYS (key 1): a Fernet key is 32 bytes, this one is 5",
    ]
    assert environment_problems({}) == []


# -- ca status: exit 1 for what expires soon, EXPIRED with the command that fixes it --------------------------


def test_ca_status_exits_1_when_a_certificate_expires_soon(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(tmp_path))
    ca, _ = CertificateAuthority.init(tmp_path / "ca")
    ca.write_crl()
    assert main(["ca", "status"]) == 0
    capsys.readouterr()
    short = ca.issue_client_certificate("reader", validity_days=10)
    assert main(["ca", "status"]) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if f"{short.serial:040x}" in line)
    assert "10.0 days left" in line
    assert line.endswith("EXPIRING: run `energy-assets ca issue client --role reader`")
    assert "1 problem(s): client" in out


def test_ca_status_calls_an_expired_crl_and_ca_expired(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(tmp_path))
    ca, _ = CertificateAuthority.init(tmp_path / "ca")
    written = datetime.now(timezone.utc) - timedelta(days=31)  # the clock was behind while writing
    monkeypatch.setattr("energy_assets.tls.ca._now", lambda: written.replace(microsecond=0))
    ca.write_crl()
    monkeypatch.undo()
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(tmp_path))
    assert main(["ca", "status"]) == 1
    out = capsys.readouterr().out
    crl_line = next(line for line in out.splitlines() if line.startswith("crl"))
    assert "-1.0 days left" in crl_line and crl_line.endswith("EXPIRED: run `energy-assets ca renew`")
    assert main(["ca", "renew"]) == 0
    assert capsys.readouterr().out == "Done: re-signed the CRL.\n"
    assert main(["ca", "status"]) == 0
    assert "30.0 days left" in capsys.readouterr().out

    expired_ca = tmp_path / "expired"
    _write_expired_ca(expired_ca)
    monkeypatch.setattr("energy_assets.cli._home", lambda: DataHome(expired_ca.parent / "expired-home"))
    (expired_ca.parent / "expired-home").mkdir()
    expired_ca.rename(expired_ca.parent / "expired-home" / "ca")
    assert main(["ca", "status"]) == 1
    ca_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ca "))
    assert "EXPIRED: run `energy-assets ca rollover`" in ca_line and "EXPIRING" not in ca_line


def _write_expired_ca(directory: Path) -> None:
    CertificateAuthority.init(directory)
    key = load_private_key(directory / "ca.key")
    old = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.issuer)
        .public_key(old.public_key())
        .serial_number(old.serial_number)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=timezone.utc))
        .not_valid_after(datetime(2021, 1, 1, tzinfo=timezone.utc))
    )
    for extension in old.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    write_atomic(
        directory / "ca.crt", builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    )


def test_db_status_exits_3_when_not_running(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(tmp_path))
    monkeypatch.delenv("ENERGY_PG_URL", raising=False)
    assert main(["db", "status"]) == 3
    assert "not initialized" in capsys.readouterr().out


# -- against the session's cluster -----------------------------------------------------------------------------


@pytest.fixture
def cli_home(managed_cluster: ManagedCluster, data_home: DataHome, monkeypatch) -> DataHome:
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(data_home.root))
    monkeypatch.delenv("ENERGY_PG_URL", raising=False)
    return data_home


def test_db_sessions_prints_a_header(cli_home: DataHome, capsys) -> None:
    assert main(["db", "sessions"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["PID", "DATABASE", "USER", "STATE", "TLS", "APPLICATION"]
    assert any("energy_admin" in line and "TLSv1.3" in line for line in lines[1:])


@pytest.mark.slow
def test_psql_accepts_db_url_without_a_prompt(cli_home: DataHome, managed_cluster: ManagedCluster) -> None:
    psql = shutil.which("psql") or str(managed_cluster.binaries.bindir / "psql")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["ENERGY_ASSETS_HOME"] = str(cli_home.root)
    cli = [sys.executable, "-m", "energy_assets.cli"]
    url = subprocess.run(
        [*cli, "db", "url"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert managed_cluster.superuser_password() not in url and "passfile=" in url
    result = subprocess.run(
        [psql, url, "-Atc", "select 1"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\n", "")


def test_dagster_env_exports_no_password_and_no_libpq_variables(
    cli_home: DataHome, managed_cluster: ManagedCluster, capsys
) -> None:
    assert main(["dagster", "env"]) == 0
    out = capsys.readouterr().out
    exported = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in out.splitlines())
    assert sorted(exported) == [
        "DAGSTER_EVENT_BATCH_SIZE",
        "DAGSTER_HOME",
        "DAGSTER_PG_URL",
        "ENERGY_ASSETS_HOME",
    ]
    assert managed_cluster.superuser_password() not in out
    url = exported["DAGSTER_PG_URL"]
    assert url.startswith(
        f"postgresql+psycopg2://energy_admin@localhost:{managed_cluster.config.port}/dagster?"
    )
    assert f"passfile={managed_cluster.passfile_path}" in url and "sslmode=verify-full" in url
    assert (cli_home.dagster_home / "dagster.yaml").read_text().count(
        "postgres_url: {env: DAGSTER_PG_URL}"
    ) == 1


def test_loose_ca_key_and_passfile_are_refused_by_every_command_using_them(
    cli_home: DataHome, managed_cluster: ManagedCluster, capsys
) -> None:
    ca_key = cli_home.ca_dir / "ca.key"
    passfile = managed_cluster.passfile_path
    for secret in (ca_key, passfile):
        secret.chmod(0o644)
        try:
            for command in (["db", "url"], ["db", "start"], ["db", "sessions"], ["dagster", "env"]):
                assert main(command) == 2, (secret, command)
                line = _one_error_line(capsys)
                assert f"{secret} has mode 0644" in line and f"run `chmod 600 {secret}`" in line
        finally:
            secret.chmod(0o600)
    assert main(["db", "url"]) == 0


def test_ca_revoke_of_the_served_certificate_rotates_it_first(
    cli_home: DataHome, managed_cluster: ManagedCluster, capsys
) -> None:
    served = presented_certificate("127.0.0.1", managed_cluster.config.port).serial_number
    assert main(["ca", "revoke", f"{served:x}"]) == 0
    out = capsys.readouterr().out
    now_served = presented_certificate("127.0.0.1", managed_cluster.config.port)
    assert now_served.serial_number != served
    assert f"it now presents {now_served.serial_number:x}" in out
    crl = x509.load_pem_x509_crl((managed_cluster.data_dir / "root.crl").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(served) is not None
    assert crl.get_revoked_certificate_by_serial_number(now_served.serial_number) is None
    with connect(managed_cluster.settings()) as conn:  # verify-full + CRL: the new certificate is valid
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
    assert main(["ca", "status"]) == 0
    status_lines = capsys.readouterr().out.splitlines()
    assert any(f"{served:040x}" in line and "REVOKED" in line for line in status_lines)


def test_meters_ingest_of_a_link_prints_no_byte_of_its_target(
    cli_home, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("ENERGY_ASSETS_INBOX", str(tmp_path / "inbox"))
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:Secret Marker:/root:/bin/bash\n")
    link = tmp_path / "x.csv"
    link.symlink_to(secret)

    assert main(["meters", "ingest", "--ephemeral-instance", str(link)]) == 2

    out, err = capsys.readouterr()
    assert out == (
        f"{link}: FAILED: {link} is a symbolic link, not a regular file, and was not read; give the data file"
        " itself (links are not followed). It was left where it is.\n"
    )
    assert "Secret Marker" not in out + err
    assert link.is_symlink() and not any((tmp_path / "quarantine").iterdir())


def test_meters_ingest_with_a_bad_limit_setting_is_one_line_and_moves_nothing(
    cli_home, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("ENERGY_ASSETS_INBOX", str(tmp_path / "inbox"))
    monkeypatch.setenv("ENERGY_ASSETS_MAX_COMPRESSION_RATIO", "lots")
    path = tmp_path / "a.csv"
    path.write_text("100,NEM12,200506081149,UNITEDDP,NEMMCO\n900\n")

    assert main(["meters", "ingest", "--ephemeral-instance", str(path)]) == 2

    assert capsys.readouterr().err == (
        "energy-assets: error: ENERGY_ASSETS_MAX_COMPRESSION_RATIO='lots' is not a number of at least 1; unset"
        " it for the default (200).\n"
    )
    assert path.exists() and not (tmp_path / "inbox").exists()


def test_rotate_keys_follows_the_meters_declaration(
    managed_cluster: ManagedCluster, data_home: DataHome, tmp_path, monkeypatch, capsys
) -> None:
    """`protect_nmi: true` in the meters declaration is enough (ENERGY_METERS_PROTECT_NMI unset)."""
    import base64

    from cryptography.fernet import Fernet

    (tmp_path / "sources" / "meters").mkdir(parents=True)
    (tmp_path / "sources" / "meters" / "defs.yaml").write_text(
        "type: energy_assets.components.Nem12Inbox\nattributes:\n  protect_nmi: true\n"
    )
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(data_home.root))
    monkeypatch.setenv("ENERGY_ASSETS_SOURCES_DIR", str(tmp_path / "sources"))
    monkeypatch.delenv("ENERGY_METERS_PROTECT_NMI", raising=False)
    monkeypatch.setenv("ENERGY_METERS_NMI_HMAC_KEY", base64.urlsafe_b64encode(b"k" * 32).decode())
    monkeypatch.setenv("ENERGY_METERS_NMI_FERNET_KEYS", Fernet.generate_key().decode())
    code = main(["meters", "rotate-keys"])
    captured = capsys.readouterr()
    if code == 0:
        assert captured.out.startswith("Re-encrypted 0 protected NMI(s) under the newest key")
    else:
        # The session's database may hold NMIs other tests protected under their own keys: rotation was
        # attempted (the declaration switched protection on) and refuses tokens it cannot read.
        assert code == 2 and "does not decrypt with any configured key" in captured.err, captured.err
    assert "not protected" not in captured.err
