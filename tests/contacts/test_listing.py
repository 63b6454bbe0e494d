from __future__ import annotations

import httpx

from tests.fixtures.auth import TestUser


async def _create(api: httpx.AsyncClient, user: TestUser, **fields: object) -> dict:
    response = await api.post("/api/v1/contacts", json=fields, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def _phones(api: httpx.AsyncClient, user: TestUser, params: dict) -> set[str]:
    response = await api.get("/api/v1/contacts", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return {contact["phone"] for contact in response.json()["data"]}


async def test_filter_by_tag(api: httpx.AsyncClient, operator: TestUser) -> None:
    await _create(api, operator, phone="+14155550101", tags=["vip", "beta"])
    await _create(api, operator, phone="+14155550102", tags=["beta"])
    assert await _phones(api, operator, {"tag": "vip"}) == {"+14155550101"}
    assert await _phones(api, operator, {"tag": ["vip", "beta"]}) == {"+14155550101"}


async def test_text_search_matches_name_or_phone_digits(api: httpx.AsyncClient, operator: TestUser) -> None:
    await _create(api, operator, phone="+14155550101", name="Ada Lovelace")
    await _create(api, operator, phone="+14155550102", name="Grace Hopper")
    assert await _phones(api, operator, {"q": "lovel"}) == {"+14155550101"}
    assert await _phones(api, operator, {"q": "555-0102"}) == {"+14155550102"}
    assert await _phones(api, operator, {"q": "100%"}) == set()


async def test_filter_by_opt_in_status(api: httpx.AsyncClient, operator: TestUser) -> None:
    await _create(api, operator, phone="+14155550101", opt_in_status="opted_in", opt_in_source="form")
    await _create(api, operator, phone="+14155550102")
    assert await _phones(api, operator, {"opt_in_status": "opted_in"}) == {"+14155550101"}


async def test_filter_by_birthday_month(api: httpx.AsyncClient, operator: TestUser) -> None:
    await _create(api, operator, phone="+14155550101", birthday="03-14")
    await _create(api, operator, phone="+14155550102", birthday="1980-04-14")
    assert await _phones(api, operator, {"birthday_month": 4}) == {"+14155550102"}


async def test_filter_by_attribute_equality(api: httpx.AsyncClient, operator: TestUser) -> None:
    await _create(api, operator, phone="+14155550101", attributes={"plan": "gold", "seats": 3})
    await _create(api, operator, phone="+14155550102", attributes={"plan": "silver", "seats": 3})
    assert await _phones(api, operator, {"attr.plan": "gold"}) == {"+14155550101"}
    assert await _phones(api, operator, {"attr.seats": "3"}) == {"+14155550101", "+14155550102"}
    assert await _phones(api, operator, {"attr.plan": "gold", "attr.seats": "4"}) == set()


async def test_keyset_pages_cover_every_contact_once_with_total(api: httpx.AsyncClient, operator: TestUser) -> None:
    created = {(await _create(api, operator, phone=f"+1415555{n:04d}"))["phone"] for n in range(7)}
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict = {"limit": 3, "include_total": "true"}
        if cursor:
            params["cursor"] = cursor
        body = (await api.get("/api/v1/contacts", params=params, headers=operator.headers)).json()
        assert body["count"] == 7
        seen.extend(contact["phone"] for contact in body["data"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == 7 and set(seen) == created


async def test_count_is_omitted_unless_asked(api: httpx.AsyncClient, operator: TestUser) -> None:
    await _create(api, operator, phone="+14155550101")
    body = (await api.get("/api/v1/contacts", headers=operator.headers)).json()
    assert body["count"] is None


async def test_malformed_cursor_is_422_naming_cursor(api: httpx.AsyncClient, operator: TestUser) -> None:
    response = await api.get("/api/v1/contacts", params={"cursor": "not-a-cursor"}, headers=operator.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "cursor"


async def test_out_of_range_birthday_month_is_422(api: httpx.AsyncClient, operator: TestUser) -> None:
    response = await api.get("/api/v1/contacts", params={"birthday_month": 13}, headers=operator.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "birthday_month"


async def test_bad_attribute_filter_name_is_422(api: httpx.AsyncClient, operator: TestUser) -> None:
    response = await api.get("/api/v1/contacts", params={"attr.a b": "x"}, headers=operator.headers)
    assert response.status_code == 422
