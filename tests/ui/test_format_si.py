"""ui.format.format_si: numbers short enough for a st.metric (the issue saw "Paths 2.92e…" cut)."""

from __future__ import annotations

import pytest

from ui.format import format_si


@pytest.mark.parametrize("value, unit, text", [
    (0, "", "0"), (0.0421, "", "0.0421"), (12.5, "", "12.5"), (999, "", "999"), (1350, "", "1,350"),
    (9999.4, "", "9,999"), (10_000, "", "10 k"), (12_345, "", "12.3 k"), (999_499, "", "999 k"),
    (999_500, "", "1 M"),  # rounds up into the next prefix, never "1e+03 k"
    (2.92e9, "", "2.92 G"), (7_610_000, "FLOP", "7.61 MFLOP"), (3.2e15, "FLOP", "3.2 PFLOP"),
    (-12_345, "", "-12.3 k"), (1e27, "", "1.00e+27"), (None, "", "—"), (float("nan"), "FLOP", "—"),
])
def test_format_si(value, unit, text):
    assert format_si(value, unit) == text


def test_format_si_stays_short():
    for e in range(0, 26):  # up to 999 Y; beyond, scientific notation
        for m in (1.0, 4.567, 9.999):
            assert len(format_si(m * 10 ** e, "FLOP")) <= 10
