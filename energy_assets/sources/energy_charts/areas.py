"""The country and bidding-zone codes Energy-Charts publishes, and the one place a configured code is checked.

A configured area code ends up in a file path (`<raw>/energy_charts/<endpoint>/<area>/<day>.json`), a query
string and SQL, so it is checked against the API's published code lists and normalized once, when the
configuration is read, and never again further down:

- countries are lower case, as the API spells them (`DE` -> `de`); the API rejects bidding zones such as
  `DK1` in `country=`;
- bidding zones keep their published spelling (`de-lu` -> `DE-LU`, `it-north` -> `IT-North`);
- surrounding white space is removed; anything else (`../x`, `de'`, an unknown code) raises `UnknownAreaError`
  naming the setting, the value and the valid codes.

The lists are the API's own (OpenAPI 1.5, see `/work/shared/reference/data_formats.md` §1.4). A code the API
adds later is refused here until it is added to the list below.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from energy_assets.errors import ConfigurationError

COUNTRIES: tuple[str, ...] = (
    "de", "ch", "eu", "all", "al", "am", "at", "az", "ba", "be", "bg", "by", "cy", "cz", "dk", "ee", "es",
    "fi", "fr", "ge", "gr", "hr", "hu", "ie", "it", "lt", "lu", "lv", "md", "me", "mk", "mt", "nie", "nl",
    "no", "pl", "pt", "ro", "rs", "ru", "se", "si", "sk", "tr", "ua", "uk", "xk",
)  # fmt: skip

BIDDING_ZONES: tuple[str, ...] = (
    "AT", "BE", "BG", "CH", "CZ", "DE-LU", "DE-AT-LU", "DK1", "DK2", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IT-Calabria", "IT-Centre-North", "IT-Centre-South", "IT-North", "IT-SACOAC", "IT-SACODC", "IT-Sardinia",
    "IT-Sicily", "IT-South", "LT", "LV", "ME", "NL", "NO1", "NO2", "NO2NSL", "NO3", "NO4", "NO5", "PL", "PT",
    "RO", "RS", "SE1", "SE2", "SE3", "SE4", "SI", "SK",
)  # fmt: skip

_COUNTRY_SET = frozenset(COUNTRIES)
_BIDDING_ZONE_BY_KEY: dict[str, str] = {zone.casefold(): zone for zone in BIDDING_ZONES}


class UnknownAreaError(ConfigurationError):
    """A configured country or bidding-zone code is not one the Energy-Charts API publishes."""

    def __init__(self, setting: str, value: object, kind: str, valid: Iterable[str]) -> None:
        self.setting = setting
        self.value = value
        self.valid = tuple(valid)
        super().__init__(
            f"{setting}: {value!r} is not an Energy-Charts {kind} code. Valid codes: {', '.join(self.valid)}."
            f" Set {setting} to codes from this list in the energy_charts resource config"
            " (case and surrounding spaces do not matter)."
        )


def normalize_country(code: object, *, setting: str = "countries") -> str:
    """A country code as the API spells it (stripped, lower case); `UnknownAreaError` if it is not published.

    >>> normalize_country(" DE ")
    'de'
    >>> normalize_country("nie")
    'nie'
    >>> normalize_country("../../../../x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    energy_assets.sources.energy_charts.areas.UnknownAreaError: countries: '../../../../x' is not an ...
    """
    if isinstance(code, str):
        normalized = code.strip().lower()
        if normalized in _COUNTRY_SET:
            return normalized
    raise UnknownAreaError(setting, code, "country", COUNTRIES)


def normalize_bidding_zone(code: object, *, setting: str = "bidding_zones") -> str:
    """A bidding zone in its published spelling (matched case-insensitively); `UnknownAreaError` otherwise.

    >>> normalize_bidding_zone(" de-lu")
    'DE-LU'
    >>> normalize_bidding_zone("it-north")
    'IT-North'
    >>> normalize_bidding_zone("DE")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    energy_assets.sources.energy_charts.areas.UnknownAreaError: bidding_zones: 'DE' is not an ...
    """
    if isinstance(code, str):
        zone = _BIDDING_ZONE_BY_KEY.get(code.strip().casefold())
        if zone is not None:
            return zone
    raise UnknownAreaError(setting, code, "bidding zone", BIDDING_ZONES)


def normalize_countries(codes: Iterable[object], *, setting: str = "countries") -> list[str]:
    """Every code normalized, in the given order, each once; an empty list is refused.

    >>> normalize_countries(["DE", " fr", "de"])
    ['de', 'fr']
    """
    return _normalize_all(codes, setting, normalize_country)


def normalize_bidding_zones(codes: Iterable[object], *, setting: str = "bidding_zones") -> list[str]:
    """Every zone in its published spelling, in the given order, each once; an empty list is refused.

    >>> normalize_bidding_zones(["de-lu", "NL", "DE-LU"])
    ['DE-LU', 'NL']
    """
    return _normalize_all(codes, setting, normalize_bidding_zone)


def _normalize_all(codes: Iterable[object], setting: str, normalize: _Normalizer) -> list[str]:
    if isinstance(codes, str):
        # A bare string would be read letter by letter.
        raise ConfigurationError(f"{setting}: expected a list of codes, got the string {codes!r}.")
    normalized: list[str] = []
    for code in codes:
        value = normalize(code, setting=setting)
        if value not in normalized:
            normalized.append(value)
    if not normalized:
        raise ConfigurationError(f"{setting}: the list is empty; give at least one code.")
    return normalized


class _Normalizer(Protocol):
    """The shape of `normalize_country` and `normalize_bidding_zone`."""

    def __call__(self, code: object, *, setting: str) -> str: ...
