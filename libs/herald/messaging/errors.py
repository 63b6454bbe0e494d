"""Why an outbound message was refused before anything was stored or sent.

Every refusal is a client mistake with a stable `code`, so each maps to a 4xx problem+json
naming the field. Opting out is a state conflict (409): the request is well formed, the
contact simply does not want marketing; the others are 422 (the request cannot be honoured
as written).
"""

from __future__ import annotations

from herald.errors import Conflict, HeraldError, ValidationFailed


class OutboundRefused(HeraldError):
    """Base class of every refusal raised by `herald.messaging.outbound`."""

    status_code = 422
    code = "outbound_refused"
    title = "Message refused"

    def __init__(self, detail: str, *, field: str) -> None:
        super().__init__(detail, errors=[{"field": field, "message": detail}])
        self.field = field


class ContactOptedOut(OutboundRefused, Conflict):
    status_code = 409
    code = "contact_opted_out"
    title = "Contact opted out"


class WindowClosed(OutboundRefused):
    code = "window_closed"
    title = "Customer service window closed"


class TemplateNotFound(OutboundRefused):
    code = "template_not_found"
    title = "Template not found"


class TemplateNotApproved(OutboundRefused):
    code = "template_not_approved"
    title = "Template not approved"


class TemplateParameterMismatch(OutboundRefused, ValidationFailed):
    code = "template_parameter_mismatch"
    title = "Template parameters do not match"


class ContactNotFound(OutboundRefused):
    code = "contact_not_found"
    title = "Contact not found"


class IdempotencyKeyReused(HeraldError):
    status_code = 422
    code = "idempotency_key_reused"
    title = "Idempotency key reused"


class InvalidIdempotencyKey(HeraldError):
    status_code = 400
    code = "invalid_idempotency_key"
    title = "Invalid Idempotency-Key"
