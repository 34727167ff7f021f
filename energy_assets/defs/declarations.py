"""Where sources are declared, and how a declaration is loaded: the bundled `defs.yaml` files and the
operator's own under ENERGY_ASSETS_SOURCES_DIR.

Keep asset logic out of this module. A declaration is a folder holding a `defs.yaml` (a Dagster component
instance: `type:` and `attributes:`). The package declares its three sources in `energy_assets/defs/<source>/`;
a deployment adds or reconfigures sources without touching the package by putting such folders under
`$ENERGY_ASSETS_SOURCES_DIR` (default `<data home>/sources`). Dagster's component loader validates each
declaration; a declaration that does not load is refused with one message naming the `defs.yaml` file,
the line and the attribute, and what to change (`DeclarationError`), never a stack trace from inside.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster._utils.schedules import is_valid_cron_string
from dagster.components.core.component_tree import ComponentTree
from pydantic import ValidationError

from energy_assets.errors import ConfigurationError
from energy_assets.settings import DataHome

ENV_SOURCES_DIR = "ENERGY_ASSETS_SOURCES_DIR"
DECLARATION_FILE = "defs.yaml"
BUNDLED_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BUNDLED_DIR.parents[1]
DEFAULT_SOURCE_NAME_PATTERN = r"[a-z][a-z0-9_]{0,40}"
# Synthetic package under which declaration folders outside the package are loaded.
_OPERATOR_PACKAGE = "energy_assets_declared_sources"


class DeclarationError(ConfigurationError):
    """A `defs.yaml` declaration does not load: wrong attribute, wrong type, unknown component, duplicate."""


# Names a source cannot take: shared resource keys, groups and schemas the platform owns.
RESERVED_SOURCE_NAMES = frozenset(
    {
        "postgres",
        "lake",
        "certificate_authority",
        "zenodo",
        "meters",
        "buildings",
        "marts",
        "raw",
        "platform",
        "energy_meta",
        "public",
        "dagster",
        "information_schema",
        "io_manager",
    }
)


def valid_source_name(name: str) -> str:
    """A source name becomes a PostgreSQL schema, a resource key, a folder and an asset-key prefix."""
    if not re.fullmatch(DEFAULT_SOURCE_NAME_PATTERN, name):
        raise ConfigurationError(
            f"name: {name!r} is not a source name; use lower-case letters, digits and _ (pattern"
            f" {DEFAULT_SOURCE_NAME_PATTERN}), e.g. energy_charts_fr."
        )
    if name in RESERVED_SOURCE_NAMES or name.startswith("pg_"):
        raise ConfigurationError(
            f"name: {name!r} is taken by the platform (a shared resource, group or schema); choose another,"
            " e.g. energy_charts_fr."
        )
    return name


def valid_cron(cron: str) -> str:
    if not is_valid_cron_string(cron):
        raise ConfigurationError(f"{cron!r} is not a cron schedule; write five fields, e.g. '30 6 * * *'.")
    return cron


def operator_sources_dir(home: DataHome | None = None) -> Path:
    """$ENERGY_ASSETS_SOURCES_DIR (an absolute path), else `<data home>/sources`."""
    configured = os.environ.get(ENV_SOURCES_DIR, "").strip()
    if not configured:
        return (home or DataHome.from_env()).root / "sources"
    path = Path(configured).expanduser()
    if not path.is_absolute():
        raise DeclarationError(
            f"{ENV_SOURCES_DIR}={configured!r} is relative; give an absolute path, so that the daemon, the"
            " webserver and the CLI see the same sources."
        )
    if path.exists() and not path.is_dir():
        raise DeclarationError(
            f"{ENV_SOURCES_DIR}={configured!r} is not a folder; point it at a folder (`energy-assets source"
            " add` creates it), or unset the variable to use <data home>/sources."
        )
    return path


def declaration_folders(root: Path) -> list[Path]:
    """The folders directly under `root` that hold a `defs.yaml`, in name order (hidden folders skipped).

    A `defs.yaml` that is not a regular file (a folder, a dangling link) is refused, not skipped.
    """
    if not root.is_dir():
        return []
    folders = []
    for folder in sorted(root.iterdir()):
        declaration = folder / DECLARATION_FILE
        if folder.name.startswith(".") or not folder.is_dir() or not os.path.lexists(declaration):
            continue
        if not declaration.is_file():
            raise DeclarationError(
                f"{declaration}: not a readable file (a folder or a broken link); make it the source's YAML"
                " declaration or remove it."
            )
        folders.append(folder)
    return folders


@dataclass(frozen=True)
class DeclaredSource:
    """One loaded declaration: where it is, the component it declares and the definitions it builds."""

    folder: Path
    component: dg.Component
    defs: dg.Definitions

    @property
    def name(self) -> str:
        return str(getattr(self.component, "name", self.folder.name))


def load_declarations(folders: Iterable[Path]) -> list[DeclaredSource]:
    """Load every declaration folder; refuse the first that does not load and any duplicated source name."""
    loaded: list[DeclaredSource] = []
    for folder in folders:
        source = _load_folder(folder)
        twin = next((other for other in loaded if other.name == source.name), None)
        if twin is not None:
            raise DeclarationError(
                f"{folder / DECLARATION_FILE}: source name {source.name!r} is already declared in"
                f" {twin.folder / DECLARATION_FILE}; give one of them another `name:` attribute."
            )
        loaded.append(source)
    return loaded


def declared_sources(home: DataHome | None = None) -> list[DeclaredSource]:
    """The bundled declarations and the operator's (ENERGY_ASSETS_SOURCES_DIR).

    An operator's declaration of a bundled source (same name, same component type) replaces it: that is
    how a deployment reconfigures, say, the inbox path without touching the package.
    """
    bundled = load_declarations(declaration_folders(BUNDLED_DIR))
    operator = load_declarations(declaration_folders(operator_sources_dir(home)))
    replaced = {
        source.name
        for source in operator
        for original in bundled
        if source.name == original.name and type(source.component) is type(original.component)
    }
    return load_order([source for source in bundled if source.name not in replaced], operator)


def load_order(bundled: list[DeclaredSource], operator: list[DeclaredSource]) -> list[DeclaredSource]:
    """Bundled then operator sources; a name declared by both (and not a replacement) is refused."""
    for source in operator:
        twin = next((other for other in bundled if other.name == source.name), None)
        if twin is not None:
            raise DeclarationError(
                f"{source.folder / DECLARATION_FILE}: source name {source.name!r} is the bundled"
                f" {type(twin.component).__name__} source ({twin.folder / DECLARATION_FILE}); declare the same"
                " component type to reconfigure it, or give this one another `name:` attribute."
            )
    return [*bundled, *operator]


def _load_folder(folder: Path) -> DeclaredSource:
    tree = ComponentTree(defs_module=_module_for(folder), project_root=PROJECT_ROOT)
    try:
        root = tree.load_root_component()
        # The folder's own components (the tree's root is Dagster's wrapper around them).
        found = tree.get_all_components(of_type=dg.Component)  # type: ignore[type-abstract]
        # Dagster lists a folder's component under the folder and under the root: count each once.
        declared = list({id(c): c for c in found if type(c).__module__.startswith("energy_assets.")}.values())
    except Exception as error:  # Dagster wraps what went wrong; we report it as file, line, attribute.
        raise DeclarationError(describe_load_error(folder / DECLARATION_FILE, error)) from None
    if len(declared) > 1:
        raise DeclarationError(
            f"{folder / DECLARATION_FILE}: declares {len(declared)} components; declare one source per"
            " defs.yaml (one folder each)."
        )
    try:
        defs = tree.build_defs()
    except Exception as error:
        raise DeclarationError(describe_load_error(folder / DECLARATION_FILE, error)) from None
    return DeclaredSource(folder, declared[0] if declared else root, defs)


def _module_for(folder: Path) -> types.ModuleType:
    """The package module of a bundled declaration folder, or a synthetic one for the operator's folders."""
    if folder.is_relative_to(BUNDLED_DIR):
        return importlib.import_module(f"energy_assets.defs.{folder.name}")
    if _OPERATOR_PACKAGE not in sys.modules:
        package = types.ModuleType(_OPERATOR_PACKAGE)
        package.__path__ = []
        sys.modules[_OPERATOR_PACKAGE] = package
    name = f"{_OPERATOR_PACKAGE}.{re.sub(r'[^A-Za-z0-9_]', '_', folder.name)}"
    module = types.ModuleType(name)
    module.__path__ = [str(folder)]
    module.__file__ = str(folder / "__init__.py")
    sys.modules[name] = module
    return module


