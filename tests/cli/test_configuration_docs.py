"""README's configuration table and .env.example stay in sync with the settings classes."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from herald.settings import Settings
from services.gateway.config import GatewaySettings

REPO_ROOT = Path(__file__).resolve().parents[2]
EXTRA = {"PORT"}  # read by `herald serve` itself


def aliases(settings: type[BaseSettings]) -> dict[str, set[str]]:
    """Field name -> every environment variable that sets it."""
    found: dict[str, set[str]] = {}
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        found[name] = set(alias.choices) if isinstance(alias, AliasChoices) else {str(alias)}  # type: ignore[arg-type]
    return found


def every_variable() -> set[str]:
    return {v for names in (*aliases(Settings).values(), *aliases(GatewaySettings).values()) for v in names} | EXTRA


def readme_variables() -> set[str]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1]
    return {
        name
        for line in section.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])
    }


def env_example_variables() -> set[str]:
    text = (REPO_ROOT / ".env.example").read_text()
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_readme_table_documents_every_setting() -> None:
    documented = readme_variables()
    missing = {field: names for field, names in aliases(Settings).items() if not names & documented}
    assert missing == {}, f"add these to README.md's configuration table: {missing}"


def test_readme_table_lists_no_unknown_variable() -> None:
    assert readme_variables() - every_variable() == set()


def test_env_example_documents_every_setting() -> None:
    documented = env_example_variables()
    missing = {
        field: names
        for field, names in {**aliases(Settings), **aliases(GatewaySettings)}.items()
        if not names & documented
    }
    assert missing == {}, f"add these to .env.example: {missing}"


def test_env_example_lists_no_unknown_variable() -> None:
    assert env_example_variables() - every_variable() == set()
