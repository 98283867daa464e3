"""node.sealworkers: the sealing workers of ``node serve --seal-workers N`` follow the node's signing key.

The key is switched here the way ``licledger node rotate-key submit`` switches it (the pending key file renamed
over ``province-key.enc``, node.keyrotation.switch_key) without a ledger; tests/sync/test_seal_workers_rotation_live.py
does the whole rotation against a real network and a real ``node serve``. Worker processes are real (spawned).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from nodekit import NodeUnderTest, nurses, physicians

from core import canonical
from core.keystore import encrypt_private_key
from core.sm2 import PrivateKey
from network.keyfile import install_key_file
from node import records, sealworkers
from node.access import Principal
from node.context import PENDING_KEY_FILE
from node.errors import RotationPendingError
from node.sealworkers import SealingWorkers

URL = "/v1/licenses/batch"


@pytest.fixture
def workers(node: NodeUnderTest) -> Iterator[SealingWorkers]:
    w = SealingWorkers(node.ctx, 1)  # no watcher thread: the tests call refresh() themselves
    sealworkers.share(w)
    yield w
    sealworkers.share(None)
    w.close()


def _batch(node: NodeUnderTest, docs: list[dict[str, Any]]) -> Any:
    return node.client.post(URL, content=canonical.encode({"documents": docs}), headers=node.auth("operator"))


def _key_ids(response: Any) -> set[str]:
    assert response.status_code == 201, response.text
    return {x["seal_key_id"] for x in response.json()["licenses"]}


def _switch_key(node: NodeUnderTest) -> PrivateKey:
    """What ``rotate-key submit`` does to the node directory: the pending key renamed over the key file."""
    new = PrivateKey.generate()
    pending = node.dir / PENDING_KEY_FILE
    install_key_file(pending, encrypt_private_key(new, node.ctx.settings.kek_bytes))
    os.replace(pending, node.ctx.settings.key_file)
    return new


def _gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


def test_pool_follows_a_switched_key_and_the_old_pool_drains_before_it_shuts_down(
    node: NodeUnderTest, workers: SealingWorkers
) -> None:
    old_key = node.ctx.signing_key.key_id
    assert workers.refresh() and not workers.refresh()  # the first pool; then nothing to do
    first = workers.status()
    assert (first["key_id"], len(first["pids"]), first["pools_started"]) == (old_key, 1, 1)
    assert _key_ids(_batch(node, physicians(3, seed=60))) == {old_key}
    assert (workers.batches_by_workers, workers.batches_in_thread) == (1, 0)

    with workers.lease(node.ctx) as in_flight:  # a request that got the old pool and has not sealed yet
        assert in_flight is not None and in_flight.worker_pids() == first["pids"]
        new_key = _switch_key(node).key_id
        # the node's key changed, the pool's not yet: a batch is sealed in the request's thread, with the new key
        assert _key_ids(_batch(node, physicians(3, seed=61))) == {new_key}
        assert (workers.batches_by_workers, workers.batches_in_thread) == (2, 1)
        assert workers.refresh()  # the watcher's look: a new pool holding the new key
        second = workers.status()
        assert (second["key_id"], second["pools_started"], second["draining"]) == (new_key, 2, 1)
        assert not set(second["pids"]) & set(first["pids"])
        assert _key_ids(_batch(node, nurses(3, seed=62))) == {new_key}  # by the new pool
        assert (workers.batches_by_workers, workers.batches_in_thread) == (3, 1)
        # the request in flight finishes on the pool it started on (not shut down under it) and stores once
        docs = physicians(40, seed=63)
        req = records.Request(Principal("operator", "inflight"), "inflight-request", node.ctx.clock())
        with node.ctx.sessions() as session, session.begin():
            stored = records.issue_batch(session, node.ctx, docs, req, pool=in_flight)
        assert [s.base_id for s in stored] == [d["license_id"].rsplit(".", 2)[0] for d in docs]
        assert {s.seal_key_id for s in stored} == {old_key}
        assert not workers.refresh() and not _gone(first["pids"])  # still leased: not shut down
    assert not workers.refresh()  # drained: shut down now
    assert workers.status()["draining"] == 0 and _gone(first["pids"])
    assert workers.status()["pids"] == second["pids"]
    assert node.count("licenses") == node.count("license_versions") == node.count("outbox") == 3 + 3 + 3 + 40
    seen = node.client.get("/v1/sealing", headers=node.auth("operator")).json()
    assert {k: seen[k] for k in ("key_id", "pids", "pools_started", "batches_by_workers")} == {
        "key_id": new_key,
        "pids": second["pids"],
        "pools_started": 2,
        "batches_by_workers": 3,
    }


def test_nothing_is_sealed_while_a_rotation_is_pending_and_the_switch_starts_a_new_pool(
    node: NodeUnderTest, workers: SealingWorkers
) -> None:
    assert workers.refresh()
    with workers.lease(node.ctx) as leased:  # a pool obtained before the request still refuses to seal
        (node.dir / PENDING_KEY_FILE).write_bytes(b"pending")
        assert leased is not None
        with pytest.raises(RotationPendingError):
            leased.map(physicians(1, seed=64), node.ctx.clock())
    refused = _batch(node, physicians(2, seed=65))
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "30", refused.text
    assert node.count("licenses") == 0
    assert (workers.batches_by_workers, workers.batches_in_thread) == (1, 0)  # the lease above, nothing since
    assert not workers.refresh()  # no new pool while pending
    new_key = _switch_key(node).key_id  # the switch removes the pending file
    assert workers.refresh() and workers.status()["key_id"] == new_key
    assert _key_ids(_batch(node, physicians(2, seed=66))) == {new_key}
    assert (workers.batches_by_workers, workers.batches_in_thread) == (2, 0)


def test_a_pool_whose_workers_cannot_load_the_key_is_not_adopted(
    node: NodeUnderTest, workers: SealingWorkers, caplog: pytest.LogCaptureFixture
) -> None:
    """The key file replaced by one the node cannot decrypt: the node keeps its key (network.keyfile), a worker
    loading the file fails, the pool is shut down and batches are sealed in the request's thread until the
    file is usable again."""
    key = node.ctx.signing_key
    blob = node.ctx.settings.key_file.read_bytes()
    install_key_file(node.ctx.settings.key_file, encrypt_private_key(PrivateKey.generate(), bytes(16)))
    with caplog.at_level(logging.ERROR, logger="node.sealworkers"):
        assert not workers.refresh()
    assert "did not start" in caplog.text and workers.status()["key_id"] is None
    assert _key_ids(_batch(node, physicians(2, seed=67))) == {key.key_id}
    assert (workers.batches_by_workers, workers.batches_in_thread) == (0, 1)
    install_key_file(node.ctx.settings.key_file, blob)
    assert workers.refresh() and workers.status()["key_id"] == key.key_id


@pytest.mark.parametrize(("role", "status"), [("public", 401), ("agency", 403), ("auditor", 200)])
def test_sealing_state_is_for_operators_and_auditors(node: NodeUnderTest, role: str, status: int) -> None:
    answer = node.client.get("/v1/sealing", headers=node.auth(role))
    assert answer.status_code == status
    if status == 200:
        assert answer.json()["workers"] == 0 and answer.json()["key_id"] is None  # no --seal-workers
