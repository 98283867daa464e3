"""Helpers for the multi-process network tests: a network made and run by the real `licledger network` CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.consortium import NATIONAL
from core.sm2 import PrivateKey
from network.localnet import NetworkConfig, load_member_key
from network.peer.client import PeerClient, PeerRequestError
from network.procs import down, member_pid
from network.workload import Province

PROVINCES = ("110000", "310000", "440000")


def licledger(*args: str | Path, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    """Run the installed ``licledger`` CLI (or the same entry point through this interpreter)."""
    exe = shutil.which("licledger")
    argv = [exe] if exe else [sys.executable, "-c", "from node.cli import main; main()"]
    return subprocess.run(
        [*argv, *(str(a) for a in args)], capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class Net:
    """A running local network and the provinces that submit to it from the test process."""

    directory: Path
    config: NetworkConfig
    provinces: dict[str, Province] = field(default_factory=dict)
    national_key: PrivateKey | None = None

    @classmethod
    def create(cls, directory: Path, *, checkpoint_interval: int = 4, provinces: tuple[str, ...] = PROVINCES) -> Net:
        done = licledger(
            "network",
            "init",
            "--provinces",
            ",".join(provinces),
            "--dir",
            directory,
            "--seed",
            f"test-{directory.name}",
            "--checkpoint-interval",
            str(checkpoint_interval),
        )
        assert done.returncode == 0, done.stderr
        config = NetworkConfig.load(directory)
        net = cls(directory, config)
        for name in provinces:
            net.provinces[name] = Province(config.network_id, name, load_member_key(config, name))
        net.national_key = load_member_key(config, NATIONAL)
        return net

    @classmethod
    def started(
        cls, directory: Path, *, checkpoint_interval: int = 4, attempts: int = 2, provinces: tuple[str, ...] = PROVINCES
    ) -> Net:
        """A created and running network (of ``provinces`` and the national authority). The ports ``init`` picked
        were free a moment earlier; if another program took one meanwhile (tests of other packages run on this
        machine too), start over in a fresh directory with fresh ports."""
        for attempt in range(attempts):
            net = cls.create(
                directory.with_name(f"{directory.name}{attempt}"),
                checkpoint_interval=checkpoint_interval,
                provinces=provinces,
            )
            done = licledger("network", "up", "--dir", net.directory)
            if done.returncode == 0:
                return net
            net.down()
        raise AssertionError(f"network did not start: {done.stdout}{done.stderr}")

    def up(self) -> subprocess.CompletedProcess[str]:
        done = licledger("network", "up", "--dir", self.directory)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def down(self) -> None:
        down(self.config, timeout=15)

    def client(self, name: str, timeout: float = 10.0) -> PeerClient:
        return PeerClient(self.config.member(name).http_url, timeout=timeout)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.config.members]

    def running(self) -> list[str]:
        return [n for n in self.names if member_pid(self.config, n) is not None]

    def statuses(self, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        out = {}
        for name in names or self.names:
            try:
                out[name] = self.client(name, timeout=3).status()
            except PeerRequestError:
                out[name] = {}
        return out

    def leader(self) -> str:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for name, st in self.statuses(self.running()).items():
                if (st.get("ordering") or {}).get("role") == "leader":
                    return name
            time.sleep(0.2)
        raise AssertionError("no Raft leader")

    def wait_converged(self, names: list[str] | None = None, timeout: float = 45.0, quiet: float = 1.5) -> int:
        """Wait until the named peers are healthy at one height and block hash, unchanged for ``quiet`` s."""
        names = names or self.names
        deadline = time.monotonic() + timeout
        stable_since: float | None = None
        last: tuple[Any, ...] | None = None
        while time.monotonic() < deadline:
            sts = self.statuses(names)
            tips = {(s.get("height"), s.get("block_hash"), s.get("healthy")) for s in sts.values()}
            if len(tips) == 1 and None not in next(iter(tips)) and next(iter(tips))[2]:
                tip = next(iter(tips))
                if tip != last:
                    last, stable_since = tip, time.monotonic()
                elif stable_since is not None and time.monotonic() - stable_since >= quiet:
                    return int(str(tip[0]))
            else:
                last, stable_since = None, None
            time.sleep(0.2)
        raise AssertionError(
            f"peers did not converge: { {n: (s.get('height'), s.get('problem')) for n, s in sts.items()} }"
        )

    def submit(self, envelope: bytes, via: str, *, wait: bool = True) -> dict[str, Any]:
        return self.client(via, timeout=40).submit([envelope], wait=wait, timeout=30)

    def submit_with_retry(self, envelope: bytes, prefer: list[str], deadline: float) -> dict[str, Any]:
        """Submit until some peer acknowledges (the orderer committed it); unknown outcomes are retried."""
        while time.monotonic() < deadline:
            for name in prefer:
                try:
                    return self.client(name, timeout=15).submit([envelope], wait=False, timeout=10)
                except PeerRequestError:
                    continue
            time.sleep(0.2)
        raise AssertionError("no peer acknowledged the submission before the deadline")

    def all_blocks(self, name: str) -> list[dict[str, Any]]:
        client = self.client(name)
        out: list[dict[str, Any]] = []
        while True:
            page = client.blocks(len(out), 200)
            if not page:
                return out
            out.extend(page)
