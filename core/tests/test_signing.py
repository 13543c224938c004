import base64
import hashlib
import hmac
import math
import time

import pytest
import standardwebhooks

from core import signing

# Fixed secrets: 32 and 24 bytes of known content, so signatures can be computed
# by hand below.
KEY_A = bytes(range(32))
KEY_B = b"rotation-secret-24-bytes"
SECRET_A = "whsec_" + base64.b64encode(KEY_A).decode()
SECRET_B = "whsec_" + base64.b64encode(KEY_B).decode()
EVENT_ID = "3f1c2a9e-8d7b-4c1a-9e2f-0a1b2c3d4e5f"
BODY = signing.canonical_json({"type": "invoice.created", "data": {"amount": "12.50"}})


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"b": 1, "a": 2}, b'{"a":2,"b":1}'),
        ({"z": {"y": 1, "x": [3, 2, 1]}}, b'{"z":{"x":[3,2,1],"y":1}}'),
        ({"name": "Café ☕"}, '{"name":"Café ☕"}'.encode()),
        ({"emoji": "\U0001f600"}, b'{"emoji":"\xf0\x9f\x98\x80"}'),
        ({"quote": 'a"b\\c\n'}, b'{"quote":"a\\"b\\\\c\\n"}'),
        ([1, 1.5, True, None, "x"], b'[1,1.5,true,null,"x"]'),
        ({}, b"{}"),
    ],
)
def test_canonical_json_exact_bytes(obj, expected):
    assert signing.canonical_json(obj) == expected


def test_canonical_json_ignores_insertion_order():
    first = {"id": 1, "amount": "3.00", "lines": [{"q": 1, "p": 2}]}
    second = {"lines": [{"p": 2, "q": 1}], "amount": "3.00", "id": 1}
    assert signing.canonical_json(first) == signing.canonical_json(second)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_canonical_json_rejects_non_finite_numbers(value):
    with pytest.raises(ValueError):
        signing.canonical_json({"amount": value})


def test_generate_secret_round_trips():
    secret = signing.generate_secret()
    assert secret.startswith("whsec_")
    assert len(signing.decode_secret(secret)) == 32
    assert signing.generate_secret() != secret
    assert len(signing.decode_secret(signing.generate_secret(24))) == 24
    assert len(signing.decode_secret(signing.generate_secret(64))) == 64


@pytest.mark.parametrize("nbytes", [0, 16, 23, 65])
def test_generate_secret_refuses_bad_sizes(nbytes):
    with pytest.raises(ValueError, match="24 to 64 bytes"):
        signing.generate_secret(nbytes)


def test_decode_secret_accepts_missing_padding():
    unpadded = SECRET_A.rstrip("=")
    assert unpadded != SECRET_A
    assert signing.decode_secret(unpadded) == KEY_A


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (base64.b64encode(KEY_A).decode(), "must start with 'whsec_'"),
        ("WHSEC_" + base64.b64encode(KEY_A).decode(), "must start with 'whsec_'"),
        ("whsec_not*base64!", "followed by base64"),
        # Stray characters around valid base64: a lenient decoder would drop them
        # and accept a secret that was mistyped or mangled when pasted.
        (SECRET_A[:26] + "!" + SECRET_A[26:], "followed by base64"),
        (SECRET_A[:26] + " " + SECRET_A[26:], "followed by base64"),
        (SECRET_A[:46] + "\n" + SECRET_A[46:], "followed by base64"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "not 23"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "not 65"),
        ("whsec_", "not 0"),
        (None, "must start with 'whsec_'"),
    ],
)
def test_decode_secret_rejects_bad_secrets(secret, message):
    with pytest.raises(ValueError, match=message):
        signing.decode_secret(secret)


def test_signature_headers_match_hand_computed_hmacs():
    headers = signing.signature_headers(
        EVENT_ID, "invoice.created", BODY, [SECRET_A], 1_700_000_000
    )
    fusion = hmac.new(KEY_A, b"1700000000." + BODY, hashlib.sha256).hexdigest()
    standard = hmac.new(
        KEY_A, f"{EVENT_ID}.1700000000.".encode() + BODY, hashlib.sha256
    ).digest()
    assert headers == {
        "Content-Type": "application/json",
        "X-Fusion-Event-Id": EVENT_ID,
        "X-Fusion-Event-Type": "invoice.created",
        "X-Fusion-Timestamp": "1700000000",
        "X-Fusion-Signature": f"v1={fusion}",
        "webhook-id": EVENT_ID,
        "webhook-timestamp": "1700000000",
        "webhook-signature": "v1," + base64.b64encode(standard).decode(),
    }


def test_rotation_signs_with_both_secrets():
    headers = signing.signature_headers(
        EVENT_ID, "invoice.created", BODY, [SECRET_A, SECRET_B], 1_700_000_000
    )
    fusion = headers["X-Fusion-Signature"].split(",")
    standard = headers["webhook-signature"].split(" ")
    assert len(fusion) == len(standard) == 2
    for key, fusion_entry, standard_entry in zip(
        (KEY_A, KEY_B), fusion, standard, strict=True
    ):
        message = b"1700000000." + BODY
        assert fusion_entry == "v1=" + hmac.new(key, message, "sha256").hexdigest()
        digest = hmac.new(key, f"{EVENT_ID}.".encode() + message, "sha256").digest()
        assert standard_entry == "v1," + base64.b64encode(digest).decode()


