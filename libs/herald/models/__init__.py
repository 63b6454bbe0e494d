"""All tables, imported here so metadata is complete for Alembic and tests."""

from herald.models.automations import Automation, AutomationRun, RunStatus, TriggerType
from herald.models.base import metadata
from herald.models.contacts import Contact, OptInStatus
from herald.models.messages import (
    Broadcast,
    Direction,
    IdempotencyKey,
    Message,
    MessageCategory,
    MessageStatus,
    MessageStatusEvent,
    MessageTemplate,
    PhoneNumber,
    TemplateStatus,
)
from herald.models.ops import Analytics, AnalyticsScope, InboxStatus, Log, LogLevel, WebhookEvent
from herald.models.users import ApiKey, Role, User

__all__ = [
    "Analytics",
    "AnalyticsScope",
    "ApiKey",
    "Automation",
    "AutomationRun",
    "Broadcast",
    "Contact",
    "Direction",
    "IdempotencyKey",
    "InboxStatus",
    "Log",
    "LogLevel",
    "Message",
    "MessageCategory",
    "MessageStatus",
    "MessageStatusEvent",
    "MessageTemplate",
    "OptInStatus",
    "PhoneNumber",
    "Role",
    "RunStatus",
    "TemplateStatus",
    "TriggerType",
    "User",
    "WebhookEvent",
    "metadata",
]
