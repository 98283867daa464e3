"""Property-based API testing with schemathesis over the node's own OpenAPI spec: whatever it sends, every
route answers with a 4xx naming the problem, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from nodekit import NodeUnderTest, physicians, start_node
from schemathesis.checks import not_a_server_error

pytestmark = pytest.mark.integration


@pytest.fixture
def served(tmp_path: Path) -> Iterator[NodeUnderTest]:
    n = start_node(tmp_path / "node", public_rate_per_second=0, public_rate_burst=0)
    n.keys["holder"] = n.issue(physicians(1)[0]).json()["holder_token"]
    yield n
    n.client.close()
    n.ctx.close()


@pytest.fixture
def api_schema(served: NodeUnderTest) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", served.client.app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_route_answers_5xx(case: Any, served: NodeUnderTest) -> None:
    for role in ("operator", "holder", "public"):
        response = case.call(headers=served.auth(role))
        case.validate_response(response, checks=[not_a_server_error])
        assert 400 <= response.status_code < 500 or response.status_code < 300, response.text
        if response.status_code in (400, 409, 422):
            assert response.json()["detail"], response.text
