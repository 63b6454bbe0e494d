"""The Graph API side of the simulator: Meta's error bodies and the /messages send path.

The send path is the benchmark baseline, so it works on the parsed JSON directly (no
pydantic per request), answers pre-shaped bytes, and keeps every limit check O(1).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import orjson

from services.simulator.state import SimState, TemplateRecord
from services.simulator.webhooks import WebhookDispatcher, async_error

Answer = tuple[int, bytes]

# code -> (title, HTTP status, default details, error_subcode). HTTP statuses follow the "old"
# column of Meta's table; throttling codes use the configurable rate_limit_http_status.
ERRORS: dict[int, tuple[str, int, str, int | None]] = {
    100: ("Invalid parameter", 400, "Invalid parameter", None),
    131000: ("Something went wrong", 500, "Something went wrong", None),
    131008: ("Required parameter is missing", 400, "A required parameter is missing", None),
    131009: ("Parameter value is not valid", 400, "A parameter value is not valid", None),
    131016: ("Service unavailable", 503, "A service is temporarily unavailable", None),
    131026: (
        "Message undeliverable",
        400,
        "Unable to deliver message. Reasons can include: the recipient phone number is not a "
        "WhatsApp phone number; the recipient has not accepted the new Terms of Service.",
        None,
    ),
    131047: (
        "Re-engagement message",
        400,
        "Message failed to send because more than 24 hours have passed since the customer last "
        "replied to this number.",
        None,
    ),
    131053: ("Media upload error", 400, "Unable to download the media sent by the business", None),
    130429: (
        "Rate limit hit",
        400,
        "Message failed to send because there were too many messages sent from this phone number "
        "in a short period of time",
        2494055,
    ),
    131056: (
        "(Business Account, Consumer Account) pair rate limit hit",
        400,
        "Message failed to send because there were too many messages sent from this phone number "
        "to the same phone number in a short period of time.",
        2494071,
    ),
    132000: (
        "Number of parameters does not match the expected number of params",
        400,
        "The number of variable parameter values does not match the number of variables in the template",
        None,
    ),
    132001: ("Template name does not exist in the translation", 400, "template name does not exist", None),
    132015: ("Template is Paused", 400, "Template is paused due to low quality so it cannot be sent", None),
    132016: ("Template is Disabled", 400, "Template has been disabled due to low quality", None),
}
THROTTLE_CODES = frozenset({130429, 131056})
MEDIA_TYPES = frozenset({"image", "document", "audio", "video", "sticker"})
SEND_TYPES = MEDIA_TYPES | {"text", "template", "interactive", "reaction", "location", "contacts"}
MAX_TEXT = 4096  # UNCERTAIN which code Meta uses beyond this; answered as 100 here


class GraphError(Exception):
    def __init__(self, code: int, details: str | None = None, http_status: int | None = None) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details
        self.http_status = http_status


def fbtrace_id() -> str:
    return secrets.token_urlsafe(17)[:23]


def error_answer(
    state: SimState, code: int, details: str | None = None, http_status: int | None = None
) -> Answer:
    """Meta's synchronous error body for a code, counted in the stats."""
    title, default_status, default_details, subcode = ERRORS.get(code, ("Unknown error", 400, "", None))
    if http_status is None:
        http_status = state.settings.rate_limit_http_status if code in THROTTLE_CODES else default_status
    error: dict[str, Any] = {
        "message": f"(#{code}) {title}",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details or default_details},
    }
    if subcode is not None:  # deprecated since v16 yet still seen in real answers
        error["error_subcode"] = subcode
    error["fbtrace_id"] = fbtrace_id()
    state.stats.rejected_by_code[code] += 1
    return http_status, orjson.dumps({"error": error})


def auth_error(state: SimState) -> Answer:
    # UNCERTAIN: exact message text of Meta's 190 answer.
    state.stats.rejected_by_code[190] += 1
    body = {
        "error": {
            "message": "Invalid OAuth access token - Cannot parse access token",
            "type": "OAuthException",
            "code": 190,
            "fbtrace_id": fbtrace_id(),
        }
    }
    return 401, orjson.dumps(body)


