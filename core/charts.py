"""Geometry of the small bar charts the customer portal draws as inline SVG.

Server-rendered SVG needs no JavaScript and no third-party asset: the page
works as delivered, prints, and cannot fail to load a chart library.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

WIDTH = 600
HEIGHT = 160
# Room under the bars for the day labels, above them for the top value.
BOTTOM = 20
TOP = 12
GAP = 2


@dataclass(frozen=True)
class Bar:
    day: date
    value: Decimal
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class BarChart:
    bars: tuple
    peak: Decimal
    # (x, text) of the few day labels under the axis: first, middle, last.
    labels: tuple
    width: int = WIDTH
    height: int = HEIGHT
    baseline: float = HEIGHT - BOTTOM


def last_days(today, count):
    """The ``count`` days ending with ``today``, oldest first.

    >>> last_days(date(2026, 3, 2), 3)
    [datetime.date(2026, 2, 28), datetime.date(2026, 3, 1), datetime.date(2026, 3, 2)]
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count!r}")
    return [today - timedelta(days=offset) for offset in range(count - 1, -1, -1)]


def bar_chart(days, values):
    """Bars of ``values`` ({day: Decimal}, missing days are 0) over ``days``,
    scaled so the highest value fills the plot; all zero gives flat bars."""
    if not days:
        raise ValueError("a chart needs at least one day")
    series = [(day, values.get(day, Decimal(0))) for day in days]
    peak = max(value for _day, value in series)
    if peak < 0:
        raise ValueError("usage values are never negative")
    plot_height = HEIGHT - BOTTOM - TOP
    slot = WIDTH / len(series)
    bars = []
    for index, (day, value) in enumerate(series):
        height = float(value / peak) * plot_height if peak else 0.0
        bars.append(
            Bar(
                day=day,
                value=value,
                x=round(index * slot + GAP / 2, 2),
                y=round(HEIGHT - BOTTOM - height, 2),
                width=round(max(slot - GAP, 1), 2),
                height=round(height, 2),
            )
        )
    picked = sorted({0, len(series) // 2, len(series) - 1})
    labels = tuple(
        (round(index * slot + slot / 2, 2), series[index][0].strftime("%d %b"))
        for index in picked
    )
    return BarChart(bars=tuple(bars), peak=peak, labels=labels)
