"""The operator CLI: help on every command, idempotent `ca init`, `db url`, one-line errors."""

from __future__ import annotations

import argparse
import stat

import pytest

from energy_assets.cli import build_parser, main
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.settings import DataHome


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
    assert f"sslrootcert={data_home.ca_dir}/ca.crt" in url
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
