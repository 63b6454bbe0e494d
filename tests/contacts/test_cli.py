from __future__ import annotations

from pathlib import Path

import psycopg
from typer.testing import CliRunner


def test_cli_import_then_export(tmp_path: Path, database_url: str) -> None:
    from services.contacts.cli import app

    source = tmp_path / "in.csv"
    source.write_text("phone,name,tags\n+14155550101,Ada,vip\nbad,Bo,\n+14155550102,Cy,\n")
    runner = CliRunner()
    imported = runner.invoke(app, ["import", str(source)])
    assert imported.exit_code == 0, imported.output
    assert '"created": 2' in imported.output and '"failed": 1' in imported.output
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM contacts").fetchone() == (2,)
    target = tmp_path / "out.csv"
    exported = runner.invoke(app, ["export", "--tag", "vip", "--output", str(target)])
    assert exported.exit_code == 0, exported.output
    assert target.read_text().splitlines() == ["phone,name,language,timezone,birthday,tags,opt_in", "+14155550101,Ada,,,,vip,unknown"]


def test_cli_import_of_a_file_without_phone_column_fails(tmp_path: Path) -> None:
    from services.contacts.cli import app

    source = tmp_path / "in.csv"
    source.write_text("name\nAda\n")
    result = CliRunner().invoke(app, ["import", str(source)])
    assert result.exit_code == 1
