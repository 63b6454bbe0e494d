from __future__ import annotations

import csv
import io

import httpx
import psycopg
import pytest

from tests.fixtures.auth import TestUser

IMPORT = "/api/v1/contacts/import"


def _upload(content: bytes, content_type: str = "text/csv") -> dict:
    return {"file": ("contacts.csv", content, content_type)}


def _stored(database_url: str) -> dict[str, tuple]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT phone, name, timezone, birthday_month, birthday_day, birthday_year, tags, attributes, opt_in_status"
            " FROM contacts"
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


async def test_import_stores_good_rows_and_reports_bad_ones(
    api: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    content = (
        b"phone,name,timezone,birthday,tags,opt_in,attr.plan\n"
        b"+14155550101,Ada,Europe/Lisbon,1990-12-10,vip;beta,yes,gold\n"
        b"not-a-phone,Bad,,,,,\n"
        b"+14155550102,Bo,Mars/Base,,,,\n"
        b"(415) 555-0103,Cy,,02-31,a|b,,\n"
        b"4155550104,Di,,02-29,a|b,no,\n"
    )
    response = await api.post(IMPORT, files=_upload(content), headers=operator.headers)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["updated"], report["failed"]) == (2, 0, 3)
    assert {(e["row"], e["field"]) for e in report["errors"]} == {(3, "phone"), (4, "timezone"), (5, "birthday")}
    stored = _stored(database_url)
    assert stored["+14155550101"] == ("Ada", "Europe/Lisbon", 12, 10, 1990, ["vip", "beta"], {"plan": "gold"}, "opted_in")
    assert stored["+14155550104"][5:] == (["a", "b"], {}, "opted_out")
    assert set(stored) == {"+14155550101", "+14155550104"}


