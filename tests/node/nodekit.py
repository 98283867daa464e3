"""Helpers for the provincial node tests: real node directories, real databases, synthetic documents."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient

from core import canonical, synth
from node.apikeys import create_key
from node.cli import cli
from node.context import NodeContext, open_node
from node.main import create_app
from node.settings import load_settings

KEK = "00112233445566778899aabbccddeeff"
PROVINCE = "440000"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def init_node(directory: Path, *, database_url: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run ``licledger node init --development`` for Guangdong; returns the operator key it printed."""
    args = ["node", "init", "--dir", str(directory), "--province", PROVINCE, "--development"]
    if database_url:
        args += ["--database-url", database_url]
    result = CliRunner().invoke(cli, args, env={"LICLEDGER_KEK": KEK, **(env or {})}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    keys = [line for line in result.stdout.splitlines() if line.startswith("llk_")]
    assert len(keys) == 1, result.stdout
    return keys[0]


def open_dir(directory: Path, **overrides: Any) -> NodeContext:
    os.environ["LICLEDGER_KEK"] = KEK
    return open_node(load_settings(directory, **overrides))


@dataclass
class NodeUnderTest:
    """A node directory, its context, a TestClient and a bearer header per role."""

    dir: Path
    ctx: NodeContext
    client: TestClient
    keys: dict[str, str]
    institution_uscc: str

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"} if role in self.keys else {}

    def issue(self, doc: dict[str, Any], role: str = "operator") -> Any:
        return self.client.post("/v1/licenses", content=canonical.encode(doc), headers=self.auth(role))

    def count(self, table: str) -> int:
        with self.ctx.engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def start_node(directory: Path, *, database_url: str | None = None, **overrides: Any) -> NodeUnderTest:
    operator = init_node(directory, database_url=database_url)
    ctx = open_dir(directory, **overrides)
    institution = physicians(1)[0]["practice"]["primary_institution"]["uscc"]
    keys = {"operator": operator}
    with ctx.sessions() as session, session.begin():
        for role in ("agency", "auditor"):
            keys[role] = create_key(session, ctx.secrets, role=role, now_ms=ctx.clock())[0]
        keys["institution"] = create_key(
            session, ctx.secrets, role="institution", institution_uscc=institution, now_ms=ctx.clock()
        )[0]
        keys["other_institution"] = create_key(
            session,
            ctx.secrets,
            role="institution",
            institution_uscc="12440303344752713B",
            now_ms=ctx.clock(),
        )[0]
    client = TestClient(create_app(ctx), raise_server_exceptions=False)
    return NodeUnderTest(directory, ctx, client, keys, institution)


def physicians(count: int, *, seed: int = 11, start: int = 0) -> list[dict[str, Any]]:
    return list(synth.generate("physician", count, PROVINCE, seed, start=start))


def nurses(count: int, *, seed: int = 11, start: int = 0) -> list[dict[str, Any]]:
    return list(synth.generate("nurse", count, PROVINCE, seed, start=start))


def institutions(count: int, *, seed: int = 11) -> list[dict[str, Any]]:
    return list(synth.generate("institution", count, PROVINCE, seed))


@contextlib.contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database ``licledger_test_<random>`` (dropped afterwards); yields its URL."""
    name = f"licledger_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
