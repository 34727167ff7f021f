"""A synthetic year of Energy-Charts data, served over loopback in the API's shapes, for benchmarks.

`SyntheticYear` generates DE public power (21 series at 15 minutes: 19 in MW and the two renewable shares
in percent) and hourly DE-LU day-ahead prices for Europe/Berlin local days, so the spring DST day has 92
quarter hours (23 hours) and the autumn one 100 (25 hours). Values are deterministic (seeded) and shaped
like the real thing: a solar day curve that follows the season, wind as a persistent random process, load
with a day and week pattern, lignite and gas filling what wind and solar leave, prices that fall (and go
negative) when wind and solar are high. 2024 is the leap year the backfill benchmark replays: 35,136
quarter hours, 667,584 MW rows, 8,784 prices.

`ReplayServer` answers `/public_power?country=de&start=..&end=..` and `/price?bzn=DE-LU&start=..&end=..`
for any range of those days (both ends inclusive local days, as the API), and `/installed_power` from the
bundled sample. It has no rate limit and counts the requests it served. Only the test server in
`energy_assets_tests/sources/energy_charts_server.py` mimics the API's errors; this one only replays.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import numpy as np

from energy_assets_tests.loopback import LoopbackServer

BERLIN = ZoneInfo("Europe/Berlin")
QUARTER_HOUR_S = 900
PRICE_UNIT = "EUR / megawatt_hour"  # the spelling of 2024 responses
PRICE_LICENSE = "CC BY 4.0 (creativecommons.org/licenses/by/4.0) from Bundesnetzagentur | SMARD.de"
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "energy_assets" / "sources" / "energy_charts" / "sample"

# The 2024 German series (Nuclear is gone from the responses since 2024; battery output is reported).
MW_SERIES: tuple[str, ...] = (
    "Hydro pumped storage consumption",
    "Cross border electricity trading",
    "Hydro Run-of-River",
    "Biomass",
    "Fossil brown coal / lignite",
    "Fossil hard coal",
    "Fossil oil",
    "Fossil gas",
    "Geothermal",
    "Hydro water reservoir",
    "Hydro pumped storage",
    "Others",
    "Waste",
    "Wind offshore",
    "Wind onshore",
    "Solar",
    "Battery storage (power)",
    "Load",
    "Residual load",
)
SHARE_SERIES: tuple[str, ...] = ("Renewable share of generation", "Renewable share of load")
GENERATION_NOT_IN_LOAD: frozenset[str] = frozenset(
    {"Load", "Residual load", "Cross border electricity trading", "Hydro pumped storage consumption"}
)
RENEWABLE: frozenset[str] = frozenset(
    {
        "Hydro Run-of-River",
        "Hydro water reservoir",
        "Biomass",
        "Geothermal",
        "Wind offshore",
        "Wind onshore",
        "Solar",
    }
)


def local_midnight_unix(day: date) -> int:
    """UNIX seconds of the local (Europe/Berlin) midnight that starts `day`."""
    return int(datetime(day.year, day.month, day.day, tzinfo=BERLIN).timestamp())


def _persistent_noise(rng: np.random.Generator, size: int, persistence: float) -> np.ndarray:
    """An AR(1) process in [0, 1]: weather that changes over hours and days, not from one value to the next."""
    shocks = rng.normal(0.0, 1.0, size)
    values = np.empty(size)
    level = 0.0
    scale = np.sqrt(1.0 - persistence**2)
    for index in range(size):
        level = persistence * level + scale * shocks[index]
        values[index] = level
    return 1.0 / (1.0 + np.exp(-1.3 * values))


@dataclass
class SyntheticYear:
    """Quarter-hourly public power and hourly prices for the local days `first_day`..`last_day`."""

    first_day: date
    last_day: date
    seed: int = 2024
    quarter_hours: np.ndarray = field(init=False)  # int64 UNIX seconds, interval starts
    power: dict[str, np.ndarray] = field(init=False)  # series name -> values (MW or percent), rounded
    hours: np.ndarray = field(init=False)
    prices: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        start = local_midnight_unix(self.first_day)
        end = local_midnight_unix(self.last_day + timedelta(days=1))
        self.quarter_hours = np.arange(start, end, QUARTER_HOUR_S, dtype=np.int64)
        self.hours = np.arange(start, end, 3600, dtype=np.int64)
        rng = np.random.default_rng(self.seed)
        self.power = self._public_power(rng)
        self.prices = self._prices(rng)

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def mw_rows(self) -> int:
        """Rows the MW series make in long format (one per series and quarter hour)."""
        return len(MW_SERIES) * len(self.quarter_hours)

    def _local_clock(self, timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Local hour of day (0-24), day of year (0-365) and weekday (0 = Monday) of each timestamp."""
        whole_hours, position = np.unique(timestamps // 3600 * 3600, return_inverse=True)
        offsets = np.array(
            [int(datetime.fromtimestamp(int(t), BERLIN).utcoffset().total_seconds()) for t in whole_hours],
            dtype=np.int64,
        )
        local = timestamps + offsets[position]
        seconds_of_day = local % 86400
        days_since_epoch = local // 86400
        day_of_year = (days_since_epoch - days_since_epoch[0]) + (self.first_day.timetuple().tm_yday - 1)
        weekday = (days_since_epoch + 3) % 7  # 1970-01-01 was a Thursday
        return seconds_of_day / 3600.0, day_of_year.astype(float), weekday

    def _public_power(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        n = len(self.quarter_hours)
        hour, day_of_year, weekday = self._local_clock(self.quarter_hours)
        summer = 0.5 - 0.5 * np.cos(2 * np.pi * (day_of_year - 10) / 366)  # 0 in January, 1 in July
        winter = 1.0 - summer
        weekend = weekday >= 5

        daylight = 8.0 + 8.0 * summer
        sunrise = 12.5 - daylight / 2
        sun = np.clip(np.sin(np.pi * (hour - sunrise) / daylight), 0.0, None)
        clouds = 0.35 + 0.65 * _persistent_noise(rng, n, 0.995)
        solar = sun**1.3 * (9_000 + 46_000 * summer) * clouds
        wind_weather = _persistent_noise(rng, n, 0.9985)
        onshore = 1_500 + wind_weather**1.6 * (30_000 + 18_000 * winter)
        offshore = 300 + (0.6 * wind_weather + 0.4 * _persistent_noise(rng, n, 0.997)) * 7_800
        day_shape = 0.5 - 0.5 * np.cos(2 * np.pi * (hour - 4) / 24)
        load = (
            40_000
            + 17_000 * day_shape
            + 6_000 * winter
            - np.where(weekend, 7_500, 0.0)
            + rng.normal(0, 600, n)
        )
        biomass = 4_300 + 300 * np.sin(2 * np.pi * hour / 24) + rng.normal(0, 60, n)
        run_of_river = (
            1_500 + 900 * (0.5 - 0.5 * np.cos(2 * np.pi * (day_of_year - 60) / 366)) + rng.normal(0, 40, n)
        )
        water_reservoir = np.clip(90 + 120 * day_shape + rng.normal(0, 25, n), 0, None)
        geothermal = 22 + rng.normal(0, 1.5, n)
        waste = 1_100 + rng.normal(0, 30, n)
        others = 220 + rng.normal(0, 15, n)
        oil = 330 + rng.normal(0, 20, n)
        evening = np.exp(-((hour - 19.0) ** 2) / 4) + 0.6 * np.exp(-((hour - 7.5) ** 2) / 3)
        midday = np.exp(-((hour - 13.0) ** 2) / 6)
        pumped_generation = np.clip(200 + 4_800 * evening * (0.5 + 0.5 * wind_weather[::-1]), 0, None)
        pumped_consumption = -np.clip(300 + 4_500 * midday * solar / 40_000 + 900 * (hour < 5), 0, None)
        battery = np.clip(1_300 * evening + rng.normal(0, 40, n), 0, None)

        renewable = onshore + offshore + solar + biomass + run_of_river + water_reservoir + geothermal
        residual = load - onshore - offshore - solar
        dispatchable_need = np.clip(residual - biomass - run_of_river - waste - pumped_generation, 0, None)
        lignite = np.clip(1_000 + 0.4 * dispatchable_need, 2_000, 15_000)
        hard_coal = np.clip(0.15 * dispatchable_need, 500, 8_000)
        gas = np.clip(500 + 0.2 * dispatchable_need, 1_500, 16_000)
        generation = (
            renewable + waste + others + oil + lignite + hard_coal + gas + pumped_generation + battery
        )
        trade = load - generation - pumped_consumption  # import > 0, export < 0

        series = {
            "Hydro pumped storage consumption": pumped_consumption,
            "Cross border electricity trading": trade,
            "Hydro Run-of-River": run_of_river,
            "Biomass": biomass,
            "Fossil brown coal / lignite": lignite,
            "Fossil hard coal": hard_coal,
            "Fossil oil": oil,
            "Fossil gas": gas,
            "Geothermal": geothermal,
            "Hydro water reservoir": water_reservoir,
            "Hydro pumped storage": pumped_generation,
            "Others": others,
            "Waste": waste,
            "Wind offshore": offshore,
            "Wind onshore": onshore,
            "Solar": solar,
            "Battery storage (power)": battery,
            "Load": load,
            "Residual load": residual,
            "Renewable share of generation": np.clip(100 * renewable / generation, 0, 100),
            "Renewable share of load": np.clip(100 * renewable / load, 0, 100),
        }
        return {name: np.round(values, 1) for name, values in series.items()}

    def _prices(self, rng: np.random.Generator) -> np.ndarray:
        hour, _, weekday = self._local_clock(self.hours)
        per_hour = len(self.quarter_hours) // len(self.hours)

        def hourly(name: str) -> np.ndarray:
            return self.power[name].reshape(-1, per_hour).mean(axis=1)

        variable = hourly("Wind onshore") + hourly("Wind offshore") + hourly("Solar")
        residual_share = (hourly("Load") - variable) / hourly("Load")
        peak = np.exp(-((hour - 8.0) ** 2) / 3) + 1.3 * np.exp(-((hour - 19.0) ** 2) / 3)
        prices = (
            20
            + 120 * residual_share
            + 35 * peak
            - np.where(weekday >= 5, 12, 0)
            + rng.normal(0, 8, len(self.hours))
        )
        prices = np.where(variable > 58_000, prices - 60, prices)  # sunny, windy noons go negative
        return np.round(np.clip(prices, -135, 900), 2)

    # ------------------------------------------------------------------ API shapes
    def _slice(self, timestamps: np.ndarray, first: date, last: date) -> slice:
        start = np.searchsorted(timestamps, local_midnight_unix(first))
        end = np.searchsorted(timestamps, local_midnight_unix(last + timedelta(days=1)))
        return slice(int(start), int(end))

    def covers(self, first: date, last: date) -> bool:
        return self.first_day <= first <= last <= self.last_day

    def public_power_body(self, first: date, last: date) -> dict[str, Any]:
        """`/public_power` for the local days `first`..`last` (all of the 21 series)."""
        part = self._slice(self.quarter_hours, first, last)
        return {
            "unix_seconds": self.quarter_hours[part].tolist(),
            "production_types": [
                {"name": name, "data": self.power[name][part].tolist()}
                for name in (*MW_SERIES, *SHARE_SERIES)
            ],
            "deprecated": False,
        }

    def price_body(self, first: date, last: date) -> dict[str, Any]:
        """`/price` (hourly day-ahead) for the local days `first`..`last`."""
        part = self._slice(self.hours, first, last)
        return {
            "license_info": PRICE_LICENSE,
            "unix_seconds": self.hours[part].tolist(),
            "price": self.prices[part].tolist(),
            "unit": PRICE_UNIT,
            "deprecated": False,
        }


class ReplayServer(LoopbackServer):
    """Serves a `SyntheticYear` on 127.0.0.1 (a free port) from a background thread, without a rate limit."""

    def __init__(self, year: SyntheticYear, *, country: str = "de", bidding_zone: str = "DE-LU") -> None:
        self.year = year
        self.country = country
        self.bidding_zone = bidding_zone
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        super().__init__(_make_handler(self), "energy-charts-replay")

    def answer(self, endpoint: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append((endpoint, params))
        if endpoint == "installed_power":
            path = SAMPLE_DIR / f"installed_power_{params.get('country')}_{params.get('time_step')}.json"
            if path.exists():
                return 200, json.loads(path.read_text(encoding="utf-8"))
            return 404, {"detail": f"no recording {path.name}"}
        try:
            first, last = date.fromisoformat(params["start"]), date.fromisoformat(params["end"])
        except (KeyError, ValueError):
            return 422, {
                "detail": [{"loc": ["query", "start"], "msg": "invalid date", "type": "value_error"}]
            }
        if not self.year.covers(first, last):
            return 404, {"detail": f"the replay holds {self.year.first_day}..{self.year.last_day} only"}
        if endpoint == "public_power" and params.get("country") == self.country:
            return 200, self.year.public_power_body(first, last)
        if endpoint == "price" and params.get("bzn") == self.bidding_zone:
            return 200, self.year.price_body(first, last)
        return 404, {"detail": f"/{endpoint} {params} is not replayed"}


def _make_handler(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real API behind its CDN

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            status, body = server.answer(url.path.strip("/"), dict(parse_qsl(url.query)))
            payload = json.dumps(body, separators=(",", ":")).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler
