"""Drive a local cluster of :mod:`network.ordering_server` processes on loopback (tests and benchmarks).

Each member is a separate OS process, so a test can ``kill -9`` it (:meth:`OrderingServerProcess.kill`) and
restart it on the same port and journal directory. Ports are picked free on 127.0.0.1; nothing here ever sends
traffic outside 127.0.0.0/8.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

#: Name (not value) of the environment variable through which the secret reaches each member.
SECRET_ENV = "LICLEDGER_ORDERING_SECRET"  # noqa: S105


def free_loopback_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


class OrderingServerProcess:
    """One ``python -m network.ordering_server`` process and its JSON-lines control channel."""

    def __init__(
        self,
        address: str,
        partners: list[str],
        journal_dir: Path,
        secret: str,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.address = address
        self.partners = partners
        self.journal_dir = journal_dir
        self.log_path = journal_dir.with_name(journal_dir.name + ".log")
        self._secret = secret
        self._extra_args = extra_args
        self._proc: subprocess.Popen[str] | None = None
        self._cond = threading.Condition()
        self._replies: dict[int, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._next_id = 0
        self._reader: threading.Thread | None = None

    # --- life cycle ---------------------------------------------------------------------------------------

    def start(self, ready_timeout: float = 30.0) -> None:
        """Spawn the process and wait until its port is bound and its journal replayed."""
        cmd = [
            sys.executable,
            "-m",
            "network.ordering_server",
            "--self",
            self.address,
            "--partners",
            ",".join(self.partners),
            "--journal-dir",
            str(self.journal_dir),
            "--secret-env",
            SECRET_ENV,
            *self._extra_args,
        ]
        env = dict(os.environ, **{SECRET_ENV: self._secret})
        with self._cond:
            self._events = []
            self._replies = {}
        self.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603  (our own interpreter and module, no shell)
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env
            )
        assert self._proc.stdout is not None
        self._reader = threading.Thread(target=self._read_loop, args=(self._proc.stdout,), daemon=True)
        self._reader.start()
        if self.wait_event(lambda e: e.get("event") == "ready", ready_timeout) is None:
            self.kill()
            raise RuntimeError(f"ordering server {self.address} did not start; see {self.log_path}")

    def kill(self) -> None:
        """``kill -9`` the process (no clean-up of any kind runs in it) and collect what it wrote."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
        self._proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        self._close_pipes()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the process to leave the cluster and exit; ``kill -9`` it if it does not."""
        if self._proc is None or self._proc.poll() is not None:
            self.kill()
            return
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps({"op": "close"}) + "\n")
            self._proc.stdin.flush()
            self._proc.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # --- control channel ----------------------------------------------------------------------------------

    def call(self, op: str, reply_timeout: float = 60.0, **args: Any) -> dict[str, Any]:
        """Send one request and wait up to ``reply_timeout`` for its reply, else raise ``RuntimeError``."""
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError(f"ordering server {self.address} is not running")
        with self._cond:
            self._next_id += 1
            request_id = self._next_id
        request = {"id": request_id, "op": op, **args}
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"ordering server {self.address} is gone: {exc}") from None
        deadline = time.monotonic() + reply_timeout
        with self._cond:
            while request_id not in self._replies:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (not self.alive and self._reader_done()):
                    raise RuntimeError(f"no reply to {op} from {self.address}")
                self._cond.wait(min(remaining, 0.5))
            return self._replies.pop(request_id)

    def events(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._events)

    def wait_event(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any] | None:
        """The first event so far or within ``timeout`` for which ``predicate`` holds, else ``None``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self._events:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._reader_done():
                    return None
                self._cond.wait(min(remaining, 0.5))

    def acks(self) -> dict[bytes, int]:
        """Every payload this process acknowledged (from ``stream`` events), with its position."""
        return {bytes.fromhex(e["payload"]): e["position"] for e in self.events() if e.get("event") == "ack"}

    def _read_loop(self, stdout: IO[str]) -> None:
        for line in stdout:
            message = json.loads(line)
            with self._cond:
                if "event" in message:
                    self._events.append(message)
                elif message.get("id") is not None:
                    self._replies[message["id"]] = message
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _reader_done(self) -> bool:
        return self._reader is None or not self._reader.is_alive()

    def _close_pipes(self) -> None:
        assert self._proc is not None
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


class LocalOrderingCluster:
    """``size`` ordering members on free loopback ports, journals under ``base_dir``, one shared secret."""

    def __init__(self, base_dir: Path, size: int = 3, extra_args: tuple[str, ...] = ()) -> None:
        self.secret = secrets.token_hex(32)
        self.addresses = [f"127.0.0.1:{p}" for p in free_loopback_ports(size)]
        self.nodes = [
            OrderingServerProcess(
                address,
                [a for a in self.addresses if a != address],
                base_dir / f"node{i}",
                self.secret,
                extra_args,
            )
            for i, address in enumerate(self.addresses)
        ]

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalOrderingCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def node(self, address: str) -> OrderingServerProcess:
        return next(n for n in self.nodes if n.address == address)

    def wait_leader(self, timeout: float = 20.0) -> OrderingServerProcess:
        """The member that every live member names as leader, once they agree and it says it leads."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [n for n in self.nodes if n.alive]
            statuses = [n.call("status", reply_timeout=5)["status"] for n in live]
            leaders = {s["leader"] for s in statuses}
            if len(leaders) == 1 and None not in leaders:
                (leader,) = leaders
                if any(s["self"] == leader and s["role"] == "leader" for s in statuses):
                    return self.node(leader)
            time.sleep(0.1)
        raise RuntimeError("the cluster did not agree on a leader in time")

    def sequences(self, size: int, timeout: float = 30.0) -> list[list[bytes]]:
        """Wait until every live member committed ``size`` payloads; return each member's first ``size``."""
        out = []
        for node in self.nodes:
            if not node.alive:
                continue
            reached = node.call("wait_for", size=size, timeout=timeout, reply_timeout=timeout + 10)
            if not reached.get("reached"):
                raise RuntimeError(f"{node.address} did not reach {size} payloads: {reached}")
            payloads: list[bytes] = []
            while len(payloads) < size:
                reply = node.call("read", position=len(payloads), limit=min(1000, size - len(payloads)))
                payloads.extend(bytes.fromhex(p) for p in reply["payloads"])
            out.append(payloads)
        return out
