"""SVG drawing shared by the report's pictures: the state palette, escaping, a time axis.

Plain SVG elements with <title> tooltips and no script, so the pictures show wherever HTML does:
a reopened untrusted notebook, a file opened from disk with no network, JupyterLab's renderer.
"""

from __future__ import annotations

import html
from typing import List

# Colours by call state; one place so the widget, the board, the summary and the report agree.
STATE_COLOURS = {
    "queued": "#9e9e9e",
    "running": "#1976d2",
    "retrying": "#f57c00",
    "succeeded": "#2e7d32",
    "cached": "#00897b",
    "failed": "#c62828",
    "cancelled": "#6d4c41",
}
WAITING_COLOUR = "#cfd8dc"
FONT = "font-family='sans-serif' font-size='11'"


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def svg(width: float, height: float, body: List[str], label: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' height='{height:.0f}' "
        f"viewBox='0 0 {width:.0f} {height:.0f}' role='img' aria-label='{esc(label)}' {FONT}>"
        + "".join(body)
        + "</svg>"
    )


def axis_ticks(seconds: float) -> List[int]:
    """Tick times at a round step (1, 2, 5 x 10^n seconds, or minutes/hours), at most about 10."""
    steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400]
    step = next((s for s in steps if seconds / s <= 10), 86400 * max(1, int(seconds / 86400 / 10) + 1))
    return list(range(0, int(seconds + 1e-9) + 1, step))


def time_axis(x0: float, width: float, y: float, seconds: float) -> List[str]:
    """The axis line and its ticks along `width` pixels."""
    scale = width / max(seconds, 1e-9)
    parts = [f"<line x1='{x0}' y1='{y}' x2='{x0 + width:.1f}' y2='{y}' stroke='#888'/>"]
    for tick in axis_ticks(seconds):
        x = x0 + tick * scale
        parts.append(f"<line x1='{x:.1f}' y1='{y}' x2='{x:.1f}' y2='{y + 4}' stroke='#888'/>")
        parts.append(f"<text x='{x:.1f}' y='{y + 15}' text-anchor='middle' fill='#555'>{esc(clock(tick))}</text>")
    return parts


def clock(seconds: float) -> str:
    """0s, 45s, 2m30s, 1h05m."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s" if seconds % 60 else f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
