"""Stable Dagster code location module (workspace.yaml, `dagster dev`, `dg check defs`)."""

from energy_assets.defs.build import build_defs

defs = build_defs()
