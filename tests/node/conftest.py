"""Fixtures for the provincial node tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from nodekit import KEK, NodeUnderTest, fresh_postgres_database, start_node


@pytest.fixture(autouse=True)
def _kek(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LICLEDGER_KEK", KEK)
    monkeypatch.delenv("LICLEDGER_DIR", raising=False)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeUnderTest]:
    """A development node on an SQLite file, with a key per role (rate limit off)."""
    n = start_node(tmp_path / "node", public_rate_per_second=0, public_rate_burst=0)
    yield n
    n.client.close()
    n.ctx.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (127.0.0.1:5432, user postgres), dropped after."""
    try:
        with fresh_postgres_database() as url:
            yield url
    except psycopg.OperationalError as exc:  # the CI script starts PostgreSQL
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is required for the node tests: {exc}")
