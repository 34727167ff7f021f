"""Builds the code location's `Definitions`: every declared source, the platform, and the shared resources.

Keep asset logic out of this module; it only merges definitions and wires default resources. Sources are
declarations (`defs.yaml`, see `declarations`): the bundled ones in `energy_assets/defs/<source>/` and the
operator's under ENERGY_ASSETS_SOURCES_DIR. Tests call `build_defs(resource_overrides=...)` with their own
resources instead of patching; an override replaces a declared source's resource of the same key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

from energy_assets.defs.declarations import declared_sources
from energy_assets.defs.platform import platform_definitions
from energy_assets.defs.policy import apply_policies
from energy_assets.defs.report import platform_report
from energy_assets.defs.resources import CertificateAuthorityResource, LakeResource, PostgresResource
from energy_assets.settings import ENV_PG_URL, validate_environment


def default_resources() -> dict[str, Any]:
    """Shared resources from the environment: an external server if ENERGY_PG_URL is set, else the managed one."""
    # Only the presence of the variable is read here; EnvVar resolves the value at launch, unseen in the UI.
    postgres = (
        PostgresResource(url=dg.EnvVar(ENV_PG_URL)) if os.environ.get(ENV_PG_URL) else PostgresResource()
    )
    return {
        "postgres": postgres,
        "lake": LakeResource(),
        "certificate_authority": CertificateAuthorityResource(),
    }


def build_defs(*, resource_overrides: Mapping[str, Any] | None = None) -> dg.Definitions:
    """The platform's definitions with default resources, some replaced by `resource_overrides`.

    Every environment setting is checked first: a bad one refuses the load (`dagster dev` included) with
    one line per problem, before any declaration, definition or resource is built.
    """
    validate_environment()
    sources = [source.defs for source in declared_sources()]
    merged = apply_policies(
        dg.Definitions.merge(
            platform_definitions(),
            *(_without_resources(defs) for defs in sources),
            dg.Definitions(assets=[platform_report]),
        )
    )
    declared = {key: value for defs in sources for key, value in (defs.resources or {}).items()}
    resources = {**default_resources(), **declared, **(resource_overrides or {})}
    return dg.Definitions.merge(merged, dg.Definitions(resources=resources))


def _without_resources(defs: dg.Definitions) -> dg.Definitions:
    """A source's definitions minus its resources (merged once, so that overrides can replace them)."""
    return dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        schedules=defs.schedules,
        sensors=defs.sensors,
    )
