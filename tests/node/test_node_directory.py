"""The node directory setting (``LICLEDGER_NODE_DIRECTORY``) and which node a foreign license is referred to,
including Xinjiang's and the XPCC's licenses, whose authorities share the division prefix 65."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.codes import LicenseId, make_uscc
from core.consortium import synthetic_uscc
from node.directory import REFRESH_S, RETRY_S, NodeDirectory, announced_urls
from node.ledger import LedgerUnavailableError
from node.proofs import issuer_nodes
from node.queries import LicenseRef, parse_license_ref
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


# --- Xinjiang (650000) and the XPCC (660000) share the division prefix 65 ------------------------------------------

XJ_NODE, XPCC_NODE, BJ_NODE = "https://xj.example", "https://xpcc.example", "https://bj.example"
DIRECTORY = f"110000={BJ_NODE},650000={XJ_NODE},660000={XPCC_NODE}"
XJ_URUMQI = make_uscc("1", "1", "650102", "MB1X0J7A3")  # a Xinjiang authority registered in Ürümqi (650102)
XPCC_SHIHEZI = make_uscc("1", "1", "659001", "MB1P9C5K2")  # an XPCC authority registered in Shihezi (659001)
XJ_SYNTH, XPCC_SYNTH = synthetic_uscc("650000", 0), synthetic_uscc("660000", 0)


class MemberLedger:
    """The ledger's current member records, as ``GetMember`` answers them (only the issuers matter here)."""

    def __init__(self, issuers: dict[str, list[str]] | None, *, down: bool = False) -> None:
        self.issuers = issuers or {}
        self.down = down
        self.asked: list[str] = []

    def query(self, function: str, *args: str) -> dict[str, Any] | None:
        assert function == "GetMember" and args[1] == ""
        self.asked.append(args[0])
        if self.down:
            raise LedgerUnavailableError("no peer answers")
        issuers = self.issuers.get(args[0])
        return None if issuers is None else {"record": {"name": args[0], "issuers": sorted(issuers)}}


def _ledger(**kwargs: Any) -> Any:
    issuers = {"110000": [synthetic_uscc("110000", 0)], "650000": [XJ_SYNTH, XJ_URUMQI]}
    return MemberLedger({**issuers, "660000": [XPCC_SYNTH, XPCC_SHIHEZI]}, **kwargs)


def _node_of(tmp_path: Path, province: str) -> NodeSettings:
    return load_settings(
        tmp_path / province, mode="development", province=province, authority="卫生健康委员会",
        authority_uscc=synthetic_uscc(province, 0), node_directory=DIRECTORY,
    )  # fmt: skip


def _ref(uscc: str) -> LicenseRef:
    return parse_license_ref(str(LicenseId.build(BJ_LICENSE.split(".")[5], uscc, "200211000000000", 1)))


@pytest.mark.parametrize(
    ("at", "issuer_uscc", "referred"),
    [
        # a third province's node: the ledger's member records decide where the division is ambiguous
        ("110000", XPCC_SHIHEZI, {"660000": XPCC_NODE}),
        ("110000", XJ_URUMQI, {"650000": XJ_NODE}),
        ("110000", XPCC_SYNTH, {"660000": XPCC_NODE}),
        ("110000", XJ_SYNTH, {"650000": XJ_NODE}),
        # each other's node
        ("650000", XPCC_SHIHEZI, {"660000": XPCC_NODE}),
        ("650000", XPCC_SYNTH, {"660000": XPCC_NODE}),
        ("660000", XJ_URUMQI, {"650000": XJ_NODE}),
        ("660000", XJ_SYNTH, {"650000": XJ_NODE}),
        # a license of the node's own issuer that it does not hold is not referred to its neighbour
        ("650000", XJ_URUMQI, {}),
        ("650000", XJ_SYNTH, {}),
        ("660000", XPCC_SHIHEZI, {}),
        ("660000", XPCC_SYNTH, {}),
    ],
)
def test_xinjiang_and_xpcc_licenses_are_referred_to_their_own_node(
    tmp_path: Path, at: str, issuer_uscc: str, referred: dict[str, str]
) -> None:
    assert issuer_nodes(_node_of(tmp_path, at), _ledger(), _ref(issuer_uscc)) == referred


