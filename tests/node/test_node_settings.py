"""node.settings: insecure defaults are refused outside development mode; secrets stay out of repr."""

from __future__ import annotations

from pathlib import Path

import pytest
from nodekit import KEK

from node.settings import DEVELOPMENT_KEK, SettingsError, load_settings, render_settings_file

AUTHORITY = {"province": "440000", "authority": "广东省卫生健康委员会", "authority_uscc": "11440000421680613Q"}


def _write(directory: Path, **values: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "node.env").write_text(render_settings_file({**AUTHORITY, **values}), encoding="utf-8")
    return directory


def test_production_needs_kek_and_database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LICLEDGER_KEK")
    d = _write(tmp_path)
    with pytest.raises(SettingsError) as caught:
        load_settings(d)
    assert "LICLEDGER_KEK" in str(caught.value) and "LICLEDGER_DATABASE_URL" in str(caught.value)


def test_production_refuses_the_development_kek_and_an_open_bind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LICLEDGER_KEK", DEVELOPMENT_KEK)
    d = _write(tmp_path, database_url="sqlite:///x.db", host="0.0.0.0")
    with pytest.raises(SettingsError) as caught:
        load_settings(d)
    assert "development KEK" in str(caught.value) and "ALLOW_PUBLIC_BIND" in str(caught.value)
    monkeypatch.setenv("LICLEDGER_KEK", KEK)
    monkeypatch.setenv("LICLEDGER_ALLOW_PUBLIC_BIND", "true")
    assert load_settings(d).host == "0.0.0.0"


def test_production_refuses_the_rate_limit_off(tmp_path: Path) -> None:
    d = _write(tmp_path, database_url="sqlite:///x.db", public_rate_per_second="0")
    with pytest.raises(SettingsError, match="rate limit"):
        load_settings(d)


def test_kek_in_the_settings_file_is_refused(tmp_path: Path) -> None:
    d = _write(tmp_path, database_url="sqlite:///x.db")
    with (d / "node.env").open("a") as f:
        f.write(f"LICLEDGER_KEK={KEK}\n")
    with pytest.raises(SettingsError, match="environment only"):
        load_settings(d)


def test_development_mode_allows_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LICLEDGER_KEK")
    d = _write(tmp_path, mode="development")
    s = load_settings(d)
    assert s.kek_bytes == bytes(16)
    assert s.url == f"sqlite:///{(d / 'node.db').resolve()}"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = _write(tmp_path, database_url="sqlite:///x.db", port="9000")
    monkeypatch.setenv("LICLEDGER_PORT", "9100")
    assert load_settings(d).port == 9100


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"province": "440100"}, "LICLEDGER_PROVINCE"),
        ({"authority_uscc": "11440000421680613A"}, "LICLEDGER_AUTHORITY_USCC"),
        ({"province": "110000"}, "outside province 110000"),
        ({"port": "0"}, "LICLEDGER_PORT"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, values: dict[str, str], message: str) -> None:
    d = _write(tmp_path, database_url="sqlite:///x.db", **values)
    with pytest.raises(SettingsError, match=message):
        load_settings(d)


def test_kek_never_appears_in_repr_or_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = _write(tmp_path, database_url="sqlite:///x.db")
    s = load_settings(d)
    assert KEK not in repr(s) and KEK not in str(s.model_dump())
    monkeypatch.setenv("LICLEDGER_KEK", "not-hex-" + KEK)
    with pytest.raises(SettingsError) as caught:
        load_settings(d)
    assert KEK not in str(caught.value)


def test_the_fabric_ledger_names_what_it_is_missing_and_needs_tls_in_production(tmp_path: Path) -> None:
    nid = "ab" * 32
    d = _write(tmp_path / "a", database_url="sqlite:///x.db", network_id=nid, ledger_backend="fabric")
    with pytest.raises(SettingsError) as caught:
        load_settings(d)
    text = str(caught.value)
    assert all(f"LICLEDGER_FABRIC_{n}" in text for n in ("GATEWAY", "MSP_ID", "MSP_DIR")), text
    fabric = {"fabric_gateway": "peer0.org1:7051", "fabric_msp_id": "Org1MSP", "fabric_msp_dir": str(tmp_path)}
    d = _write(tmp_path / "b", database_url="sqlite:///x.db", network_id=nid, ledger_backend="fabric", **fabric)
    with pytest.raises(SettingsError, match="LICLEDGER_FABRIC_TLS_CA"):
        load_settings(d)
    d = _write(tmp_path / "c", mode="development", network_id=nid, ledger_backend="fabric", **fabric)
    settings = load_settings(d)
    assert settings.has_ledger and settings.fabric_channel == "licledger"
    d = _write(tmp_path / "e", mode="development", ledger_backend="fabric", **{**fabric, "fabric_gateway": "no port"})
    with pytest.raises(SettingsError, match="host:port"):
        load_settings(d)
    assert settings.fabric_gateway_list == ["peer0.org1:7051"]
    several = {**fabric, "fabric_gateway": "peer0.org1:7051, peer1.org1:8051"}
    d = _write(tmp_path / "f", mode="development", network_id=nid, ledger_backend="fabric", **several)
    assert load_settings(d).fabric_gateway_list == ["peer0.org1:7051", "peer1.org1:8051"]
    d = _write(tmp_path / "g", mode="development", ledger_backend="fabric", **{**fabric, "fabric_gateway": "a:1,,b"})
    with pytest.raises(SettingsError, match="not '', 'b'"):
        load_settings(d)
