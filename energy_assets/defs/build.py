"""Builds the code location's `Definitions` from every source's definitions plus the shared resources.

Keep asset logic out of this module; it only merges definitions and wires default resources.
Tests call `build_defs(resource_overrides=...)` with their own resources instead of patching.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

from energy_assets.defs.buildings import ZenodoResource, buildings_definitions
from energy_assets.defs.energy_charts import energy_charts_definitions
from energy_assets.defs.energy_charts.resources import EnergyChartsResource
from energy_assets.defs.meters import MetersResource, meters_definitions
from energy_assets.defs.platform import platform_definitions
from energy_assets.defs.policy import apply_policies
from energy_assets.defs.report import platform_report
from energy_assets.defs.resources import CertificateAuthorityResource, LakeResource, PostgresResource
from energy_assets.settings import ENV_PG_URL, validate_environment
from energy_assets.sources.buildings.settings import ENV_ZENODO_ACCESS_TOKEN
from energy_assets.sources.meters.settings import ENV_NMI_FERNET_KEYS, ENV_NMI_HMAC_KEY


def default_resources() -> dict[str, Any]:
    """Resources from the environment: an external server if ENERGY_PG_URL is set, else the managed one."""
    # Only the presence of the variable is read here; EnvVar resolves the value at launch, unseen in the UI.
    postgres = (
        PostgresResource(url=dg.EnvVar(ENV_PG_URL)) if os.environ.get(ENV_PG_URL) else PostgresResource()
    )
    return {
        "postgres": postgres,
        "lake": LakeResource(),
        "certificate_authority": CertificateAuthorityResource(),
        "energy_charts": EnergyChartsResource(),
        "meters": _meters_resource(),
        "zenodo": ZenodoResource(access_token=dg.EnvVar(ENV_ZENODO_ACCESS_TOKEN))
        if os.environ.get(ENV_ZENODO_ACCESS_TOKEN)
        else ZenodoResource(),
    }


def _meters_resource() -> MetersResource:
    """Keys through EnvVar (resolved at launch, never shown), only when they are set."""
    return MetersResource(
        hmac_key=dg.EnvVar(ENV_NMI_HMAC_KEY) if os.environ.get(ENV_NMI_HMAC_KEY) else None,
        fernet_keys=dg.EnvVar(ENV_NMI_FERNET_KEYS) if os.environ.get(ENV_NMI_FERNET_KEYS) else None,
    )


def _source_definitions() -> list[dg.Definitions]:
    return [
        platform_definitions(),
        energy_charts_definitions(),
        buildings_definitions(),
        meters_definitions(),
        dg.Definitions(assets=[platform_report]),
    ]


def build_defs(*, resource_overrides: Mapping[str, Any] | None = None) -> dg.Definitions:
    """The platform's definitions with default resources, some replaced by `resource_overrides`.

    Every environment setting is checked first: a bad one refuses the load (`dagster dev` included) with
    one line per problem, before any definition or resource is built.
    """
    validate_environment()
    resources = {**default_resources(), **(resource_overrides or {})}
    merged = apply_policies(dg.Definitions.merge(*_source_definitions()))
    return dg.Definitions.merge(merged, dg.Definitions(resources=resources))