def test_an_ambiguous_division_without_the_ledger_is_not_guessed(tmp_path: Path) -> None:
    """Ledger unreachable (or a USCC no member lists): both provinces stay candidates, so a third province's node
    refers to neither (404); a node that is one of the two keeps the other as a hint, never itself."""
    for ledger in (_ledger(down=True), None, MemberLedger({})):
        assert issuer_nodes(_node_of(tmp_path, "110000"), ledger, _ref(XPCC_SHIHEZI)) == {
            "650000": XJ_NODE,
            "660000": XPCC_NODE,
        }
        assert issuer_nodes(_node_of(tmp_path, "650000"), ledger, _ref(XPCC_SHIHEZI)) == {"660000": XPCC_NODE}
    unambiguous = _ledger()
    assert issuer_nodes(_node_of(tmp_path, "110000"), unambiguous, _ref(synthetic_uscc("310000", 0))) == {}
    assert issuer_nodes(_node_of(tmp_path, "650000"), unambiguous, _ref(XPCC_SYNTH)) == {"660000": XPCC_NODE}
    assert unambiguous.asked == []  # one candidate: the ledger is not asked


# --- the ledger's announcements (node.directory) ---------------------------------------------------------------


class NodesLedger:
    """A ledger that answers ``GetNodes`` with ``nodes`` (or is down), counting the questions."""

    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self.nodes = nodes
        self.down = False
        self.asked = 0

    def query(self, function: str, *args: str) -> dict[str, Any]:
        assert function == "GetNodes" and args == ()
        self.asked += 1
        if self.down:
            raise LedgerUnavailableError("no peer answers")
        return {"nodes": self.nodes}


def _record(member: str, url: str, seq: int = 0) -> dict[str, Any]:
    return {"member": member, "url": url, "seq": seq, "timestamp_ms": 1, "tx_id": "00" * 32}


def test_announced_urls_keep_only_provinces_well_formed_urls() -> None:
    answer = {
        "nodes": [
            _record("110000", "https://bj.example"),
            _record("310000", "http://sh.example:8600"),
            _record("440000", ""),  # withdrawn
            _record("national", "https://nhc.example"),  # not a province
            _record("320000", "https://js.example/?x=1"),  # not a node URL
            "junk",
        ]
    }
    assert announced_urls(answer, https_only=False) == {
        "110000": "https://bj.example",
        "310000": "http://sh.example:8600",
    }
    assert announced_urls(answer, https_only=True) == {"110000": "https://bj.example"}
    assert announced_urls(None, https_only=False) == {} and announced_urls({"nodes": 3}, https_only=False) == {}


def test_directory_reads_the_ledger_once_per_refresh_and_configured_entries_win(tmp_path: Path) -> None:
    ledger = NodesLedger([_record("110000", "http://bj.ledger"), _record("440000", "http://gd.ledger")])
    now = [0.0]
    directory = NodeDirectory(_settings(tmp_path, "110000=https://bj.example"), ledger, clock=lambda: now[0])  # type: ignore[arg-type]
    expected = {"110000": "https://bj.example", "440000": "http://gd.ledger"}
    assert directory.current() == expected
    assert directory.current() == expected and ledger.asked == 1
    ledger.nodes = [_record("440000", "http://gd2.ledger", 1)]
    now[0] += REFRESH_S - 1
    assert directory.current()["440000"] == "http://gd.ledger" and ledger.asked == 1
    now[0] += 1
    assert directory.current() == {"110000": "https://bj.example", "440000": "http://gd2.ledger"}
    assert ledger.asked == 2
    ledger.down = True  # the last known announcements stay, and the ledger is asked again only after RETRY_S
    now[0] += REFRESH_S
    assert directory.current()["440000"] == "http://gd2.ledger" and ledger.asked == 3
    now[0] += RETRY_S - 1
    assert directory.current()["440000"] == "http://gd2.ledger" and ledger.asked == 3
    ledger.down = False
    ledger.nodes = []
    now[0] += 1
    assert directory.current() == {"110000": "https://bj.example"} and ledger.asked == 4
    directory.invalidate()
    directory.current()
    assert ledger.asked == 5


def test_directory_outside_development_uses_https_announcements_only(tmp_path: Path) -> None:
    ledger = NodesLedger([_record("110000", "http://bj.ledger"), _record("440000", "https://gd.ledger")])
    settings = _settings(tmp_path, "").model_copy(update={"mode": "production"})
    assert NodeDirectory(settings, ledger).current() == {"440000": "https://gd.ledger"}  # type: ignore[arg-type]
    assert NodeDirectory(settings, None).current() == {}
