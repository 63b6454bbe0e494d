"""Template sync from the Cloud API and the parameter shape sends are validated against.

Meta returns each template's components verbatim (HEADER, BODY, FOOTER, BUTTONS); the number
and names of variables a send must fill are derived from their text: positional templates use
`{{1}}`, `{{2}}`, named ones `{{first_name}}`. URL buttons with a variable need one parameter
each, copy-code buttons need the code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from herald.clock import utcnow
from herald.models import MessageTemplate, TemplateStatus

if TYPE_CHECKING:
    from herald.whatsapp import CloudAPIClient

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
MEDIA_HEADER_FORMATS = frozenset({"IMAGE", "VIDEO", "DOCUMENT"})
# Meta's categories, stored upper-case on the template, lower-case on the message.
TEMPLATE_CATEGORIES = frozenset({"MARKETING", "UTILITY", "AUTHENTICATION"})


@dataclass(frozen=True)
class TemplateShape:
    """What a send must fill: variable names per component and buttons that take a value."""

    parameter_format: str  # POSITIONAL | NAMED
    header_variables: tuple[str, ...] = ()
    header_media: str | None = None  # IMAGE | VIDEO | DOCUMENT when the header is media
    body_variables: tuple[str, ...] = ()
    # button index -> sub_type ("url" or "copy_code") for buttons that need a parameter
    button_parameters: dict[int, str] = field(default_factory=dict)


def variables_in(text: str) -> tuple[str, ...]:
    """Distinct placeholder names in order of first use (`{{1}}` gives "1")."""
    return tuple(dict.fromkeys(PLACEHOLDER.findall(text or "")))


def template_shape(components: list[dict[str, Any]], parameter_format: str = "POSITIONAL") -> TemplateShape:
    """Derive the parameters a send must give from the template's components."""
    header: tuple[str, ...] = ()
    header_media: str | None = None
    body: tuple[str, ...] = ()
    buttons: dict[int, str] = {}
    for component in components:
        kind = str(component.get("type", "")).upper()
        if kind == "HEADER":
            header_format = str(component.get("format", "TEXT")).upper()
            if header_format in MEDIA_HEADER_FORMATS:
                header_media = header_format
            else:
                header = variables_in(str(component.get("text") or ""))
        elif kind == "BODY":
            body = variables_in(str(component.get("text") or ""))
        elif kind == "BUTTONS":
            for index, button in enumerate(component.get("buttons") or ()):
                button_type = str(button.get("type", "")).upper()
                if button_type == "URL" and variables_in(str(button.get("url") or "")):
                    buttons[index] = "url"
                elif button_type == "COPY_CODE":
                    buttons[index] = "copy_code"
    return TemplateShape(
        parameter_format=(parameter_format or "POSITIONAL").upper(),
        header_variables=header,
        header_media=header_media,
        body_variables=body,
        button_parameters=buttons,
    )


@dataclass
class SyncReport:
    """What a sync changed."""

    fetched: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "fetched": self.fetched,
            "created": self.created,
            "updated": self.updated,
            "deleted": self.deleted,
        }


async def sync_templates(session: AsyncSession, client: CloudAPIClient) -> SyncReport:
    """Fetch every template of the WABA and upsert it by (name, language).

    Templates we hold that Meta no longer lists are marked DELETED (kept, because messages refer
    to them by name). Runs in the caller's transaction.
    """
    remote = await client.list_templates()
    now = utcnow()
    report = SyncReport(fetched=len(remote))
    table = MessageTemplate.__table__  # type: ignore[attr-defined]
    stored = await session.execute(select(table.c.name, table.c.language, table.c.status))
    existing = {(row.name, row.language): row.status for row in stored.all()}
    seen: set[tuple[str, str]] = set()
    rows = []
    for template in remote:
        key = (template.name, template.language)
        if key in seen:
            continue
        seen.add(key)
        status = template.status.upper()
        if status not in TemplateStatus.__members__:
            # A status Meta added after this code was written: treat it as not sendable.
            status = TemplateStatus.DISABLED.value
        extra = template.model_extra or {}
        rows.append(
            {
                "name": template.name,
                "language": template.language,
                "meta_template_id": template.id,
                "category": (template.category or "MARKETING").upper(),
                "status": status,
                "components": template.components,
                "parameter_format": (template.parameter_format or "POSITIONAL").upper(),
                "quality_score": _quality(extra.get("quality_score")),
                "rejected_reason": extra.get("rejected_reason"),
                "synced_at": now,
                "updated_at": now,
            }
        )
        if key in existing:
            report.updated += 1
        else:
            report.created += 1
    if rows:
        statement = insert(MessageTemplate).values(rows)
        excluded = statement.excluded
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["name", "language"],
                set_={
                    column: excluded[column]
                    for column in (
                        "meta_template_id",
                        "category",
                        "status",
                        "components",
                        "parameter_format",
                        "quality_score",
                        "rejected_reason",
                        "synced_at",
                        "updated_at",
                    )
                },
            )
        )
    missing = [
        key for key, status in existing.items() if key not in seen and status != TemplateStatus.DELETED
    ]
    for name, language in missing:
        await session.execute(
            update(MessageTemplate)
            .where(MessageTemplate.name == name, MessageTemplate.language == language)  # type: ignore[arg-type]
            .values(status=TemplateStatus.DELETED.value, synced_at=now, updated_at=now)
        )
    report.deleted = len(missing)
    return report


def _quality(value: object) -> str | None:
    if isinstance(value, dict):
        score = value.get("score")
        return str(score)[:16] if score else None
    return str(value)[:16] if value else None


async def find_template(session: AsyncSession, name: str, language: str) -> MessageTemplate | None:
    """The synced template row for (name, language), or None."""
    result = await session.execute(
        select(MessageTemplate).where(MessageTemplate.name == name, MessageTemplate.language == language)  # type: ignore[arg-type]
    )
    return result.scalar_one_or_none()
