"""The node directory setting (``LICLEDGER_NODE_DIRECTORY``) and which node a foreign license is referred to."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.consortium import synthetic_uscc
from node.proofs import issuer_nodes
from node.queries import parse_license_ref
from node.settings import NodeSettings, SettingsError, load_settings, parse_node_directory

BJ_LICENSE = "1.2.156.3005.2.11100000000000000J002.111100001KL3HTYP1H.200211000000000.001.5"


def test_directory_parses_and_refuses_bad_entries() -> None:
    assert parse_node_directory(" 110000=https://bj.example/ , 310000=http://10.0.0.2:8600") == {
        "110000": "https://bj.example",
        "310000": "http://10.0.0.2:8600",
    }
    assert parse_node_directory("") == {}
    for bad in ("999999=https://x", "110000=ftp://x", "110000=https://a,110000=https://b", "110000"):
        with pytest.raises(ValueError):
            parse_node_directory(bad)


def _settings(tmp_path: Path, directory: str) -> NodeSettings:
    return load_settings(
        tmp_path, mode="development", province="310000", authority="上海市卫生健康委员会",
        authority_uscc=synthetic_uscc("310000", 0), node_directory=directory,
    )  # fmt: skip


def test_a_foreign_license_is_referred_to_its_provinces_node(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "110000=https://bj.example,310000=https://sh.example")
    assert issuer_nodes(settings, None, parse_license_ref(BJ_LICENSE)) == {"110000": "https://bj.example"}
    own = BJ_LICENSE.replace("111100001KL3HTYP1H", settings.authority_uscc)
    assert issuer_nodes(settings, None, parse_license_ref(own.rsplit(".", 2)[0])) == {}  # its own province
    with pytest.raises(SettingsError):
        _settings(tmp_path, "110000=not a url")
