"""Production type names: canonical spelling, percent vs MW, and what counts as generation or renewable.

Energy-Charts series are identified by name, never by position, and the names drift: `Nuclear` disappeared
from German responses in 2024, `Fossil coal-derived gas` appeared in 2025, and `Battery Storage (Power)` became
`Battery storage (power)`. Names are matched case- and whitespace-insensitively against the spellings below;
a name we have never seen is kept as sent, so a new series flows through instead of failing the load.
"""

from __future__ import annotations

# Known names in their canonical spelling (the newest the API is known to use).
KNOWN_PRODUCTION_TYPES: tuple[str, ...] = (
    "Hydro pumped storage consumption",
    "Cross border electricity trading",
    "Nuclear",
    "Hydro Run-of-River",
    "Biomass",
    "Fossil brown coal / lignite",
    "Fossil hard coal",
    "Fossil oil",
    "Fossil coal-derived gas",
    "Fossil gas",
    "Geothermal",
    "Hydro water reservoir",
    "Hydro pumped storage",
    "Others",
    "Other, non-renewable",
    "Waste",
    "Wind offshore",
    "Wind onshore",
    "Solar",
    "Solar DC",
    "Solar AC",
    "Battery storage (power)",
    "Battery storage (capacity)",
    "Load",
    "Residual load",
    "Renewable share of generation",
    "Renewable share of load",
)

WIND_ONSHORE = "Wind onshore"
WIND_OFFSHORE = "Wind offshore"
SOLAR = "Solar"

PERCENT_SERIES_PREFIX = "renewable share of"

# Series in MW that are not generation: demand, its residual, trade balance and pumping.
NON_GENERATION: frozenset[str] = frozenset(
    {
        "Load",
        "Residual load",
        "Cross border electricity trading",
        "Hydro pumped storage consumption",
        "Battery storage (capacity)",
    }
)

# Renewable generation. Waste is left out because its biogenic fraction is not reported; pumped storage is
# left out because it only shifts energy. (Energy-Charts' own "Renewable share" appears to count about half
# of `Waste`, so its figure is a little higher than ours.)
RENEWABLE: frozenset[str] = frozenset(
    {
        "Hydro Run-of-River",
        "Hydro water reservoir",
        "Biomass",
        "Geothermal",
        "Wind offshore",
        "Wind onshore",
        "Solar",
        "Solar DC",
        "Solar AC",
    }
)

# Series whose values may legitimately be negative (export, pumping, renewables above load).
SIGNED: frozenset[str] = frozenset({"Residual load", "Cross border electricity trading"})
NON_POSITIVE: frozenset[str] = frozenset({"Hydro pumped storage consumption"})


def _match_key(name: str) -> str:
    return " ".join(name.split()).casefold()


_CANONICAL_BY_KEY: dict[str, str] = {_match_key(name): name for name in KNOWN_PRODUCTION_TYPES}


def canonical_production_type(name: str) -> str:
    """The canonical spelling of a series name; unknown names come back whitespace-normalized, case kept.

    >>> canonical_production_type("Battery Storage (Power)"), canonical_production_type("Hydrogen  turbines")
    ('Battery storage (power)', 'Hydrogen turbines')
    """
    key = _match_key(name)
    return _CANONICAL_BY_KEY.get(key, " ".join(name.split()))


def is_percent_series(name: str) -> bool:
    """`Renewable share of generation` and `Renewable share of load` are percentages, not MW."""
    return _match_key(name).startswith(PERCENT_SERIES_PREFIX)


def is_generation(name: str) -> bool:
    """True for MW series that are generation (unknown names count as generation)."""
    canonical = canonical_production_type(name)
    return canonical not in NON_GENERATION and not is_percent_series(canonical)


def is_renewable(name: str) -> bool:
    return canonical_production_type(name) in RENEWABLE


def expected_sign(name: str) -> str:
    """`"non_negative"`, `"non_positive"` or `"any"`: the physically possible sign of a MW series."""
    canonical = canonical_production_type(name)
    if canonical in SIGNED:
        return "any"
    if canonical in NON_POSITIVE:
        return "non_positive"
    return "non_negative"
