"""SingleNodeOrdering: the fsync'd one-member ordering journal, including crash and tamper cases."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from core.hashing import sm3
from network.errors import OrderingJournalError
from network.ordering import OrderingService, SingleNodeOrdering
from network.single_ordering import MAGIC


def test_orders_densely_deduplicates_and_reads_ranges(tmp_path: Path) -> None:
    with SingleNodeOrdering(tmp_path / "ordering.log") as ordering:
        assert isinstance(ordering, OrderingService)
        assert [ordering.append(p) for p in (b"tx-a", b"tx-b")] == [0, 1]
        assert ordering.append_batch([b"tx-c", b"tx-a", b"tx-d", b"tx-c"]) == [2, 0, 3, 2]
        assert ordering.append(b"tx-d") == 3  # a retry returns the first position
        assert ordering.committed_size() == 4
        assert ordering.read(0) == [b"tx-a", b"tx-b", b"tx-c", b"tx-d"]
        assert ordering.read(1, 2) == [b"tx-b", b"tx-c"] and ordering.read(4) == []
        assert ordering.position_of(b"tx-b") == 1 and ordering.position_of(b"nope") is None
        status = ordering.status()
        assert status["role"] == "leader" and status["committed_size"] == 4 and status["peers"] == {}


def test_survives_reopen_with_the_same_positions(tmp_path: Path) -> None:
    path = tmp_path / "ordering.log"
    with SingleNodeOrdering(path) as ordering:
        ordering.append_batch([b"one", b"two", b"three"])
    with SingleNodeOrdering(path) as reopened:
        assert reopened.read(0) == [b"one", b"two", b"three"]
        assert reopened.append(b"two") == 1 and reopened.append(b"four") == 3


@pytest.mark.parametrize(
    "torn_tail",
    [
        b"\x00\x00",  # crash inside a record header
        b"\x00\x00\x00\x05" + sm3(b"hello") + b"hel",  # crash inside the payload
        b"\x00\x00\x00\x05" + sm3(b"hello") + b"hellX",  # last record's data never reached the disk intact
        b"\x00" * 100,  # file extended, pages never written
    ],
)
def test_crash_during_an_unacknowledged_append_is_truncated(tmp_path: Path, torn_tail: bytes) -> None:
    path = tmp_path / "ordering.log"
    with SingleNodeOrdering(path) as ordering:
        ordering.append_batch([b"one", b"two"])
    good_size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(torn_tail)
    with SingleNodeOrdering(path) as reopened:
        assert reopened.read(0) == [b"one", b"two"]
        assert path.stat().st_size == good_size
        assert reopened.append(b"three") == 2


def test_record_altered_before_the_end_is_reported_with_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "ordering.log"
    with SingleNodeOrdering(path) as ordering:
        ordering.append_batch([b"one", b"two", b"three"])
    data = bytearray(path.read_bytes())
    second_record = len(MAGIC) + 36 + 3
    data[second_record + 36] ^= 0x01  # flip a bit in "two"
    path.write_bytes(bytes(data))
    with pytest.raises(OrderingJournalError) as caught:
        SingleNodeOrdering(path)
    assert caught.value.offset == second_record and "SM3" in str(caught.value)


def test_refuses_a_file_that_is_not_an_ordering_journal(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    with pytest.raises(OrderingJournalError, match="not a licledger ordering journal"):
        SingleNodeOrdering(path)


def test_one_holder_at_a_time(tmp_path: Path) -> None:
    with SingleNodeOrdering(tmp_path / "ordering.log"), pytest.raises(ValueError, match="in use"):
        SingleNodeOrdering(tmp_path / "ordering.log")


def test_wait_for_wakes_when_another_thread_appends(tmp_path: Path) -> None:
    with SingleNodeOrdering(tmp_path / "ordering.log") as ordering:
        assert not ordering.wait_for(1, 0.05)
        timer = threading.Timer(0.1, ordering.append, args=(b"late",))
        timer.start()
        assert ordering.wait_for(1, 5.0)
        timer.join()


def test_concurrent_appends_get_distinct_dense_positions(tmp_path: Path) -> None:
    with SingleNodeOrdering(tmp_path / "ordering.log") as ordering:
        results: list[int] = []
        lock = threading.Lock()

        def worker(k: int) -> None:
            for i in range(25):
                position = ordering.append(f"{k}-{i}".encode())
                with lock:
                    results.append(position)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == list(range(100))
        assert len(set(ordering.read(0, 100))) == 100


def test_closed_service_and_misuse_raise(tmp_path: Path) -> None:
    ordering = SingleNodeOrdering(tmp_path / "ordering.log", max_payload_bytes=8)
    with pytest.raises(TypeError):
        ordering.append(bytearray(b"x"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ordering.append(b"123456789")
    with pytest.raises(ValueError):
        ordering.append(b"x", timeout=-1)
    ordering.close()
    ordering.close()
    with pytest.raises(ValueError, match="closed"):
        ordering.append(b"x")
    with pytest.raises(ValueError, match="closed"):
        ordering.read(0)
    assert ordering.leader() is None and ordering.status()["role"] == "closed"


def test_journal_is_private_to_its_user(tmp_path: Path) -> None:
    with SingleNodeOrdering(tmp_path / "ordering.log"):
        pass
    assert os.stat(tmp_path / "ordering.log").st_mode & 0o077 == 0
