"""`rd-connector config`: every setting with its value and source, every secret masked (settings, each
account's credentials however given, librdkafka passwords), exit 2 on a configuration that cannot load."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.cli import COMMANDS, main
from connector.config import SPECS

SECRETS = {
    "RDC_RD_CLIENT_SECRET": "Zq-default-CLIENT-secret-9a8b7c6d5e4f3a2b1c0d",
    "RDC_RD_REFRESH_TOKEN": "Zq-default-REFRESH-token-1f2e3d4c5b6a79881726",
    "RDC_TOKEN_STORE_KEY": "Zq-token-STORE-key-passphrase-0c1d2e3f4a5b6c7d",
    "RDC_KAFKA__SSL_KEY_PASSWORD": "Zq-ssl-KEY-password-env-77aa88bb99cc00dd",
    "RD_SOUTH_REFRESH": "Zq-south-REFRESH-token-from-env-6655443322110099",
}
IN_FILES = {
    "registry": "Zq-registry-PASSWORD-in-file-13579bdf2468ace0",
    "sasl": "Zq-sasl-PASSWORD-in-kafka-table-abcdef0123456789",
    "north_token": "Zq-north-ACCESS-token-inline-fedcba9876543210",
    "south_secret": "Zq-south-CLIENT-secret-in-secret-file-a1b2c3d4",
}


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(__import__("os").environ):
        if name.startswith("RDC_"):
            monkeypatch.delenv(name)
    secret_file = tmp_path / "south_client_secret"
    secret_file.write_text(IN_FILES["south_secret"] + "\n")
    config = tmp_path / "rdc.toml"
    config.write_text(
        f"""
topics = ["orders", "carts"]
batch_linger_ms = 500
group_id = "from-the-file"
schema_registry_username = "registry-user"
schema_registry_password = "{IN_FILES["registry"]}"

[kafka]
"security.protocol" = "SASL_SSL"
"sasl.password" = "{IN_FILES["sasl"]}"

[accounts.north]
rd_access_token = "{IN_FILES["north_token"]}"
requests_per_minute = 500

[accounts.south]
rd_client_id = "south-app"
rd_client_secret_file = "{secret_file}"
rd_refresh_token_env = "RD_SOUTH_REFRESH"
"""
    )
    monkeypatch.setenv("RDC_KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092")
    monkeypatch.setenv("RDC_GROUP_ID", "from-the-env")  # wins over the file
    monkeypatch.setenv("RDC_RD_CLIENT_ID", "default-app")
    monkeypatch.setenv("COLUMNS", "80")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return config


def rows(output: str) -> dict[str, tuple[str, str]]:
    """name -> (source, value) of the `  NAME  source  value` rows."""
    found = {}
    for line in output.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] in ("default", "file", "env"):
            found[parts[0]] = (parts[1], parts[2])
    return found


def test_config_masks_every_secret_and_shows_sources(configured: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--config", str(configured)]) == 0
    output = capsys.readouterr().out
    for secret in [*SECRETS.values(), *IN_FILES.values()]:
        assert secret not in output
        for part in (secret[:20], secret[-20:]):  # nor a piece of one (a cut or a wrapped line)
            assert part not in output
    shown = rows(output)
    assert {spec.env for spec in SPECS} <= set(shown)
    assert shown["RDC_GROUP_ID"] == ("env", "from-the-env")
    assert shown["RDC_TOPICS"] == ("file", "orders,carts")
    assert shown["RDC_BATCH_LINGER_MS"] == ("file", "500")
    assert shown["RDC_BATCH_MAX_BYTES"] == ("default", "200000")
    assert shown["RDC_RD_CLIENT_SECRET"] == ("env", "***")
    assert shown["RDC_TOKEN_STORE_KEY"] == ("env", "***")
    assert shown["RDC_SCHEMA_REGISTRY_PASSWORD"] == ("file", "***")
    assert shown["RDC_SCHEMA_REGISTRY_USERNAME"] == ("file", "registry-user")
    assert shown["sasl.password"] == ("file", "***")
    assert shown["ssl.key.password"] == ("env", "***")
    assert shown["security.protocol"] == ("file", "SASL_SSL")
    assert "[accounts.north]: static access token, 500 requests/min" in output
    assert "[accounts.south]: refresh flow, 120 requests/min" in output
    assert shown["rd_access_token"] == ("file", "***")
    assert shown["rd_client_secret"][0] == "file" and shown["rd_client_secret"][1].startswith("*** (read from")
    assert f"{configured.parent}/south_client_secret)" in output
    assert shown["rd_refresh_token"] == ("env", "*** (from $RD_SOUTH_REFRESH)")
    assert "default: refresh flow" in output
    # 80 columns, but for a path that is one word longer than its room
    assert all(len(line) <= 80 for line in output.splitlines() if str(configured.parent) not in line)


def test_config_says_what_run_lacks(
    configured: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RDC_KAFKA_BOOTSTRAP_SERVERS")
    assert main(["config", "--config", str(configured)]) == 0
    assert "run would stop: RDC_KAFKA_BOOTSTRAP_SERVERS is not set" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("RDC_BATCH_MAX_BYTES", "lots", "RDC_BATCH_MAX_BYTES='lots' is invalid"),
        ("RDC_RD_BASE_URL", "http://rd.example.com", "plain http to a host that is not loopback"),
        ("RD_SOUTH_REFRESH", "", "the environment variable RD_SOUTH_REFRESH is not set or empty"),
    ],
)
def test_config_that_cannot_load_exits_2_with_the_error(
    configured: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    said: str,
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["config", "--config", str(configured)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert said in captured.err and captured.err.startswith("rd-connector: configuration error: ")
    for secret in [*SECRETS.values(), *IN_FILES.values()]:
        assert secret not in captured.err


def test_config_is_a_registered_command() -> None:
    assert COMMANDS["config"][0] == "connector.commands.show_config"