def test_standardwebhooks_library_verifies_each_secret():
    now = int(time.time())  # the library checks the timestamp against its clock
    headers = signing.signature_headers(
        EVENT_ID, "invoice.created", BODY, [SECRET_A, SECRET_B], now
    )
    for secret in (SECRET_A, SECRET_B):
        payload = standardwebhooks.Webhook(secret).verify(BODY, headers)
        assert payload == {"type": "invoice.created", "data": {"amount": "12.50"}}
    other = signing.generate_secret()
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(other).verify(BODY, headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET_A).verify(BODY + b" ", headers)


def test_standardwebhooks_library_verifies_unicode_body():
    body = signing.canonical_json({"customer": "Zoë Ñandú ☕"})
    now = int(time.time())
    headers = signing.signature_headers(EVENT_ID, "x", body, [SECRET_B], now)
    assert standardwebhooks.Webhook(SECRET_B).verify(body, headers) == {
        "customer": "Zoë Ñandú ☕"
    }


def test_each_attempt_is_signed_afresh():
    first = signing.signature_headers(EVENT_ID, "t", BODY, [SECRET_A], 1000)
    retry = signing.signature_headers(EVENT_ID, "t", BODY, [SECRET_A], 1300)
    assert first["X-Fusion-Event-Id"] == retry["X-Fusion-Event-Id"]
    assert first["X-Fusion-Signature"] != retry["X-Fusion-Signature"]
    assert first["webhook-signature"] != retry["webhook-signature"]


def test_signature_headers_accept_timestamp_zero():
    headers = signing.signature_headers(EVENT_ID, "t", BODY, [SECRET_A], 0)
    assert headers["X-Fusion-Timestamp"] == headers["webhook-timestamp"] == "0"
    fusion = hmac.new(KEY_A, b"0." + BODY, hashlib.sha256).hexdigest()
    assert headers["X-Fusion-Signature"] == f"v1={fusion}"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"secrets": []}, ValueError, "^at least one webhook secret is needed"),
        ({"secrets": ["whsec_short"]}, ValueError, "webhook secret must"),
        ({"event_id": "a.b"}, ValueError, "^event id must be non-empty and contain"),
        ({"event_id": ""}, ValueError, "^event id must be non-empty and contain"),
        ({"timestamp": -1}, ValueError, "^timestamp must be Unix seconds"),
        ({"timestamp": "1700000000"}, ValueError, "^timestamp must be Unix seconds"),
        ({"timestamp": True}, ValueError, "^timestamp must be Unix seconds"),
        (
            {"body": BODY.decode()},
            TypeError,
            "^the webhook body must be the exact bytes",
        ),
    ],
)
def test_signature_headers_refuses_bad_input(kwargs, error, message):
    arguments = {
        "event_id": EVENT_ID,
        "event_type": "invoice.created",
        "body": BODY,
        "secrets": [SECRET_A],
        "timestamp": 1_700_000_000,
        **kwargs,
    }
    with pytest.raises(error, match=message):
        signing.signature_headers(**arguments)


def _signed(timestamp=1_700_000_000, secrets=(SECRET_A, SECRET_B)):
    headers = signing.signature_headers(EVENT_ID, "t", BODY, list(secrets), timestamp)
    return headers["X-Fusion-Signature"], headers["X-Fusion-Timestamp"]


def test_verify_fusion_signature_accepts_each_rotated_secret():
    signature, timestamp = _signed()
    for secret in (SECRET_A, SECRET_B):
        assert signing.verify_fusion_signature(
            BODY, signature, timestamp, secret, now=1_700_000_100
        )


@pytest.mark.parametrize(
    ("body", "timestamp", "secret", "now"),
    [
        (BODY + b"\n", "1700000000", SECRET_A, 1_700_000_000),  # body changed
        (BODY, "1700000001", SECRET_A, 1_700_000_000),  # timestamp changed
        (BODY, "1700000000", signing.generate_secret(), 1_700_000_000),  # other key
        (BODY, "1700000000", SECRET_A, 1_700_000_301),  # replayed too late
        (BODY, "1700000000", SECRET_A, 1_699_999_699),  # from the future
        (BODY, "yesterday", SECRET_A, 1_700_000_000),  # malformed timestamp
    ],
)
def test_verify_fusion_signature_rejects(body, timestamp, secret, now):
    signature, _ = _signed()
    assert not signing.verify_fusion_signature(
        body, signature, timestamp, secret, now=now
    )


@pytest.mark.parametrize("header", ["", "v1=", "v2=abcd", "v1=" + "0" * 64, None])
def test_verify_fusion_signature_rejects_bad_headers(header):
    assert not signing.verify_fusion_signature(
        BODY, header, "1700000000", SECRET_A, now=1_700_000_000
    )


def test_verify_fusion_signature_within_tolerance_and_with_clock():
    signature, timestamp = _signed(secrets=[SECRET_A])
    assert signing.verify_fusion_signature(
        BODY, signature, int(timestamp), SECRET_A, now=1_700_000_300
    )
    assert not signing.verify_fusion_signature(
        BODY, signature, timestamp, SECRET_A, tolerance=60, now=1_700_000_061
    )
    now = int(time.time())
    signature, timestamp = _signed(timestamp=now, secrets=[SECRET_A])
    assert signing.verify_fusion_signature(BODY, signature, timestamp, SECRET_A)


def test_verify_fusion_signature_raises_on_bad_secret():
    signature, timestamp = _signed()
    with pytest.raises(ValueError):
        signing.verify_fusion_signature(BODY, signature, timestamp, "not-a-secret")
