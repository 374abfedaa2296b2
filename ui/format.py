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


SI_PREFIXES = ("", "k", "M", "G", "T", "P", "E", "Z", "Y")  # 10^0, 10^3, ... 10^24


def format_si(value: float | None, unit: str = "", *, digits: int = 3) -> str:
    """A number short enough for a ``st.metric``: ``digits`` significant digits and an SI prefix from 10,000 up
    (``2.92e9`` → ``"2.92 G"``, ``7_610_000, "FLOP"`` → ``"7.61 MFLOP"``), plain below (``"1,350"``, ``"0.042"``);
    from 10^27 in scientific notation; ``"—"`` when unknown."""
    if value is None or not math.isfinite(value):
        return "—"
    sep = " " if unit else ""
    a = abs(value)
    if a < 10_000:
        text = f"{value:,.0f}" if a >= 1000 or (a >= 100 and float(value).is_integer()) else f"{value:.{digits}g}"
        return f"{text}{sep}{unit}"
    rounded = float(f"{value:.{digits}g}")  # 999,999 → 1.00e6: then it reads "1 M", not "1e+03 k"
    e3 = int(math.floor(math.log10(abs(rounded)) / 3))
    if e3 >= len(SI_PREFIXES):
        return f"{value:.{digits - 1}e}{sep}{unit}"
    return f"{rounded / 10 ** (3 * e3):.{digits}g} {SI_PREFIXES[e3]}{unit}"
