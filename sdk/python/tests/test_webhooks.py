"""plugboard.webhooks.verify against known vectors and tampered, stale and missing cases.

The expected signatures are computed here with hmac and hashlib directly (and one is the
Standard Webhooks specification's published vector), not with the SDK's own signer."""

from __future__ import annotations

import base64
import email.message
import hashlib
import hmac
import json
import os
import unittest

from plugboard import WebhookVerificationError, webhooks

# The vector published with the Standard Webhooks specification and its libraries.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

NOW = 1_764_720_000
KEY = os.urandom(24)
SECRET = "whsec_" + base64.b64encode(KEY).decode()
EVENT = {
    "id": "evt_1",
    "type": "trig.items",
    "event_type": "record.created",
    "source_event_id": "rec_1",
    "timestamp": "2026-12-03T00:00:00Z",
    "subscription": "sub_1",
    "data": {"id": "rec_1", "name": "Ada"},
}
BODY = json.dumps(EVENT).encode()


def expected(key: bytes, msg_id: str, ts: int, body: bytes) -> str:
    mac = hmac.new(key, msg_id.encode() + b"." + str(ts).encode() + b"." + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(ts: int = NOW, sig: str = "", msg_id: str = "evt_1") -> dict:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig or expected(KEY, msg_id, ts, BODY)}


class VerifyTest(unittest.TestCase):
    def test_the_specification_vector(self) -> None:
        h = {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TS), "webhook-signature": SPEC_SIG}
        self.assertEqual(webhooks.verify(h, SPEC_BODY, SPEC_SECRET, now=SPEC_TS), {"test": 2432232314})
        self.assertEqual(webhooks.sign(SPEC_ID, SPEC_TS, SPEC_BODY, SPEC_SECRET), SPEC_SIG)

    def test_valid_push_returns_the_event(self) -> None:
        self.assertEqual(webhooks.verify(headers(), BODY, SECRET, now=NOW), EVENT)

    def test_headers_are_case_insensitive_in_any_mapping(self) -> None:
        msg = email.message.Message()  # what http.server gives as self.headers
        for k, v in headers().items():
            msg[k.title()] = v
        self.assertEqual(webhooks.verify(msg, BODY, SECRET, now=NOW)["id"], "evt_1")
        upper = {k.upper(): v for k, v in headers().items()}
        self.assertEqual(webhooks.verify(upper, bytearray(BODY), SECRET, now=NOW)["id"], "evt_1")

    def test_any_one_matching_signature_is_enough(self) -> None:
        other = expected(os.urandom(24), "evt_1", NOW, BODY)
        sig = f"v2,abc {other} {expected(KEY, 'evt_1', NOW, BODY)} v1,"
        self.assertEqual(webhooks.verify(headers(sig=sig), BODY, SECRET, now=NOW)["id"], "evt_1")

    def test_secret_without_prefix(self) -> None:
        self.assertEqual(webhooks.verify(headers(), BODY, base64.b64encode(KEY).decode(), now=NOW)["id"], "evt_1")

    def test_tampered_body(self) -> None:
        tampered = BODY.replace(b"Ada", b"Eve")
        self.assert_fails("no_matching_signature", headers(), tampered, SECRET)

    def test_changed_id_or_timestamp(self) -> None:
        h = headers()
        h["webhook-id"] = "evt_2"
        self.assert_fails("no_matching_signature", h, BODY, SECRET)
        h = headers()
        h["webhook-timestamp"] = str(NOW + 1)
        self.assert_fails("no_matching_signature", h, BODY, SECRET)

    def test_wrong_secret(self) -> None:
        self.assert_fails("no_matching_signature", headers(), BODY, "whsec_" + base64.b64encode(os.urandom(24)).decode())

    def test_only_other_versions(self) -> None:
        sig = expected(KEY, "evt_1", NOW, BODY).replace("v1,", "v2,")
        self.assert_fails("no_matching_signature", headers(sig=sig), BODY, SECRET)

    def test_stale_timestamp_either_way(self) -> None:
        for ts in (NOW - 301, NOW + 301):
            with self.subTest(ts=ts):
                self.assert_fails("stale_timestamp", headers(ts=ts), BODY, SECRET)
        for ts in (NOW - 299, NOW + 299):
            self.assertEqual(webhooks.verify(headers(ts=ts), BODY, SECRET, now=NOW)["id"], "evt_1")

    def test_invalid_timestamp(self) -> None:
        h = headers()
        h["webhook-timestamp"] = "2026-12-03T00:00:00Z"
        self.assert_fails("invalid_timestamp", h, BODY, SECRET)

    def test_missing_headers(self) -> None:
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            with self.subTest(missing=name):
                h = headers()
                del h[name]
                err = self.assert_fails("missing_header", h, BODY, SECRET)
                self.assertIn(name, str(err))

    def test_signed_body_that_is_not_json(self) -> None:
        body = b"not json"
        h = {"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": expected(KEY, "m", NOW, body)}
        self.assert_fails("invalid_body", h, body, SECRET)

    def test_bad_secret_is_a_value_error(self) -> None:
        with self.assertRaisesRegex(ValueError, "not base64"):
            webhooks.verify(headers(), BODY, "whsec_!!!", now=NOW)
        with self.assertRaisesRegex(ValueError, "empty"):
            webhooks.verify(headers(), BODY, "", now=NOW)

    def assert_fails(self, reason: str, h: dict, body: bytes, secret: str) -> WebhookVerificationError:
        with self.assertRaises(WebhookVerificationError) as ctx:
            webhooks.verify(h, body, secret, now=NOW)
        self.assertEqual(ctx.exception.reason, reason, str(ctx.exception))
        return ctx.exception


if __name__ == "__main__":
    unittest.main()
