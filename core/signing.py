"""Canonical JSON bodies and webhook signatures (SPEC §6).

Two signature schemes are sent side by side on every attempt:

* ``X-Fusion-Signature``: ``v1=`` + hex HMAC-SHA256 of ``"{timestamp}.{body}"``;
* Standard Webhooks (``webhook-*`` headers): ``v1,`` + base64 HMAC-SHA256 of
  ``"{id}.{timestamp}.{body}"``, so receivers can use the Standard Webhooks / Svix
  libraries.

The HMAC key is the decoded bytes of a ``whsec_`` secret. During a secret rotation
every secret signs, and a receiver accepts the request if any signature matches.
"""

import base64
import binascii
import hashlib
import hmac
import json
import time
from secrets import token_bytes

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
DEFAULT_TOLERANCE = 300


def canonical_json(obj) -> bytes:
    """Serialize ``obj`` to the one byte string that is stored, signed and sent.

    >>> canonical_json({"b": 1, "a": [1.5, "é"]})
    b'{"a":[1.5,"\\xc3\\xa9"],"b":1}'
    """
    # allow_nan=False: NaN/Infinity are not JSON and receivers would choke on them.
    text = json.dumps(
        obj,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return text.encode("utf-8")


def generate_secret(nbytes: int = 32) -> str:
    """Return a new ``whsec_`` secret holding ``nbytes`` random bytes."""
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes,"
            f" not {nbytes}"
        )
    return SECRET_PREFIX + base64.b64encode(token_bytes(nbytes)).decode("ascii")


def decode_secret(secret: str) -> bytes:
    """Return the HMAC key of a ``whsec_`` secret; ValueError if it is malformed."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"webhook secret must start with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    # Tolerate missing "=" padding, as the Standard Webhooks libraries do.
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ValueError(
            f"webhook secret must be {SECRET_PREFIX!r} followed by base64"
        ) from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"webhook secret must decode to {MIN_SECRET_BYTES} to"
            f" {MAX_SECRET_BYTES} bytes, not {len(key)}"
        )
    return key


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def fusion_signature(key: bytes, body: bytes, timestamp: int) -> str:
    """Return one ``v1=<hex>`` entry of ``X-Fusion-Signature``."""
    digest = _hmac_sha256(key, f"{timestamp}.".encode("ascii") + body)
    return "v1=" + digest.hex()


def standard_signature(key: bytes, event_id: str, body: bytes, timestamp: int) -> str:
    """Return one ``v1,<base64>`` entry of the Standard Webhooks signature."""
    digest = _hmac_sha256(key, f"{event_id}.{timestamp}.".encode() + body)
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(
    event_id: str,
    event_type: str,
    body: bytes,
    secrets: list[str],
    timestamp: int,
) -> dict[str, str]:
    """Return the headers of one delivery attempt of ``body``.

    ``secrets`` holds the current secret, plus the previous one during a rotation.
    """
    if not isinstance(body, bytes):
        raise TypeError("the webhook body must be the exact bytes that are sent")
    if not secrets:
        raise ValueError("at least one webhook secret is needed to sign")
    # The Standard Webhooks signed content is "id.timestamp.body": a "." in the id
    # would make it ambiguous.
    if not event_id or "." in event_id:
        raise ValueError("event id must be non-empty and contain no '.'")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("timestamp must be Unix seconds (a non-negative int)")
    keys = [decode_secret(secret) for secret in secrets]
    return {
        "Content-Type": "application/json",
        "X-Fusion-Event-Id": event_id,
        "X-Fusion-Event-Type": event_type,
        "X-Fusion-Timestamp": str(timestamp),
        "X-Fusion-Signature": ",".join(
            fusion_signature(key, body, timestamp) for key in keys
        ),
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            standard_signature(key, event_id, body, timestamp) for key in keys
        ),
    }


def verify_fusion_signature(
    body: bytes,
    header_value: str,
    timestamp,
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Receiver side: check ``X-Fusion-Signature`` and ``X-Fusion-Timestamp``.

    ``timestamp`` is the header value (str or int). False when the timestamp is
    malformed or more than ``tolerance`` seconds away from ``now`` (replay
    protection), or when no ``v1=`` entry matches. A malformed ``secret`` is the
    receiver's own configuration error and raises ValueError.
    """
    key = decode_secret(secret)
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance:
        return False
    expected = fusion_signature(key, body, sent_at)
    candidates = (entry.strip() for entry in (header_value or "").split(","))
    return any(
        hmac.compare_digest(expected.encode("ascii"), candidate.encode("utf-8"))
        for candidate in candidates
        if candidate.startswith("v1=")
    )
