"""Exponential backoff of webhook deliveries (SPEC §6).

``attempts`` is the number of failed attempts so far. After the n-th failure the
next attempt is due ``60 s x 2**min(n, 10)`` later:

>>> [int(next_delay(n).total_seconds()) for n in range(1, 14)]
[120, 240, 480, 960, 1920, 3840, 7680, 15360, 30720, 61440, 61440, 61440, 61440]

With the default 14 attempts, the last one runs about 3.5 days after the first
(3 days 13 h 18 min; the 14th failure is final, so 13 delays are waited):

>>> retry_span(DEFAULT_MAX_ATTEMPTS)
datetime.timedelta(days=3, seconds=47880)
>>> round(retry_span(DEFAULT_MAX_ATTEMPTS) / timedelta(days=1), 2)
3.55
"""

from datetime import timedelta

BASE_DELAY = 60
MAX_EXPONENT = 10
DEFAULT_MAX_ATTEMPTS = 14


def next_delay(attempts: int) -> timedelta:
    """Return the wait before the next attempt, after ``attempts`` failures.

    >>> next_delay(1)
    datetime.timedelta(seconds=120)
    >>> next_delay(10) == next_delay(50) == timedelta(hours=17, minutes=4)
    True
    """
    if attempts < 0:
        raise ValueError(f"attempts cannot be negative: {attempts}")
    return timedelta(seconds=BASE_DELAY * 2 ** min(attempts, MAX_EXPONENT))


def is_exhausted(attempts: int, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> bool:
    """True when ``attempts`` failures leave no attempt to make.

    >>> is_exhausted(13, 14), is_exhausted(14, 14)
    (False, True)
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
    return attempts >= max_attempts


def retry_span(max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> timedelta:
    """Return the time from the first to the last of ``max_attempts`` attempts.

    >>> retry_span(1), retry_span(3)
    (datetime.timedelta(0), datetime.timedelta(seconds=360))
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
    return sum((next_delay(n) for n in range(1, max_attempts)), timedelta())
