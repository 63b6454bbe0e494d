"""In-memory state of the simulated Cloud API: templates, media, windows, rate limits, records."""

from __future__ import annotations

import base64
import itertools
import os
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from services.simulator.config import SimulatorSettings

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


class TokenBucket:
    """Classic token bucket; O(1) per call, refilled lazily from the elapsed time."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def take(self, now: float) -> bool:
        tokens = self.tokens + (now - self.updated) * self.rate
        self.tokens = tokens if tokens < self.capacity else self.capacity
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class TemplateRecord:
    id: str
    name: str
    language: str
    category: str
    status: str
    components: list[dict[str, Any]]
    parameter_format: str = "POSITIONAL"
    rejected_reason: str = "NONE"
    # Variables per component, derived once so sends only compare counts.
    header_variables: tuple[str, ...] = ()
    body_variables: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for component in self.components:
            kind = str(component.get("type", "")).upper()
            text = str(component.get("text") or "")
            variables = tuple(dict.fromkeys(PLACEHOLDER.findall(text)))
            if kind == "HEADER":
                self.header_variables = variables
            elif kind == "BODY":
                self.body_variables = variables

    def to_graph(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "parameter_format": self.parameter_format,
            "components": self.components,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
            **({"rejected_reason": self.rejected_reason} if self.status == "REJECTED" else {}),
        }


@dataclass(slots=True)
class MediaRecord:
    id: str
    content: bytes
    mime_type: str
    sha256: str
    filename: str


@dataclass(slots=True)
class Stats:
    accepted: int = 0
    rejected_by_code: Counter[int] = field(default_factory=Counter)
    marked_read: int = 0
    inbound: int = 0
    duplicates: int = 0  # accepts whose biz_opaque_callback_data was already accepted
    webhook_posts_ok: int = 0
    webhook_posts_failed: int = 0
    webhook_retries: int = 0
    webhook_dropped: int = 0  # gave up after the last retry, or over the pending cap
    statuses_delivered: int = 0  # status objects inside successful POSTs
    statuses_duplicated: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": sum(self.rejected_by_code.values()),
            "rejected_by_code": {str(k): v for k, v in sorted(self.rejected_by_code.items())},
            "marked_read": self.marked_read,
            "inbound": self.inbound,
            "duplicates": self.duplicates,
            "webhooks": {
                "ok": self.webhook_posts_ok,
                "failed": self.webhook_posts_failed,
                "retried": self.webhook_retries,
                "dropped": self.webhook_dropped,
                "statuses_delivered": self.statuses_delivered,
                "statuses_duplicated": self.statuses_duplicated,
            },
        }


def seed_templates() -> list[TemplateRecord]:
    """A few realistic templates in every review state the send path distinguishes."""
    return [
        TemplateRecord(
            id="1000000000000001",
            name="hello_world",
            language="en_US",
            category="UTILITY",
            status="APPROVED",
            components=[
                {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
                {
                    "type": "BODY",
                    "text": "Welcome and congratulations!! This message demonstrates your ability to send "
                    "a WhatsApp message notification from the Cloud API, hosted by Meta. Thank you "
                    "for taking the time to test with us.",
                },
                {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"},
            ],
        ),
        TemplateRecord(
            id="1000000000000002",
            name="birthday_greeting",
            language="en_US",
            category="MARKETING",
            status="APPROVED",
            components=[
                {
                    "type": "BODY",
                    "text": "Happy birthday, {{1}}! 🎂 Enjoy 20% off anything today.",
                    "example": {"body_text": [["Maria"]]},
                },
                {"type": "FOOTER", "text": "Reply STOP to opt out"},
            ],
        ),
        TemplateRecord(
            id="1000000000000003",
            name="birthday_greeting",
            language="es",
            category="MARKETING",
            status="APPROVED",
            components=[
                {
                    "type": "BODY",
                    "text": "¡Feliz cumpleaños, {{1}}! 🎂 Disfruta un 20% de descuento hoy.",
                    "example": {"body_text": [["María"]]},
                },
                {"type": "FOOTER", "text": "Responde STOP para no recibir más mensajes"},
            ],
        ),
        TemplateRecord(
            id="1000000000000004",
            name="order_update",
            language="en_US",
            category="UTILITY",
            status="APPROVED",
            components=[
                {
                    "type": "BODY",
                    "text": "Hi {{1}}, your order {{2}} is on its way.",
                    "example": {"body_text": [["John", "#42"]]},
                },
                {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Track"}]},
            ],
        ),
        TemplateRecord(
            id="1000000000000005",
            name="appointment_reminder",
            language="en_US",
            category="UTILITY",
            status="APPROVED",
            parameter_format="NAMED",
            components=[
                {
                    "type": "BODY",
                    "text": "Hi {{first_name}}, see you on {{date}}.",
                    "example": {
                        "body_text_named_params": [
                            {"param_name": "first_name", "example": "Ana"},
                            {"param_name": "date", "example": "May 4"},
                        ]
                    },
                }
            ],
        ),
        TemplateRecord(
            id="1000000000000006",
            name="spring_sale",
            language="en_US",
            category="MARKETING",
            status="PAUSED",
            components=[{"type": "BODY", "text": "Spring sale! {{1}} off everything."}],
        ),
        TemplateRecord(
            id="1000000000000007",
            name="crypto_promo",
            language="en_US",
            category="MARKETING",
            status="REJECTED",
            rejected_reason="PROMOTIONAL",
            components=[{"type": "BODY", "text": "Double your coins now!"}],
        ),
        TemplateRecord(
            id="1000000000000008",
            name="legacy_offer",
            language="en_US",
            category="MARKETING",
            status="DISABLED",
            components=[{"type": "BODY", "text": "Our old offer, {{1}}."}],
        ),
    ]


class SimState:
    """Everything the simulator remembers; reset by ``POST /_sim/reset``."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self.startup_settings = settings
        self.settings = settings.model_copy()
        self.reset()

    def reset(self, *, keep_settings: bool = False) -> None:
        if not keep_settings:
            self.settings = self.startup_settings.model_copy()
        self.rng = random.Random(self.settings.seed)
        self.templates: dict[tuple[str, str], TemplateRecord] = {}
        for template in seed_templates():
            self.add_template(template)
        self.template_ids = itertools.count(2_000_000_000_000_001)
        self.media: dict[str, MediaRecord] = {}
        self.media_ids = itertools.count(3_000_000_000_000_001)
        # (phone_number_id, wa_id) -> monotonic time of the user's last inbound message
        self.windows: dict[tuple[str, str], float] = {}
        self.throughput: dict[str, TokenBucket] = {}
        self.pairs: dict[tuple[str, str], TokenBucket] = {}
        self.messages: list[dict[str, Any]] = []
        self.callback_data_seen: set[str] = set()
        self.stats = Stats()
        # A per-run random prefix keeps ids unique across restarts; a counter keeps them cheap.
        self._wamid_prefix = base64.b64encode(os.urandom(6)).decode().rstrip("=").replace("/", "_")
        self._wamid_counter = itertools.count(1)

    # --- ids ---------------------------------------------------------------------------------

    def next_wamid(self, wa_id: str) -> str:
        # Shaped like Meta's: "wamid." + base64 of a blob embedding the recipient (<= 128 chars).
        serial = f"{self._wamid_prefix}{next(self._wamid_counter):012X}"
        blob = f"\x18\x0b{wa_id[:15]}\x15\x02\x00\x11\x18\x12{serial}"
        return "wamid." + base64.b64encode(blob.encode()).decode()

    # --- templates ---------------------------------------------------------------------------

    def add_template(self, template: TemplateRecord) -> None:
        self.templates[(template.name, template.language)] = template

    def template_by_id(self, template_id: str) -> TemplateRecord | None:
        return next((t for t in self.templates.values() if t.id == template_id), None)

    # --- limits ------------------------------------------------------------------------------

    def take_throughput(self, phone_number_id: str, now: float) -> bool:
        bucket = self.throughput.get(phone_number_id)
        if bucket is None:
            s = self.settings
            bucket = TokenBucket(s.throughput_per_second, s.effective_throughput_burst, now)
            self.throughput[phone_number_id] = bucket
        return bucket.take(now)

    def take_pair(self, phone_number_id: str, wa_id: str, now: float) -> bool:
        key = (phone_number_id, wa_id)
        bucket = self.pairs.get(key)
        if bucket is None:
            s = self.settings
            bucket = TokenBucket(1.0 / s.pair_limit_period_seconds, float(s.pair_limit_burst), now)
            self.pairs[key] = bucket
        return bucket.take(now)

    def window_open(self, phone_number_id: str, wa_id: str, now: float) -> bool:
        opened = self.windows.get((phone_number_id, wa_id))
        return opened is not None and now - opened < self.settings.window_seconds

    def open_window(self, phone_number_id: str, wa_id: str) -> None:
        self.windows[(phone_number_id, wa_id)] = time.monotonic()

    def limits_changed(self) -> None:
        """Rebuild buckets lazily after their configuration changed."""
        self.throughput.clear()
        self.pairs.clear()
