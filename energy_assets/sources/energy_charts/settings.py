"""Settings of the Energy-Charts source read from the environment (the API's base URL).

| variable | default | meaning |
|---|---|---|
| `ENERGY_CHARTS_BASE_URL` | `https://api.energy-charts.info` | API root for `ENERGY_ASSETS_SOURCE=live` |

`ENERGY_ASSETS_SOURCE` (`sample` or `live`) is shared by every source: `energy_assets.settings`. Countries,
bidding zones, time zone and schedules are attributes of the source's declaration (`defs.yaml`).
"""

ENV_ENERGY_CHARTS_BASE_URL = "ENERGY_CHARTS_BASE_URL"
DEFAULT_ENERGY_CHARTS_BASE_URL = "https://api.energy-charts.info"
