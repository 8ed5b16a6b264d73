"""How much memory each local DuckDB database may use, and where it spills what does not fit.

DuckDB's own default is 80% of the machine per database (https://duckdb.org/docs/stable/configuration/overview,
``memory_limit``), so a large day filled memory instead of spilling. Every connection the graph
opens (the warehouse file, the event source's in-memory database) gets ``memory_limit`` from
``KARTE_DUCKDB_MEMORY_LIMIT`` and a ``temp_directory`` under ``$KARTE_HOME/tmp``; DuckDB then
offloads sorts, joins, aggregates and temporary tables there when it reaches the limit.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# A share of the machine: the limit does not cover Python's own objects. Where raw_events holds the
# event sources' databases beside the warehouse, they share this one limit (Warehouse.sharing_memory).
DEFAULT_MEMORY_LIMIT = "10%"
# DuckDB's floor: below a few hundred MB even a spilling aggregate of a day has no room.
MINIMUM_BYTES = 256 * 2**20
_UNITS = {
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_LIMIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|[KMGT]I?B)\s*$", re.IGNORECASE)
_CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")


def machine_memory_bytes() -> int:
    """Physical memory, or the container's cgroup (v2) limit where that is lower."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = _CGROUP_LIMIT.read_text().strip()
    except OSError:
        return physical
    return min(physical, int(limit)) if limit.isdigit() else physical


def memory_limit_bytes(text: str, machine_bytes: int | None = None) -> int:
    """Bytes of ``text``: a share of the machine (``"10%"``) or a size (``"2GB"``, ``"1.5GiB"``)."""
    match = _LIMIT.match(text)
    if not match:
        raise ValueError(f"DuckDB memory limit {text!r} is neither a share like '10%' nor a size like '2GB'")
    number, unit = float(match.group(1)), match.group(2).upper()
    if unit == "%":
        if not 0 < number <= 100:
            raise ValueError(f"DuckDB memory limit {text!r}: a share must be over 0% and at most 100%")
        limit = int(number / 100 * (machine_bytes or machine_memory_bytes()))
    else:
        limit = int(number * _UNITS[unit])
    if limit < MINIMUM_BYTES:
        raise ValueError(
            f"DuckDB memory limit {text!r} is {limit:,} bytes, under the {MINIMUM_BYTES // 2**20} MiB minimum"
        )
    return limit


def share(memory_limit: str, parts: int) -> str:
    """One of ``parts`` equal shares of ``memory_limit``, as a size for another database's limit (at
    least the minimum: with many parts their sum can exceed ``memory_limit``)."""
    return f"{max(memory_limit_bytes(memory_limit) // parts, MINIMUM_BYTES) // 2**20}MiB"


def duckdb_config(memory_limit: str, temp_directory: Path) -> dict[str, str]:
    """The ``duckdb.connect`` config that bounds one database's memory and spills under ``temp_directory``."""
    temp_directory.mkdir(parents=True, exist_ok=True)
    return {
        "memory_limit": f"{memory_limit_bytes(memory_limit) // 2**20}MiB",
        "temp_directory": str(temp_directory),
    }
