"""Starting, watching and stopping the member processes of a local network (``licledger network
up|status|down``).

Each member runs as one detached OS process (``python -m network.peer --dir DIR --member NAME``): its peer,
its Raft ordering node and its HTTP API. A pid file records it; before signalling a pid, its command line is
checked to be that member's process, so a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from network.localnet import NetworkConfig
from network.peer.client import PeerClient, PeerRequestError


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """What ``network status`` shows for one member."""

    name: str
    pid: int | None
    reachable: bool
    height: int | None = None
    block_hash: str | None = None
    healthy: bool | None = None
    problem: str | None = None
    role: str | None = None
    leader: str | None = None
    checkpoint: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "reachable": self.reachable,
            "height": self.height,
            "block_hash": self.block_hash,
            "healthy": self.healthy,
            "problem": self.problem,
            "raft_role": self.role,
            "raft_leader": self.leader,
            "latest_final_checkpoint": self.checkpoint,
        }


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [p.decode("utf-8", "replace") for p in f.read().split(b"\0") if p]
    except OSError:
        return []


def member_pid(config: NetworkConfig, name: str) -> int | None:
    """The pid of ``name``'s running process, or ``None`` (stale pid files are ignored)."""
    try:
        pid = int(config.pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None
    cmd = _cmdline(pid)
    if "network.peer" in cmd and name in cmd and str(config.directory) in cmd:
        return pid
    return None


def start_member(config: NetworkConfig, name: str) -> int:
    """Start ``name``'s process detached (its own session), logging to ``logs/<name>.log``; return its pid."""
    existing = member_pid(config, name)
    if existing is not None:
        return existing
    config.member(name)
    log_path = config.log_file(name)
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(  # noqa: S603 (fixed argv: this interpreter and our own module)
            [sys.executable, "-m", "network.peer", "--dir", str(config.directory), "--member", name],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd=str(config.directory),
        )
    pid_path = config.pid_file(name)
    pid_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pid_path.write_text(f"{proc.pid}\n")
    # Until the child has exec'd, /proc/<pid>/cmdline is still this CLI's, so member_pid() would take a
    # starting member for a dead one. Wait for the exec (milliseconds) or for the child to exit.
    deadline = time.monotonic() + 10.0
    while member_pid(config, name) != proc.pid and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc.pid


def member_status(config: NetworkConfig, name: str, timeout: float = 3.0) -> MemberStatus:
    pid = member_pid(config, name)
    client = PeerClient(config.member(name).http_url, timeout=timeout)
    try:
        st = client.status()
    except PeerRequestError:
        return MemberStatus(name, pid, False)
    ordering = st.get("ordering") or {}
    return MemberStatus(
        name,
        pid,
        True,
        st.get("height"),
        st.get("block_hash"),
        st.get("healthy"),
        st.get("problem"),
        ordering.get("role"),
        ordering.get("leader"),
        st.get("latest_final_checkpoint"),
    )


def network_status(config: NetworkConfig) -> list[MemberStatus]:
    return [member_status(config, m.name) for m in config.members]


def _ready(st: MemberStatus) -> bool:
    return bool(st.reachable and st.healthy and st.leader and (st.height or 0) >= 1)


def wait_ready(config: NetworkConfig, names: list[str], timeout: float) -> list[MemberStatus]:
    """Wait until every member in ``names`` answers, is healthy and sees a Raft leader; return their
    status."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = [member_status(config, n, timeout=2.0) for n in names]
        if all(_ready(s) for s in statuses):
            return statuses
        for s in statuses:
            if s.reachable and s.healthy is False:
                return statuses  # unhealthy will not heal by waiting
            if not s.reachable and member_pid(config, s.name) is None:
                return statuses  # the process died: see its log
        if time.monotonic() > deadline:
            return statuses
        time.sleep(0.25)


def up(config: NetworkConfig, *, timeout: float = 60.0, names: list[str] | None = None) -> list[MemberStatus]:
    """Start every member not already running and wait until they are ready."""
    names = names or [m.name for m in config.members]
    for name in names:
        start_member(config, name)
    return wait_ready(config, names, timeout)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as stopped.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b")")[-1].split()[0] != b"Z"
    except OSError:
        return False


def down(config: NetworkConfig, *, timeout: float = 20.0, names: list[str] | None = None) -> dict[str, str]:
    """SIGTERM each running member, wait up to ``timeout`` s, SIGKILL what is left; report what happened."""
    names = names or [m.name for m in config.members]
    pids: dict[str, int] = {}
    report: dict[str, str] = {}
    for name in names:
        pid = member_pid(config, name)
        if pid is None:
            report[name] = "not running"
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        pids[name] = pid
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        for name, pid in list(pids.items()):
            if not _alive(pid):
                report[name] = "stopped"
                del pids[name]
        time.sleep(0.1)
    for name, pid in pids.items():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        report[name] = f"did not stop within {timeout:g}s: killed"
    for name in names:
        if report.get(name) != "not running" or not config.pid_file(name).exists():
            with contextlib.suppress(FileNotFoundError):
                config.pid_file(name).unlink()
    return report


def kill_member(config: NetworkConfig, name: str, sig: int = signal.SIGKILL) -> int | None:
    """Send ``sig`` (default SIGKILL, i.e. kill -9) to member ``name``; return the pid signalled (fault
    tests)."""
    pid = member_pid(config, name)
    if pid is not None:
        os.kill(pid, sig)
    return pid
