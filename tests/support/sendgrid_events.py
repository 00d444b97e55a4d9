"""Signing as SendGrid's Event Webhook does: an ECDSA key shown as SendGrid shows it, the
signature header over timestamp + body, and the fixed times the webhook tests sign at.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

TIMESTAMP = "1776859200"
# The webhook tests' clock: events happen, and batches are signed, at this time.
NOW = int(datetime(2026, 1, 29, 9, tzinfo=UTC).timestamp())


def public_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The key as SendGrid shows it: base64 of the DER SubjectPublicKeyInfo."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sign(key: ec.EllipticCurvePrivateKey, payload: bytes, timestamp: str = TIMESTAMP) -> str:
    """What SendGrid sends in X-Twilio-Email-Event-Webhook-Signature."""
    signature = key.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()
