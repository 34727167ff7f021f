"""The component types a `defs.yaml` can declare (registered for `dg`: `dg list components`).

One component per kind of source; each lives beside its Dagster layer in `energy_assets/defs/<source>/component.py`
and is re-exported here so a declaration names it as `energy_assets.components.<Type>`.
"""

from energy_assets.defs.buildings.component import Bdg2Source
from energy_assets.defs.energy_charts.component import EnergyChartsSource
from energy_assets.defs.file_source.component import FileSource
from energy_assets.defs.meters.component import Nem12Inbox

__all__ = ["Bdg2Source", "EnergyChartsSource", "FileSource", "Nem12Inbox"]
