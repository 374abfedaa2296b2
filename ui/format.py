"""Words and numbers as pages show them: durations, icons for job states.
"""

from __future__ import annotations

import math

LIVE_STATES = ("queued", "running")
# Material icons (Streamlit's markdown renders ``:material/name:`` with its bundled font, so they show on any
# machine, unlike emoji, which need an emoji font).
STATE_ICONS = {"queued": ":material/schedule:", "running": ":material/autorenew:", "done": ":material/check_circle:",
               "failed": ":material/error:", "cancelled": ":material/cancel:"}


def format_duration(seconds: float | None) -> str:
    """Human text for a duration: ``"8 s"``, ``"3 min 5 s"``, ``"1 h 2 min"``, ``"12 days"``, ``"3,400 years"`` (a
    link may ask for a grid of any size); ``"—"`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        m, s = divmod(seconds, 60)
        return f"{m} min {s} s" if s else f"{m} min"
    if seconds < 2 * 86400:
        h, rem = divmod(seconds, 3600)
        return f"{h} h {rem // 60} min"
    days = seconds / 86400
    return f"{days:,.0f} days" if days < 730 else f"{days / 365.25:,.0f} years"
