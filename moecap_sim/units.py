"""Parse quantities with units in spec files.

Spec fields carry their unit in the name (``bandwidth_gb_s``, ``capacity_gb``).  A plain
number is read in that unit.  A string with an explicit unit (``"3.35 TB/s"``, ``"80 GiB"``)
is converted; a string whose unit has the wrong dimension (``"80 GB"`` for a bandwidth) is
rejected with a message that says so.  GB = 1e9 bytes, GiB = 2**30 bytes.
"""

from __future__ import annotations

import re

#: bytes in a GB (SI): every size and bandwidth in the project is in GB = 1e9 bytes — the one home
GB = 1e9

_SIZE = {"b": 1e-9, "kb": 1e-6, "mb": 1e-3, "gb": 1.0, "tb": 1e3,
         "kib": 1024 / 1e9, "mib": 1024**2 / 1e9, "gib": 1024**3 / 1e9, "tib": 1024**4 / 1e9}
_BW = {"b/s": 1e-9, "mb/s": 1e-3, "gb/s": 1.0, "tb/s": 1e3, "gib/s": 1024**3 / 1e9,
       "gbit/s": 1 / 8, "gbps": 1 / 8, "tbit/s": 1e3 / 8, "mt/s": None}
_FLOPS = {"tflops": 1.0, "pflops": 1e3, "gflops": 1e-3, "tops": 1.0, "pops": 1e3}
_POWER = {"w": 1.0, "kw": 1e3}
_TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_FREQ = {"ghz": 1.0, "mhz": 1e-3}

DIMENSIONS = {
    "size_gb": ("a size in GB", _SIZE),
    "bandwidth_gb_s": ("a bandwidth in GB/s", _BW),
    "tflops": ("a throughput in TFLOPS", _FLOPS),
    "watts": ("a power in W", _POWER),
    "seconds": ("a time in s", _TIME),
    "ghz": ("a frequency in GHz", _FREQ),
}

_ALL_UNITS = {}
for _dim, (_label, _table) in DIMENSIONS.items():
    for _u in _table:
        _ALL_UNITS.setdefault(_u, _dim)

_QTY = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-zµ/]+)?\s*$")


def parse_quantity(value, dimension: str):
    """Return ``value`` as a float in the canonical unit of ``dimension``.

    Raises ``ValueError`` with a readable reason when the value is not a number, or carries
    a unit of another dimension.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected {DIMENSIONS[dimension][0]}, got a boolean ({value!r})")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected {DIMENSIONS[dimension][0]}, got {type(value).__name__} {value!r}")
    m = _QTY.match(value)
    if not m:
        raise ValueError(f"expected {DIMENSIONS[dimension][0]}, could not read {value!r}")
    number, unit = float(m.group(1)), (m.group(2) or "").lower()
    if not unit:
        return number
    label, table = DIMENSIONS[dimension]
    factor = table.get(unit)
    if factor is None:
        other = _ALL_UNITS.get(unit)
        if other and other != dimension:
            raise ValueError(f"wrong unit in {value!r}: expected {label}, but '{m.group(2)}' is {DIMENSIONS[other][0].split(' in ')[0]}")
        raise ValueError(f"unknown unit '{m.group(2)}' in {value!r}: expected {label}")
    return number * factor
