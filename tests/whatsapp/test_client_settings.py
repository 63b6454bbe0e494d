"""The process-wide client is built from Herald settings."""

from __future__ import annotations

from pathlib import Path

from herald.settings import Settings
from herald.whatsapp import CloudAPIClient
from tests.fixtures.simulator import SimulatorHandle


async def test_from_settings_reaches_the_configured_endpoint(
    simulator: SimulatorHandle, tmp_path: Path
) -> None:
    settings = Settings(
        WHATSAPP_API_BASE_URL=simulator.url,
        WHATSAPP_API_VERSION="21.0",
        WHATSAPP_TOKEN=simulator.token,
        PHONE_NUMBER_ID=simulator.phone_number_id,
        BUSINESS_ID=simulator.waba_id,
        WHATSAPP_MAX_CONNECTIONS=4,
        SECRET_KEY="k" * 40,
        HERALD_DATA_DIR=str(tmp_path),
    )
    async with CloudAPIClient.from_settings(settings) as client:
        assert client.base_url == f"{simulator.url}/v21.0"
        result = await client.send_template("16505551234", "hello_world")
    assert simulator.messages()[-1]["wamid"] == result.wamid
