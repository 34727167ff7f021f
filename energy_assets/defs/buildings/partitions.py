"""Partitions of the buildings assets: one static partition per BDG2 meter (electricity, chilledwater, ...)."""

import dagster as dg

from energy_assets.sources.buildings.archive import METERS

meter_partitions = dg.StaticPartitionsDefinition(list(METERS))
