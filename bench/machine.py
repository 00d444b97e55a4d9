"""Where a run's CPU went on the whole machine: busy share of all cores, and the CPU seconds of
the shared servers (PostgreSQL, Redis) that no process of the benchmark accounts for.

Linux only (/proc). A snapshot before and after the timed part; `since` gives the figures.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SERVERS = ("postgres", "redis-server")


def _cpu_by_name() -> dict[str, float]:
    """CPU seconds of every live process of each server, with what their parent has reaped
    of children that ended (a PostgreSQL backend's CPU moves to the postmaster's count)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = dict.fromkeys(SERVERS, 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name not in found:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        found[name] += sum(int(value) for value in fields[11:15]) / ticks  # u, s, cu, cs time
    return found


def _jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot: idle and iowait are not busy."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest is in user)
    return total - values[3] - values[4], total


@dataclass(frozen=True)
class MachineCpu:
    busy: int
    total: int
    servers: dict[str, float]

    @classmethod
    def now(cls) -> MachineCpu:
        busy, total = _jiffies()
        return cls(busy, total, _cpu_by_name())

    def since(self, before: MachineCpu) -> dict[str, float]:
        """The machine's busy share of its cores, and each server's CPU seconds, between."""
        span = max(self.total - before.total, 1)
        figures = {"machine_busy_fraction": round((self.busy - before.busy) / span, 3)}
        for name, seconds in self.servers.items():
            key = name.split("-")[0] + "_cpu_seconds"
            figures[key] = round(seconds - before.servers.get(name, 0.0), 2)
        return figures
