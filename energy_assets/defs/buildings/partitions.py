"""Partitions of the buildings assets: one static partition per declared BDG2 meter (electricity, ...)."""

from collections.abc import Sequence

import dagster as dg


def meter_partitions(meters: Sequence[str]) -> dg.StaticPartitionsDefinition:
    """One partition per meter, in the order the declaration lists them."""
    return dg.StaticPartitionsDefinition(list(meters))
