"""The scenario constants (``scenario_constants.yaml``): every value with its source.

A source ending in ``?`` marks an assumption (or a recalled, unchecked value); :class:`Constants`
records each constant a plan actually used, so the output's ``assumptions`` lists them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import yaml

from moecap_sim.errors import UserError

_PATH = Path(__file__).with_name("scenario_constants.yaml")


@lru_cache(maxsize=1)
def _table() -> dict:
    return yaml.safe_load(_PATH.read_text())


class Constants:
    """Look-ups into the constants table with user overrides (``{"spot.reacquire_s": 600}``);
    every look-up is remembered with its source for the output's ``assumptions``."""

    def __init__(self, overrides: Optional[dict[str, float]] = None) -> None:
        self.overrides = dict(overrides or {})
        for key in self.overrides:
            if self._entry(key) is None:
                from moecap_sim.errors import close_matches

                hint = close_matches(key, self.keys())
                raise UserError(f"--set {key}: unknown scenario constant"
                                + (f" (did you mean {', '.join(hint)}?)" if hint else f" (known: {', '.join(self.keys())})"))
        self.used: dict[str, dict[str, Any]] = {}

    @staticmethod
    def keys() -> list[str]:
        out = []

        def walk(d: dict, prefix: str) -> None:
            for k, v in d.items():
                if isinstance(v, dict) and "value" in v:
                    out.append(prefix + k)
                elif isinstance(v, dict):
                    walk(v, prefix + k + ".")
        walk(_table(), "")
        return out

    @staticmethod
    def _entry(key: str) -> Optional[dict]:
        node: Any = _table()
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node if isinstance(node, dict) and "value" in node else None

    def get(self, key: str) -> Any:
        """The value of ``key`` (a dotted path), the user's override first."""
        e = self._entry(key)
        if e is None:
            raise KeyError(key)
        if key in self.overrides:
            v, src = self.overrides[key], "set by the user (--set)"
        else:
            v, src = e["value"], e["source"]
        self.used[key] = {"value": v, "source": src, "assumption": src.rstrip().endswith("?")}
        return v

    def spot_rate_per_hour(self, provider: Optional[str]) -> tuple[float, str]:
        """Spot interruptions per instance-hour for ``provider`` (falls back to ``default``)."""
        p = (provider or "").lower()
        key = f"spot.interruptions_per_hour.{p}" if self._entry(f"spot.interruptions_per_hour.{p}") else \
            "spot.interruptions_per_hour.default"
        return float(self.get(key)), key
