from datetime import timedelta

import pytest

from core import retry

# attempts (failures so far) -> wait before the next attempt, SPEC §6.
SCHEDULE = [
    (0, timedelta(minutes=1)),
    (1, timedelta(minutes=2)),
    (2, timedelta(minutes=4)),
    (3, timedelta(minutes=8)),
    (4, timedelta(minutes=16)),
    (5, timedelta(minutes=32)),
    (6, timedelta(minutes=64)),
    (7, timedelta(minutes=128)),
    (8, timedelta(minutes=256)),
    (9, timedelta(minutes=512)),
    (10, timedelta(minutes=1024)),
    (11, timedelta(minutes=1024)),
    (13, timedelta(minutes=1024)),
    (100, timedelta(minutes=1024)),
]


@pytest.mark.parametrize(("attempts", "delay"), SCHEDULE)
def test_next_delay(attempts, delay):
    assert retry.next_delay(attempts) == delay


def test_delay_is_capped_at_about_17_hours():
    cap = retry.BASE_DELAY * 2**retry.MAX_EXPONENT
    assert cap == 61_440
    assert retry.next_delay(retry.MAX_EXPONENT).total_seconds() == cap


def test_next_delay_refuses_negative_attempts():
    with pytest.raises(ValueError, match=r"^attempts cannot be negative: -1$"):
        retry.next_delay(-1)


@pytest.mark.parametrize(
    ("attempts", "max_attempts", "exhausted"),
    [(0, 14, False), (1, 14, False), (13, 14, False), (14, 14, True), (15, 14, True),
     (0, 1, False), (1, 1, True), (3, 3, True)],
)  # fmt: skip
def test_is_exhausted(attempts, max_attempts, exhausted):
    assert retry.is_exhausted(attempts, max_attempts) is exhausted


def test_default_schedule_spans_about_three_and_a_half_days():
    span = retry.retry_span(retry.DEFAULT_MAX_ATTEMPTS)
    assert span == timedelta(days=3, hours=13, minutes=18)
    assert timedelta(days=3.5) <= span < timedelta(days=3.6)


def test_retry_span_sums_the_waits_between_attempts():
    assert retry.retry_span(1) == timedelta(0)
    assert retry.retry_span(2) == retry.next_delay(1)
    assert retry.retry_span(5) == sum(
        (retry.next_delay(n) for n in range(1, 5)), timedelta()
    )


@pytest.mark.parametrize("max_attempts", [0, -3])
def test_max_attempts_must_be_positive(max_attempts):
    message = f"^max_attempts must be at least 1, not {max_attempts}$"
    with pytest.raises(ValueError, match=message):
        retry.is_exhausted(0, max_attempts)
    with pytest.raises(ValueError, match=message):
        retry.retry_span(max_attempts)