def object_not_found(state: SimState, object_id: str, method: str = "get") -> Answer:
    details = (
        f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot be loaded "
        "due to missing permissions, or does not support this operation."
    )
    return error_answer(state, 100, details)


def authorized(state: SimState, authorization: str | None) -> bool:
    if not authorization or not authorization.startswith("Bearer "):
        return False
    token = authorization[7:].strip()
    expected = state.settings.access_token
    return bool(token) and (not expected or secrets.compare_digest(token, expected))


async def apply_faults(state: SimState) -> Answer | None:
    """Injected faults, checked before the real work of every Graph API request."""
    settings = state.settings
    if settings.fault_slow_ms:
        await asyncio.sleep(settings.fault_slow_ms / 1000)
    if settings.fault_timeout_count:
        settings.fault_timeout_count -= 1
        await asyncio.sleep(settings.fault_timeout_seconds)
    if settings.fault_429_count:
        settings.fault_429_count -= 1
        return error_answer(state, 130429)
    if settings.fault_5xx_count or (settings.fault_5xx_rate and state.rng.random() < settings.fault_5xx_rate):
        if settings.fault_5xx_count:
            settings.fault_5xx_count -= 1
        return error_answer(state, 131000, http_status=settings.fault_5xx_status)
    return None


def faults_armed(state: SimState) -> bool:
    s = state.settings
    return bool(
        s.fault_slow_ms or s.fault_timeout_count or s.fault_429_count or s.fault_5xx_count or s.fault_5xx_rate
    )


# --- request validation ------------------------------------------------------------------------


def _require(obj: dict[str, Any], key: str, where: str) -> Any:
    value = obj.get(key)
    if value is None or value == "":
        raise GraphError(131008, f"The parameter {where}{key} is required.")
    return value


