import doctest
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import charts


def test_doctests():
    assert doctest.testmod(charts).failed == 0


def test_highest_day_fills_the_plot_and_missing_days_are_zero():
    days = charts.last_days(date(2026, 3, 3), 3)
    chart = charts.bar_chart(days, {days[1]: Decimal(10), days[2]: Decimal(5)})
    first, peak, half = chart.bars
    assert (first.value, first.height) == (0, 0)
    assert peak.height == charts.HEIGHT - charts.BOTTOM - charts.TOP
    assert half.height == pytest.approx(peak.height / 2)
    assert chart.peak == 10
    assert [text for _x, text in chart.labels] == ["01 Mar", "02 Mar", "03 Mar"]


def test_no_usage_gives_flat_bars():
    days = charts.last_days(date(2026, 3, 3), 30)
    chart = charts.bar_chart(days, {})
    assert len(chart.bars) == 30
    assert all(bar.height == 0 for bar in chart.bars)


@given(
    st.lists(
        st.decimals(min_value=0, max_value=10**15, places=12, allow_nan=False),
        min_size=1,
        max_size=60,
    )
)
def test_bars_stay_inside_the_plot_in_order(values):
    days = charts.last_days(date(2026, 3, 3), len(values))
    chart = charts.bar_chart(days, dict(zip(days, values, strict=True)))
    for left, right in zip(chart.bars, chart.bars[1:], strict=False):
        assert left.x + left.width <= right.x
    for bar in chart.bars:
        assert charts.TOP - 0.01 <= bar.y <= chart.baseline
        assert bar.y + bar.height == pytest.approx(chart.baseline, abs=0.02)
        assert bar.x >= 0 and bar.x + bar.width <= charts.WIDTH + 0.01


def test_refuses_no_days_and_negative_values():
    with pytest.raises(ValueError):
        charts.bar_chart([], {})
    with pytest.raises(ValueError):
        charts.last_days(date(2026, 3, 3), 0)
    with pytest.raises(ValueError):
        charts.bar_chart([date(2026, 3, 3)], {date(2026, 3, 3): Decimal(-1)})
