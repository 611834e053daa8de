"""Hardware registries: devices and systems from ``hardware_specs/``."""

from __future__ import annotations

import functools

from moecap_sim.catalog import Registry, data_dir
from moecap_sim.specs.hardware import DeviceSpec, SystemSpec


@functools.lru_cache(maxsize=None)
def devices() -> Registry:
    return Registry("device", lambda: data_dir("hardware_specs") / "devices", DeviceSpec)


@functools.lru_cache(maxsize=None)
def systems() -> Registry:
    return Registry("system", lambda: data_dir("hardware_specs") / "systems", SystemSpec)