async def test_import_upserts_by_phone_and_keeps_unsent_fields(
    api: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    await api.post(
        "/api/v1/contacts",
        json={"phone": "+14155550101", "name": "Ada", "timezone": "Europe/Lisbon", "tags": ["old"], "attributes": {"x": "1"}},
        headers=operator.headers,
    )
    content = b"phone,name,tags,attr.plan\n4155550101,Ada L,new,gold\n+14155550102,Bo,,\n"
    report = (await api.post(IMPORT, files=_upload(content), headers=operator.headers)).json()
    assert (report["created"], report["updated"], report["failed"]) == (1, 1, 0)
    name, timezone, *_, tags, attributes, _status = _stored(database_url)["+14155550101"]
    assert (name, timezone, tags, attributes) == ("Ada L", "Europe/Lisbon", ["old", "new"], {"x": "1", "plan": "gold"})


async def test_repeated_phone_in_one_file_counts_once_as_created(
    api: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    content = b"phone,name\n+14155550101,First\n+1 415 555 0101,Second\n"
    report = (await api.post(IMPORT, files=_upload(content), headers=operator.headers)).json()
    assert (report["created"], report["updated"]) == (1, 1)
    assert _stored(database_url)["+14155550101"][0] == "Second"


async def test_error_list_is_capped_but_failed_count_is_exact(api: httpx.AsyncClient, operator: TestUser) -> None:
    from services.contacts import importer

    content = ("phone\n" + "bad\n" * (importer.MAX_REPORTED_ERRORS + 25)).encode()
    report = (await api.post(IMPORT, files=_upload(content), headers=operator.headers)).json()
    assert report["failed"] == importer.MAX_REPORTED_ERRORS + 25
    assert len(report["errors"]) == importer.MAX_REPORTED_ERRORS
    assert report["errors_truncated"] is True


async def test_import_larger_than_one_chunk(
    api: httpx.AsyncClient, operator: TestUser, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.contacts import importer

    monkeypatch.setattr(importer, "CHUNK_ROWS", 7)
    content = ("phone,name\n" + "".join(f"+1415555{n:04d},N{n}\n" for n in range(30))).encode()
    report = (await api.post(IMPORT, files=_upload(content), headers=operator.headers)).json()
    assert (report["created"], report["failed"]) == (30, 0)
    assert len(_stored(database_url)) == 30


async def test_oversize_upload_is_413_and_stores_nothing(
    operator: TestUser, database_url: str, monkeypatch: pytest.MonkeyPatch, dispose_engines: None
) -> None:
    from herald.settings import get_settings
    from services.contacts.app import create_app

    monkeypatch.setenv("HERALD_MAX_CSV_BYTES", "2048")
    get_settings.cache_clear()
    transport = httpx.ASGITransport(app=create_app())
    content = ("phone\n" + "".join(f"+1415555{n:04d}\n" for n in range(400))).encode()
    async with httpx.AsyncClient(transport=transport, base_url="http://contacts.test") as api:
        response = await api.post(IMPORT, files=_upload(content), headers=operator.headers)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert _stored(database_url) == {}


async def test_oversize_streamed_upload_without_length_is_413(
    operator: TestUser, database_url: str, monkeypatch: pytest.MonkeyPatch, dispose_engines: None
) -> None:
    from herald.settings import get_settings
    from services.contacts.app import create_app

    monkeypatch.setenv("HERALD_MAX_CSV_BYTES", "2048")
    get_settings.cache_clear()
    boundary = "b0undary"
    rows = "".join(f"+1415555{n:04d}\n" for n in range(400))
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.csv\"\r\n"
        f"Content-Type: text/csv\r\n\r\nphone\n{rows}\r\n--{boundary}--\r\n"
    ).encode()

    async def chunks():
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://contacts.test") as api:
        response = await api.post(
            IMPORT,
            content=chunks(),
            headers={**operator.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert response.status_code == 413
    assert _stored(database_url) == {}


async def test_non_multipart_body_is_415(api: httpx.AsyncClient, operator: TestUser) -> None:
    response = await api.post(IMPORT, content=b"phone\n+14155550101\n", headers={**operator.headers, "Content-Type": "text/csv"})
    assert response.status_code == 415


async def test_non_csv_file_type_is_415(api: httpx.AsyncClient, operator: TestUser, database_url: str) -> None:
    response = await api.post(IMPORT, files=_upload(b"phone\n+14155550101\n", "image/png"), headers=operator.headers)
    assert response.status_code == 415
    assert _stored(database_url) == {}


async def test_binary_file_is_422_and_stores_nothing(api: httpx.AsyncClient, operator: TestUser, database_url: str) -> None:
    response = await api.post(IMPORT, files=_upload(b"phone\n+14155550101\n\x00\x01\x02"), headers=operator.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "file"
    assert _stored(database_url) == {}


async def test_undecodable_file_is_422_and_rolls_back_earlier_chunks(
    api: httpx.AsyncClient, operator: TestUser, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.contacts import importer

    monkeypatch.setattr(importer, "CHUNK_ROWS", 2)
    good = "".join(f"+1415555{n:04d}\n" for n in range(5)).encode()
    response = await api.post(IMPORT, files=_upload(b"phone\n" + good + b"\xff\xfe broken\n"), headers=operator.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "bad_encoding"
    assert _stored(database_url) == {}


async def test_missing_phone_column_is_422(api: httpx.AsyncClient, operator: TestUser) -> None:
    response = await api.post(IMPORT, files=_upload(b"name,tags\nAda,vip\n"), headers=operator.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "phone"


async def test_unknown_column_is_422(api: httpx.AsyncClient, operator: TestUser) -> None:
    response = await api.post(IMPORT, files=_upload(b"phone,shoe_size\n+14155550101,9\n"), headers=operator.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "shoe_size"


async def test_empty_file_is_422(api: httpx.AsyncClient, operator: TestUser) -> None:
    response = await api.post(IMPORT, files=_upload(b""), headers=operator.headers)
    assert response.status_code == 422


async def test_row_with_extra_cells_is_reported(api: httpx.AsyncClient, operator: TestUser) -> None:
    report = (await api.post(IMPORT, files=_upload(b"phone,name\n+14155550101,Ada,extra\n"), headers=operator.headers)).json()
    assert report["failed"] == 1
    assert report["errors"][0]["field"] == "row"


async def test_viewer_cannot_import(api: httpx.AsyncClient, viewer: TestUser, database_url: str) -> None:
    response = await api.post(IMPORT, files=_upload(b"phone\n+14155550101\n"), headers=viewer.headers)
    assert response.status_code == 403
    assert _stored(database_url) == {}


async def test_export_has_import_columns_and_imports_back_unchanged(
    api: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    content = (
        b"phone,name,language,timezone,birthday,tags,opt_in,attr.plan,attr.city\n"
        b"+14155550101,=cmd(),en,Europe/Lisbon,1990-12-10,vip;beta,yes,gold,\n"
        b"+14155550102,\"Bo, Jr.\",pt_BR,,02-29,,,silver,Porto\n"
    )
    assert (await api.post(IMPORT, files=_upload(content), headers=operator.headers)).json()["failed"] == 0
    before = _stored(database_url)
    export = await api.get("/api/v1/contacts/export", headers=operator.headers)
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert list(rows[0]) == ["phone", "name", "language", "timezone", "birthday", "tags", "opt_in", "attr.city", "attr.plan"]
    by_phone = {row["phone"]: row for row in rows}
    assert by_phone["+14155550101"]["name"] == "'=cmd()"  # formula guard for spreadsheets
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("DELETE FROM contacts")
    again = await api.post(IMPORT, files=_upload(export.content), headers=operator.headers)
    assert again.json()["created"] == 2
    assert _stored(database_url) == before


async def test_export_applies_list_filters(api: httpx.AsyncClient, operator: TestUser) -> None:
    await api.post("/api/v1/contacts", json={"phone": "+14155550101", "tags": ["vip"]}, headers=operator.headers)
    await api.post("/api/v1/contacts", json={"phone": "+14155550102"}, headers=operator.headers)
    export = await api.get("/api/v1/contacts/export", params={"tag": "vip"}, headers=operator.headers)
    phones = [row["phone"] for row in csv.DictReader(io.StringIO(export.text))]
    assert phones == ["+14155550101"]


def _file_with_bad_rows(count: int) -> tuple[bytes, set[str], set[tuple[int, str]]]:
    """`count` data rows, a few of them bad in one field each; returns the file, the phones of the
    good rows, and the (line, field) of each bad one."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["phone", "name", "timezone", "birthday", "tags", "opt_in", "attr.city"])
    good: set[str] = set()
    bad: set[tuple[int, str]] = set()
    for index in range(count):
        line = index + 2  # the header is line 1
        phone = f"+1212{200 + index // 10_000}{index % 10_000:04d}"
        row = [phone, f"Person {index}", "Europe/Lisbon", "05-17", "vip;batch", "yes", "Porto"]
        if index % 997 == 3:
            row[0] = f"12-{index}"
            bad.add((line, "phone"))
        elif index % 1009 == 5:
            row[2] = "Mars/Olympus"
            bad.add((line, "timezone"))
        elif index % 1013 == 7:
            row[3] = "02-30"
            bad.add((line, "birthday"))
        elif index % 1019 == 11:
            row[5] = "perhaps"
            bad.add((line, "opt_in"))
        else:
            good.add(phone)
        writer.writerow(row)
    return out.getvalue().encode(), good, bad


async def test_large_import_stores_exactly_the_good_rows_and_reports_exactly_the_bad_ones(
    api: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    content, good, bad = _file_with_bad_rows(20_000)
    response = await api.post(IMPORT, files=_upload(content), headers=operator.headers)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["updated"], report["failed"]) == (len(good), 0, len(bad))
    assert {(error["row"], error["field"]) for error in report["errors"]} == bad
    assert not report["errors_truncated"]
    stored = _stored(database_url)
    assert set(stored) == good
    assert stored[min(good)] == ("Person 0", "Europe/Lisbon", 5, 17, None, ["vip", "batch"], {"city": "Porto"}, "opted_in")


async def test_import_stores_tabs_backslashes_quotes_and_newlines_verbatim(
    api: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    name = 'Tab\there, back\\slash, "quoted"\nand a new line'
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(["phone", "name", "tags", "attr.note"])
    csv.writer(out, lineterminator="\n").writerow(["+14155550101", name, 'a"b;c\\d;{e,f}', "\\N\t{}"])
    report = (await api.post(IMPORT, files=_upload(out.getvalue().encode()), headers=operator.headers)).json()
    assert report["failed"] == 0, report
    stored = _stored(database_url)["+14155550101"]
    assert (stored[0], stored[5], stored[6]) == (name, ['a"b', "c\\d", "{e,f}"], {"note": "\\N\t{}"})
