"""Catalog registries: models (inside the package) and hardware (``hardware_specs/``).

Names are case-insensitive and aliases resolve to the canonical name.  Wherever a name is
accepted, a path to a file works too (a model ``config.json``/YAML, a device or system YAML).
The spec directories are found inside the installed wheel first, then beside the package in a
source checkout.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Callable, Type, TypeVar

import yaml
from pydantic import BaseModel

from moecap_sim.errors import SpecError, UserError, unknown_name
from moecap_sim.specs.validation import validate_spec

T = TypeVar("T", bound=BaseModel)
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: ~10× faster

_PKG = Path(__file__).resolve().parent.parent


def data_dir(name: str) -> Path:
    """Locate a shipped data directory (``hardware_specs`` or ``traces``).

    In a wheel it lives inside the package (``moecap_sim/hardware_specs``,
    ``moecap_sim/traces_data``: ``moecap_sim/traces`` is code); in a source checkout it is the
    top-level directory of the repository.
    """
    in_wheel = {"traces": "traces_data"}.get(name, name)
    for candidate in (_PKG / in_wheel, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"data directory '{name}' not found beside {_PKG}")


def read_structured(path: Path) -> Any:
    """Read a YAML or JSON file; a parse error becomes a :class:`SpecError` with the line."""
    from moecap_sim.inputs import MAX_TEXT_BYTES, read_text_file

    text = read_text_file(path, "spec file", MAX_TEXT_BYTES)  # exists, a file, UTF-8, bounded size
    try:
        if path.suffix == ".json":
            return json.loads(text)  # NaN/Infinity parse as floats; the schema names the field
        return yaml.load(text, Loader=_SafeLoader)
    except json.JSONDecodeError as exc:
        raise SpecError(str(path), [f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(str(path), [f"not valid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None


def load_spec_file(cls: Type[T], path: Path) -> T:
    """Read and validate one spec file."""
    return validate_spec(cls, read_structured(path), str(path))


def _looks_like_path(name: str) -> bool:
    """A file suffix, or an existing path; 'org/model' HF-style names are names, not paths."""
    return name.endswith((".yaml", ".yml", ".json")) or ("/" in name and Path(name).expanduser().exists())


class Registry:
    """Name → spec file registry for one directory of YAML specs."""

    def __init__(self, kind: str, directory: Callable[[], Path], cls: Type[T]):
        self.kind = kind
        self._directory = directory
        self.cls = cls

    @functools.cached_property
    def _index(self) -> dict[str, Path]:
        """Lower-cased name and alias → file.  Reads only the name/aliases lines cheaply."""
        index: dict[str, Path] = {}
        for path in sorted(self._directory().glob("*.yaml")):
            data = read_structured(path) or {}
            names = [data.get("name", path.stem)] + list(data.get("aliases", []) or [])
            for n in names:
                index.setdefault(str(n).lower(), path)
        return index

    def names(self) -> list[str]:
        """Canonical names (file stems), sorted."""
        return sorted({p.stem for p in self._index.values()})

    def all_names_and_aliases(self) -> list[str]:
        return sorted(self._index)

    def path_of(self, name: str) -> Path:
        if _looks_like_path(name):
            p = Path(name).expanduser()
            if not p.exists():
                raise UserError(f"{self.kind} file not found: {name}")
            return p
        key = name.strip().lower()
        if key not in self._index:
            raise unknown_name(self.kind, name, self.all_names_and_aliases())
        return self._index[key]

    @functools.lru_cache(maxsize=None)
    def get(self, name: str):
        """Load and validate the spec named ``name`` (or at path ``name``); the spec's ``path``
        field (when its schema has one) records the file it came from."""
        path = self.path_of(name)
        spec = load_spec_file(self.cls, path)
        if "path" in self.cls.model_fields:
            spec = spec.model_copy(update={"path": str(path)})
        return spec

    def all(self) -> list:
        return [self.get(n) for n in self.names()]
