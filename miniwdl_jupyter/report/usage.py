"""Usage against requests per task name, and the rightsizing advice drawn from it.

Advice is given only where the evidence is clear: memory asked for is at least twice the highest
peak and at least 1 GiB more than it ("align: asked 16 GiB, peak 2.1 GiB over 96 calls: 3 GiB
would do"), a peak within 10% of the memory asked for ("sort: peak 7.8 GiB of 8 GiB: raise memory"),
or CPUs asked for at least twice the most any call kept busy. What "would do" leaves headroom: 25%
over the highest peak, rounded up to a half GiB (a whole CPU).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional

from .data import CallReport

GIB = 1024**3
HEADROOM = 1.25
NEAR_LIMIT = 0.9


@dataclass
class TaskUsage:
    name: str
    calls: int
    measured: int  # calls with a usage figure
    cached: int
    cpu_requested: Optional[float]
    memory_requested: Optional[int]
    peak_memory_min: Optional[int]
    peak_memory_median: Optional[float]
    peak_memory_max: Optional[int]
    cpu_used_max: Optional[float]  # CPU seconds / wall seconds of its busiest attempt
    cpu_hours: float
    wall_hours: float


def task_usage(calls: List[CallReport]) -> List[TaskUsage]:
    by_name: Dict[str, List[CallReport]] = {}
    for call in calls:
        by_name.setdefault(call.name, []).append(call)
    rows = []
    for name, group in by_name.items():
        attempts = [a for c in group for a in c.attempts]
        peaks = [a.usage["peak_memory_bytes"] for a in attempts if isinstance(a.usage.get("peak_memory_bytes"), (int, float))]
        busy = [
            a.usage["cpu_seconds"] / a.usage["wall_seconds"]
            for a in attempts
            if a.usage.get("wall_seconds", 0) > 1 and isinstance(a.usage.get("cpu_seconds"), (int, float))
        ]
        rows.append(
            TaskUsage(
                name=name,
                calls=len(group),
                measured=sum(1 for c in group if c.has_usage),
                cached=sum(1 for c in group if c.cached),
                cpu_requested=_most_common([c.cpu_requested for c in group]),
                memory_requested=_most_common([c.memory_requested for c in group]),
                peak_memory_min=min(peaks) if peaks else None,
                peak_memory_median=statistics.median(peaks) if peaks else None,
                peak_memory_max=max(peaks) if peaks else None,
                cpu_used_max=round(max(busy), 2) if busy else None,
                cpu_hours=sum(a.usage.get("cpu_seconds", 0) for a in attempts) / 3600,
                wall_hours=sum(a.usage.get("wall_seconds", 0) for a in attempts) / 3600,
            )
        )
    return rows


def advice(rows: List[TaskUsage]) -> List[str]:
    lines = []
    for row in rows:
        asked, peak = row.memory_requested, row.peak_memory_max
        over = f" over {row.measured} call{'s' if row.measured != 1 else ''}"
        if asked and peak:
            if peak >= NEAR_LIMIT * asked:
                lines.append(f"{row.name}: peak {size(peak)} of {size(asked)}: raise memory")
            elif asked >= 2 * peak and asked - peak >= GIB:
                enough = max(0.5, math.ceil(peak * HEADROOM / GIB * 2) / 2)
                lines.append(f"{row.name}: asked {size(asked)}, peak {size(peak)}{over}: {enough:g} GiB would do")
        if row.cpu_requested and row.cpu_used_max is not None and row.cpu_requested >= 2:
            enough_cpu = max(1, math.ceil(row.cpu_used_max))
            if row.cpu_requested >= 2 * enough_cpu:
                lines.append(
                    f"{row.name}: asked {row.cpu_requested:g} CPUs, kept at most {row.cpu_used_max:g} busy{over}: "
                    f"{enough_cpu} would do"
                )
    return lines


def size(value: Optional[float]) -> str:
    """Bytes as "7.8 GiB" (one decimal, whole numbers without), under 1 GiB as "301 MiB"."""
    if not value:
        return ""
    if value >= GIB:
        return f"{round(value / GIB, 1):g} GiB"
    return f"{value / 2**20:,.0f} MiB"


def _most_common(values: list):
    present = [v for v in values if v is not None]
    return Counter(present).most_common(1)[0][0] if present else None
