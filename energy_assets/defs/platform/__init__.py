"""Platform assets: health of the database connection and its TLS certificates, and their daily upkeep."""

from energy_assets.defs.platform.assets import (
    platform_certificate_maintenance_job,
    platform_certificate_maintenance_schedule,
    platform_definitions,
)

__all__ = [
    "platform_certificate_maintenance_job",
    "platform_certificate_maintenance_schedule",
    "platform_definitions",
]
