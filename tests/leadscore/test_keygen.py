"""`leadscore keygen`: the demo's API key and pseudonymisation key, kept in .env."""

import stat

from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.config.settings import Settings


def _values(path):
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_keygen_writes_keeps_and_rotates(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    first = CliRunner().invoke(app, ["keygen", "--env-file", str(env)])
    assert first.exit_code == 0, first.output
    values = _values(env)
    key = values["LEADSCORE_API_KEYS"]
    assert key.startswith("lsk_") and len(key) > 40 and len(values["LEADSCORE_PSEUDONYM_KEY"]) == 64
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert f"export LEADSCORE_API_KEY={key}" in first.output and "Authorization: Bearer" in first.output
    again = CliRunner().invoke(app, ["keygen", "--env-file", str(env)])
    assert again.exit_code == 0 and _values(env) == values  # nothing changes
    rotated = CliRunner().invoke(app, ["keygen", "--env-file", str(env), "--rotate"])
    assert rotated.exit_code == 0
    keys = _values(env)["LEADSCORE_API_KEYS"].split(",")
    assert len(keys) == 2 and keys[1] == key and keys[0] != key
    assert _values(env)["LEADSCORE_PSEUDONYM_KEY"] == values["LEADSCORE_PSEUDONYM_KEY"]
    # The service's settings read the file (the environment, when set, wins over it).
    monkeypatch.delenv("LEADSCORE_API_KEYS")
    monkeypatch.delenv("LEADSCORE_PSEUDONYM_KEY")
    settings = Settings(_env_file=str(env))
    assert settings.keys() == keys
    assert settings.pseudonym_key.get_secret_value() == values["LEADSCORE_PSEUDONYM_KEY"]


def test_serve_refuses_to_start_without_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("LEADSCORE_API_KEYS")
    result = CliRunner().invoke(app, ["serve", "--port", "1"])
    assert result.exit_code == 1 and "LEADSCORE_API_KEYS" in result.output and "keygen" in result.output
