"""`X-Hub-Signature-256`: HMAC-SHA256 of the raw request body keyed with the app secret.

Meta signs the exact bytes it sends, so the check runs over the raw body, never over JSON
re-serialised by us, and compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


class SignatureCheck(StrEnum):
    VALID = "valid"
    MISSING = "missing"
    INVALID = "invalid"


def sign_body(secret: str, body: bytes) -> str:
    """The header value Meta would send for `body`: `sha256=<lowercase hex>`."""
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> SignatureCheck:
    """Check an `X-Hub-Signature-256` header against the raw body.

    MISSING when there is no header (or no secret is configured, which must never accept
    anything); INVALID when it is malformed or does not match; VALID otherwise.
    """
    if not header:
        return SignatureCheck.MISSING
    if not secret:
        return SignatureCheck.INVALID
    expected = sign_body(secret, body)
    # compare_digest on equal-length ASCII bytes takes the same time wherever they differ.
    given = header.strip().encode("ascii", "replace")
    if hmac.compare_digest(given, expected.encode()):
        return SignatureCheck.VALID
    return SignatureCheck.INVALID
