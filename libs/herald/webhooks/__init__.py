"""WhatsApp webhook helpers shared by the webhook service, the simulator and tests."""

from herald.webhooks.signature import SignatureCheck, sign_body, verify_signature

__all__ = ["SignatureCheck", "sign_body", "verify_signature"]
