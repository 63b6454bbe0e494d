"""Template management and media endpoints against the simulator."""

from __future__ import annotations

import hashlib

import pytest

from herald.whatsapp import InvalidRequestError
from tests.fixtures.simulator import SimulatorHandle, wait_until, wait_until_async


async def test_list_templates_follows_paging(simulator: SimulatorHandle) -> None:
    expected = {(t["name"], t["language"]) for t in simulator.http.get("/_sim/templates").json()["data"]}
    async with simulator.client() as client:
        templates = await client.list_templates(limit=2)
    assert len(expected) > 4  # so limit=2 really needed several pages
    assert {(t.name, t.language) for t in templates} == expected
    hello = next(t for t in templates if t.name == "hello_world")
    assert hello.status == "APPROVED"
    assert hello.components


async def test_list_templates_filters_by_status(simulator: SimulatorHandle) -> None:
    async with simulator.client() as client:
        paused = await client.list_templates(status="PAUSED")
    assert [t.name for t in paused] == ["spring_sale"]


async def test_create_template_is_reviewed_then_sendable(simulator: SimulatorHandle) -> None:
    components = [{"type": "BODY", "text": "Your code is {{1}}", "example": {"body_text": [["1234"]]}}]
    async with simulator.client() as client:
        created = await client.create_template("login_code", "en_US", "AUTHENTICATION", components)
        assert created["status"] == "PENDING"

        async def approved() -> bool:
            return (await client.list_templates(name="login_code"))[0].status == "APPROVED"

        await wait_until_async(approved)
        result = await client.send_template("16505551234", "login_code", body_parameters=["9876"])
    assert result.wamid


async def test_delete_template(simulator: SimulatorHandle) -> None:
    async with simulator.client() as client:
        assert await client.delete_template("birthday_greeting") is True
        names = {t.name for t in await client.list_templates()}
        with pytest.raises(InvalidRequestError) as caught:
            await client.delete_template("birthday_greeting")
    assert "birthday_greeting" not in names
    assert caught.value.code == 100


async def test_create_template_validates_name(simulator: SimulatorHandle) -> None:
    async with simulator.client() as client:
        with pytest.raises(InvalidRequestError):
            await client.create_template("Bad Name!", "en_US", "UTILITY", [{"type": "BODY", "text": "x"}])


async def test_media_upload_lookup_download_delete(simulator: SimulatorHandle) -> None:
    content = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100
    async with simulator.client() as client:
        media_id = await client.upload_media(content, "image/png", "pic.png")
        info = await client.get_media_url(media_id)
        downloaded = await client.download_media(info.url)
        assert await client.delete_media(media_id) is True
        with pytest.raises(InvalidRequestError) as caught:
            await client.get_media_url(media_id)
    assert (info.id, info.mime_type, info.file_size) == (media_id, "image/png", len(content))
    assert info.sha256 == hashlib.sha256(content).hexdigest()
    assert downloaded == content
    assert caught.value.code == 100


async def test_media_upload_rejects_unsupported_type(simulator: SimulatorHandle) -> None:
    async with simulator.client() as client:
        with pytest.raises(InvalidRequestError):
            await client.upload_media(b"MZ...", "x-executable/exe")


async def test_download_without_token_is_refused(simulator: SimulatorHandle) -> None:
    async with simulator.client() as client:
        info = await client.get_media_url(await client.upload_media(b"abc", "image/jpeg"))
    assert simulator.http.get(info.url).status_code == 401


def test_inbound_image_can_be_fetched(simulator: SimulatorHandle) -> None:
    inbound = simulator.inbound("16505551234", "image", text="my receipt")
    image = inbound["value"]["messages"][0]["image"]
    headers = {"Authorization": f"Bearer {simulator.token}"}
    info = wait_until(
        lambda: simulator.http.get(f"/{simulator.api_version}/{image['id']}", headers=headers).json()
    )
    assert info["sha256"] == image["sha256"]
    assert image["caption"] == "my receipt"
