"""Platform assets: health of the database connection and its TLS certificates."""

from energy_assets.defs.platform.assets import platform_definitions

__all__ = ["platform_definitions"]