def _object(parent: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
    value = _require(parent, key, where)
    if not isinstance(value, dict):
        raise GraphError(131009, f"Param {where}{key} must be a JSON object.")
    return value


def _check_media(media: dict[str, Any], kind: str) -> None:
    has_id, has_link = "id" in media, "link" in media
    if has_id == has_link:
        raise GraphError(131009 if has_id else 131008, f"{kind} needs exactly one of 'id' or 'link'.")
    if has_link and not str(media["link"]).startswith(("http://", "https://")):
        raise GraphError(131009, f"Param {kind}['link'] must be a valid URL.")


def _check_interactive(interactive: dict[str, Any]) -> None:
    kind = _require(interactive, "type", "interactive.")
    body = _object(interactive, "body", "interactive.")
    _require(body, "text", "interactive.body.")
    action = _object(interactive, "action", "interactive.")
    if kind == "button":
        buttons = _require(action, "buttons", "interactive.action.")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            raise GraphError(131009, "interactive.action.buttons must hold 1 to 3 buttons.")
        ids = set()
        for button in buttons:
            reply = button.get("reply") if isinstance(button, dict) else None
            if not isinstance(reply, dict) or not reply.get("id") or not reply.get("title"):
                raise GraphError(131008, "Each button needs reply.id and reply.title.")
            if len(str(reply["title"])) > 20 or len(str(reply["id"])) > 256:
                raise GraphError(131009, "Button title is limited to 20 characters, id to 256.")
            ids.add(reply["id"])
        if len(ids) != len(buttons):
            raise GraphError(131009, "Button ids must be unique.")
    elif kind == "list":
        _require(action, "button", "interactive.action.")
        sections = _require(action, "sections", "interactive.action.")
        if not isinstance(sections, list) or not sections:
            raise GraphError(131009, "interactive.action.sections must be a non-empty list.")
        rows = [row for section in sections if isinstance(section, dict) for row in section.get("rows") or ()]
        if not rows or len(rows) > 10:
            raise GraphError(131009, "A list message holds 1 to 10 rows in total.")
        if any(not isinstance(r, dict) or not r.get("id") or not r.get("title") for r in rows):
            raise GraphError(131008, "Each row needs an id and a title.")
    elif kind not in {"cta_url", "product", "product_list", "flow", "location_request_message"}:
        raise GraphError(100, f"Param interactive.type {kind!r} is not supported.")


def _check_content(kind: str, message: dict[str, Any]) -> None:
    if kind == "text":
        text = _object(message, "text")
        body = _require(text, "body", "text.")
        if len(str(body)) > MAX_TEXT:
            raise GraphError(100, f"Param text['body'] must be at most {MAX_TEXT} characters long.")
    elif kind in MEDIA_TYPES:
        _check_media(_object(message, kind), kind)
    elif kind == "interactive":
        _check_interactive(_object(message, "interactive"))
    elif kind == "reaction":
        reaction = _object(message, "reaction")
        _require(reaction, "message_id", "reaction.")
        if "emoji" not in reaction:
            raise GraphError(131008, "The parameter reaction.emoji is required.")
    elif kind != "template":
        _object(message, kind)


def _parameter_count(components: object, kind: str) -> tuple[int, list[str]]:
    count, names = 0, []
    if isinstance(components, list):
        for component in components:
            if isinstance(component, dict) and component.get("type") == kind:
                for parameter in component.get("parameters") or ():
                    count += 1
                    if isinstance(parameter, dict) and parameter.get("parameter_name"):
                        names.append(str(parameter["parameter_name"]))
    return count, names


def _check_template(state: SimState, message: dict[str, Any]) -> TemplateRecord:
    template = _object(message, "template")
    name = _require(template, "name", "template.")
    language = _object(template, "language", "template.")
    code = _require(language, "code", "template.language.")
    record = state.templates.get((name, code))
    if record is None:
        raise GraphError(132001, f"template name ({name}) does not exist in {code}")
    if record.status == "PAUSED":
        raise GraphError(132015, f"Template {name} is paused.")
    if record.status == "DISABLED":
        raise GraphError(132016, f"Template {name} is disabled.")
    if record.status != "APPROVED":
        raise GraphError(132001, f"template name ({name}) does not exist in {code}")
    components = template.get("components")
    for kind, expected in (("header", record.header_variables), ("body", record.body_variables)):
        count, names = _parameter_count(components, kind)
        if count != len(expected):
            raise GraphError(
                132000, f"{kind} has {len(expected)} variables but {count} parameters were given"
            )
        if record.parameter_format == "NAMED" and sorted(names) != sorted(expected):
            raise GraphError(132000, f"{kind} expects named parameters {list(expected)}, got {names}")
    return record


# --- the send path ---------------------------------------------------------------------------


def handle_messages(
    state: SimState,
    dispatcher: WebhookDispatcher,
    phone_number_id: str,
    authorization: str | None,
    raw: bytes,
) -> Answer:
    """``POST /{version}/{phone_number_id}/messages``: send, mark as read, typing indicator."""
    if not authorized(state, authorization):
        return auth_error(state)
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return error_answer(state, 100, "The request body is not valid JSON.")
    if not isinstance(message, dict):
        return error_answer(state, 100, "The request body must be a JSON object.")
    try:
        if message.get("messaging_product") != "whatsapp":
            raise GraphError(100, "The parameter messaging_product is required and must be 'whatsapp'.")
        if message.get("status") == "read":
            return _mark_read(state, phone_number_id, message)
        return _send(state, dispatcher, phone_number_id, message)
    except GraphError as exc:
        return error_answer(state, exc.code, exc.details, exc.http_status)


def _mark_read(state: SimState, phone_number_id: str, message: dict[str, Any]) -> Answer:
    message_id = _require(message, "message_id", "")
    if not str(message_id).startswith("wamid."):
        raise GraphError(131009, "Param message_id must be a valid WhatsApp message id.")
    settings = state.settings
    if settings.limits_enabled and not state.take_throughput(phone_number_id, time.monotonic()):
        raise GraphError(130429)
    state.stats.marked_read += 1
    return 200, b'{"success":true}'


def _send(
    state: SimState, dispatcher: WebhookDispatcher, phone_number_id: str, message: dict[str, Any]
) -> Answer:
    settings = state.settings
    to = _require(message, "to", "")
    if not isinstance(to, str):
        raise GraphError(131009, "Param to must be a string.")
    wa_id = to.lstrip("+").replace(" ", "").replace("-", "")
    if not wa_id.isdigit() or not 7 <= len(wa_id) <= 15:
        raise GraphError(131009, f"Param to ({to}) is not a valid phone number.")
    kind = message.get("type", "text")
    if kind not in SEND_TYPES:
        raise GraphError(100, f"Param type must be one of {sorted(SEND_TYPES)}.")
    _check_content(kind, message)

    now = time.monotonic()
    limits = settings.limits_enabled
    if limits and not state.take_throughput(phone_number_id, now):
        raise GraphError(130429)
    template = _check_template(state, message) if kind == "template" else None
    outside_window = (
        limits
        and settings.window_enforced
        and template is None
        and not state.window_open(phone_number_id, wa_id, now)
    )
    if outside_window and settings.window_error_mode == "sync":
        raise GraphError(131047)
    if limits and settings.pair_limit_enabled and not state.take_pair(phone_number_id, wa_id, now):
        raise GraphError(131056)

    wamid = state.next_wamid(wa_id)
    callback_data = message.get("biz_opaque_callback_data")
    stats = state.stats
    stats.accepted += 1
    if callback_data is not None:
        if callback_data in state.callback_data_seen:
            stats.duplicates += 1
        else:
            state.callback_data_seen.add(callback_data)
    state.messages.append(
        {
            "wamid": wamid,
            "phone_number_id": phone_number_id,
            "to": to,
            "wa_id": wa_id,
            "type": kind,
            "template": {"name": template.name, "language": template.language} if template else None,
            "biz_opaque_callback_data": callback_data,
            "timestamp": time.time(),
            "payload": message if settings.record_payloads else None,
        }
    )

    failure: tuple[int, str | None] | None = None
    if wa_id in settings.not_on_whatsapp:
        failure = (131026, None)
    elif outside_window:
        failure = (131047, None)
    elif kind in MEDIA_TYPES and "id" in message[kind] and str(message[kind]["id"]) not in state.media:
        failure = (131053, f"Media id {message[kind]['id']} was not found.")
    elif settings.status_failure_rate and state.rng.random() < settings.status_failure_rate:
        failure = (settings.status_failure_code, None)
    _schedule_statuses(state, dispatcher, phone_number_id, wamid, wa_id, callback_data, template, failure)

    body: dict[str, Any] = {"id": wamid}
    if template is not None:
        body["message_status"] = "accepted"
    answer = {
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": wa_id}],
        "messages": [body],
    }
    return 200, orjson.dumps(answer)


def _schedule_statuses(
    state: SimState,
    dispatcher: WebhookDispatcher,
    phone_number_id: str,
    wamid: str,
    wa_id: str,
    callback_data: str | None,
    template: TemplateRecord | None,
    failure: tuple[int, str | None] | None,
) -> None:
    settings = state.settings
    if not settings.callback_url:
        return
    now = time.time()

    def status(name: str, delay_ms: float, **extra: Any) -> tuple[float, dict[str, Any]]:
        delay = delay_ms / 1000
        obj: dict[str, Any] = {
            "id": wamid,
            "status": name,
            "timestamp": str(int(now + delay)),
            "recipient_id": wa_id,
        }
        if callback_data is not None:
            obj["biz_opaque_callback_data"] = callback_data
        obj.update(extra)
        return delay, obj

    if failure is not None:
        code, details = failure
        title, _, default_details, _ = ERRORS.get(code, ("Message failed", 400, "", None))
        error = async_error(code, title, details or default_details)
        dispatcher.schedule_statuses(
            phone_number_id, [status("failed", settings.sent_delay_ms, errors=[error])]
        )
        return
    category = template.category.lower() if template else "service"
    pricing = {"billable": True, "pricing_model": "PMP", "category": category, "type": "regular"}
    statuses = [
        status("sent", settings.sent_delay_ms, pricing=pricing),
        status("delivered", settings.delivered_delay_ms, pricing=pricing),
    ]
    if settings.read_rate >= 1.0 or state.rng.random() < settings.read_rate:
        statuses.append(status("read", settings.read_delay_ms))
    dispatcher.schedule_statuses(phone_number_id, statuses)
