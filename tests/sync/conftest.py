"""Fixtures for the anchoring tests: the network and node test kits are shared with tests/network and tests/node."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parent.parent
for sub in ("network", "node"):
    if str(_TESTS / sub) not in sys.path:
        sys.path.insert(0, str(_TESTS / sub))


@pytest.fixture(autouse=True)
def _kek(monkeypatch: pytest.MonkeyPatch) -> None:
    from anchorkit import KEK

    monkeypatch.setenv("LICLEDGER_KEK", KEK)
    monkeypatch.delenv("LICLEDGER_DIR", raising=False)