def describe_load_error(path: Path, error: BaseException) -> str:
    """One message: the file, each wrong attribute with its line, and what to change."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ValidationError | ConfigurationError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ValidationError):
        problems = [_describe_problem(path, problem) for problem in cause.errors()]
        return f"{path}: the declaration does not validate: " + "; ".join(problems)
    if isinstance(cause, ConfigurationError):
        return f"{path}: {cause}"
    root = _root(error)
    if isinstance(root, yaml.YAMLError):
        problem = " ".join(str(root).split())
        return f"{path}: not valid YAML ({problem}); fix the syntax (`dg check yaml` shows it too)."
    if "No components found" in str(root):
        return (
            f"{path}: declares no component; write `type: energy_assets.components.<Type>` and its"
            " `attributes:` (`dg list components` lists the types)."
        )
    if re.search(r"Module `[^`]+` has no attribute `[^`]+`", str(root)) or isinstance(
        root, ModuleNotFoundError
    ):
        return (
            f"{path}: `type:` names no component this project knows ({root}); use"
            " energy_assets.components.EnergyChartsSource, Bdg2Source, Nem12Inbox or FileSource"
            " (`dg list components`)."
        )
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return f"{path}: the declaration does not load: {first_line} ({type(root).__name__}: {root})"


def _root(error: BaseException) -> BaseException:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return error


def _describe_problem(path: Path, problem: Any) -> str:
    location = [str(part) for part in problem.get("loc", ()) if part != "attributes"]
    # Dagster's first pass reports `attributes.<name> at <file>:<line>` as one location.
    located = (
        re.fullmatch(r"attributes\.(?P<name>[^ ]+) at .*:(?P<line>\d+)", location[0]) if location else None
    )
    attribute = located["name"] if located else ".".join(location) or "(the declaration)"
    line = int(located["line"]) if located else _attribute_line(path, attribute.split(".")[0])
    message = str(problem.get("msg", "")).removeprefix("Value error, ").removeprefix(f"{attribute}: ")
    if problem.get("type") == "extra_forbidden":
        message = (
            "no such attribute; remove it or fix its spelling (`dg list components` lists the attributes)"
        )
    elif problem.get("type") == "missing":
        message = "required; add it"
    elif str(problem.get("type", "")).endswith(("_type", "_parsing")):
        message = f"{message}, got {problem.get('input')!r}"
    where = f"line {line}, " if line else ""
    return f"{where}attribute {attribute}: {message}"


def _attribute_line(path: Path, attribute: str) -> int | None:
    """The 1-based line of `attributes.<name>` in the file (None if the file or key cannot be found)."""
    try:
        document = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(document, yaml.MappingNode):
        return None
    for key, value in document.value:
        if key.value == "attributes" and isinstance(value, yaml.MappingNode):
            for attr_key, _ in value.value:
                if attr_key.value == attribute:
                    return int(attr_key.start_mark.line) + 1
    return None
