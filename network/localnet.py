"""A local multi-province ledger network: its directory layout, configuration and member processes.

Layout of a network directory (``licledger network init`` writes it, ``up``/``status``/``down`` read it)::

    network.json            configuration: members, roles, key ids, loopback ports, genesis (no secrets)
    secrets/kek             the key-encryption key (SM4, 16 random bytes, hex), mode 0600, unless the KEK is
                            given in the environment variable LICLEDGER_NETWORK_KEK instead
    secrets/raft.secret     the per-network Raft secret (32 random bytes, hex), mode 0600
    keys/<member>.key       the member's SM2 private key, SM4-GCM encrypted under the KEK, mode 0600
    data/<member>/          the peer's block store (ledger.sqlite) and Raft journal (raft/)
    run/<member>.pid        pid of the running member process
    logs/<member>.log       its log (block numbers, hashes, counts and errors; never keys or license data)

Every address is on loopback (127.0.0.1). Members are the national authority and the given provinces.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.consortium import NATIONAL, PROVINCE, Consortium, build_consortium
from core.errors import FormatError
from core.keystore import decrypt_private_key, encrypt_private_key, kek_from_hex
from core.sm2 import PrivateKey
from core.transactions import init_consortium

CONFIG_FILE = "network.json"
CONFIG_VERSION = 1
KEK_ENV = "LICLEDGER_NETWORK_KEK"
LOOPBACK = "127.0.0.1"
DEFAULT_CHECKPOINT_INTERVAL = 20


class NetworkConfigError(FormatError):
    """``network.json`` or a secret file is missing, malformed or unsafe (e.g. readable by others)."""


@dataclass(frozen=True, slots=True)
class MemberNode:
    """One member's node: its name, role, key id and loopback ports."""

    name: str
    role: str
    key_id: str
    http_port: int
    raft_port: int
    db_url: str | None = None
    """SQLAlchemy URL of the peer's store (e.g. PostgreSQL); ``None``: SQLite under ``data/<member>/``."""

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def raft_address(self) -> str:
        return f"{LOOPBACK}:{self.raft_port}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "role": self.role,
            "key_id": self.key_id,
            "http_port": self.http_port,
            "raft_port": self.raft_port,
        }
        if self.db_url is not None:
            out["db_url"] = self.db_url
        return out


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """The contents of ``network.json`` plus the directory it lives in."""

    directory: Path
    network: str
    network_id: str
    quorum: int | None
    checkpoint_interval: int
    genesis_envelope: bytes
    members: tuple[MemberNode, ...]

    def member(self, name: str) -> MemberNode:
        for m in self.members:
            if m.name == name:
                return m
        raise ValueError(f"no member {name!r} in {self.directory / CONFIG_FILE}")

    # --- paths -----------------------------------------------------------------------------------------

    def key_file(self, name: str) -> Path:
        return self.directory / "keys" / f"{name}.key"

    def data_dir(self, name: str) -> Path:
        return self.directory / "data" / name

    def db_url(self, name: str) -> str:
        """The member's ``db_url`` from ``network.json`` if set, else its SQLite file."""
        configured = self.member(name).db_url
        return configured or f"sqlite:///{self.data_dir(name) / 'ledger.sqlite'}"

    def pid_file(self, name: str) -> Path:
        return self.directory / "run" / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.directory / "logs" / f"{name}.log"

    @property
    def secret_file(self) -> Path:
        return self.directory / "secrets" / "raft.secret"

    @property
    def kek_file(self) -> Path:
        return self.directory / "secrets" / "kek"

    # --- (de)serialisation -------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": CONFIG_VERSION,
            "network": self.network,
            "network_id": self.network_id,
            "quorum": self.quorum,
            "checkpoint_interval": self.checkpoint_interval,
            "host": LOOPBACK,
            "genesis_envelope": base64.b64encode(self.genesis_envelope).decode("ascii"),
            "members": [m.to_json() for m in self.members],
        }

    @classmethod
    def load(cls, directory: Path | str) -> NetworkConfig:
        directory = Path(directory)
        path = directory / CONFIG_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NetworkConfigError(f"{path} not found: run `licledger network init` first") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise NetworkConfigError(f"{path} is not valid JSON: {exc}") from None
        try:
            if raw["version"] != CONFIG_VERSION or raw.get("host") != LOOPBACK:
                raise NetworkConfigError(f"{path}: unsupported version or host")
            members = tuple(
                MemberNode(
                    str(m["name"]),
                    str(m["role"]),
                    str(m["key_id"]),
                    int(m["http_port"]),
                    int(m["raft_port"]),
                    None if m.get("db_url") is None else str(m["db_url"]),
                )
                for m in raw["members"]
            )
            quorum = raw["quorum"]
            return cls(
                directory=directory.resolve(),
                network=str(raw["network"]),
                network_id=str(raw["network_id"]),
                quorum=None if quorum is None else int(quorum),
                checkpoint_interval=int(raw["checkpoint_interval"]),
                genesis_envelope=base64.b64decode(raw["genesis_envelope"], validate=True),
                members=members,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise NetworkConfigError(f"{path} is malformed: {exc!r}") from None

    def save(self) -> None:
        path = self.directory / CONFIG_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)


# --- secrets
# --------------------------------------------------------------------------------------------------


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_secret(path: Path) -> bytes:
    """Read a secret file, refusing one that group or others can read or write."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise NetworkConfigError(f"secret file {path} not found") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise NetworkConfigError(f"secret file {path} is accessible to group or others (chmod 600 it)")
    return path.read_bytes()


def load_kek(config: NetworkConfig) -> bytes:
    """The KEK: from ``LICLEDGER_NETWORK_KEK`` (32 hex digits) if set, else from ``secrets/kek``."""
    text = os.environ.get(KEK_ENV)
    if text is not None:
        return kek_from_hex(text, f"environment variable {KEK_ENV}")
    return kek_from_hex(read_secret(config.kek_file).decode("ascii", errors="replace"), str(config.kek_file))


def load_raft_secret(config: NetworkConfig) -> bytes:
    return read_secret(config.secret_file).strip()


def load_member_key(config: NetworkConfig, name: str, kek: bytes | None = None) -> PrivateKey:
    """Decrypt member ``name``'s SM2 key (SM4-GCM under the KEK, the member name as associated data)."""
    blob = read_secret(config.key_file(name))
    return decrypt_private_key(blob, kek if kek is not None else load_kek(config))


def install_member_key(config: NetworkConfig, name: str, key: PrivateKey, kek: bytes | None = None) -> Path:
    """Replace member ``name``'s key file with ``key`` (after a committed rotation); its running peer adopts it.

    The file is replaced atomically (:func:`network.keyfile.install_key_file`); the previous one is kept beside
    it as ``<name>.key.<old key id>`` so that nothing that was stored is lost. Returns the key file's path.
    """
    from network.keyfile import install_key_file

    kek = kek if kek is not None else load_kek(config)
    path = config.key_file(name)
    old = load_member_key(config, name, kek)
    if old.key_id == key.key_id:
        return path
    kept = path.with_name(f"{path.name}.{old.key_id}")
    if not kept.exists():
        _write_secret(kept, read_secret(path))
    install_key_file(path, encrypt_private_key(key, kek))
    return path


# --- init
# ----------------------------------------------------------------------------------------------------------


def free_loopback_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def init_network(
    directory: Path | str,
    provinces: list[str],
    *,
    quorum: int | None = None,
    seed: str | None = None,
    checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL,
    network: str = "licledger-local",
    kek_from_env: bool = False,
) -> NetworkConfig:
    """Create a network directory: member keys, genesis, Raft secret, KEK and ``network.json``.

    With ``seed``, keys are derived from it (:func:`core.consortium.derive_key`): reproducible, for tests
    only. Without, a fresh random seed is used and forgotten. With ``kek_from_env`` the KEK is read from
    ``LICLEDGER_NETWORK_KEK`` and not written to disk.
    """
    directory = Path(directory)
    if (directory / CONFIG_FILE).exists():
        raise ValueError(f"{directory / CONFIG_FILE} already exists; choose another --dir or remove it")
    if not provinces or len(set(provinces)) != len(provinces):
        raise ValueError("give at least one province, each once")
    if checkpoint_interval < 1:
        raise ValueError("checkpoint_interval must be >= 1")
    created_ms = int(time.time() * 1000) // 1000 * 1000
    consortium: Consortium = build_consortium(
        provinces,
        seed if seed is not None else secrets.token_bytes(32),
        network=network,
        created_ms=created_ms,
        quorum=quorum,
    )
    genesis = consortium.genesis
    national_key = consortium.keys[NATIONAL]
    genesis_envelope = init_consortium(genesis, national_key, timestamp_ms=created_ms)

    directory.mkdir(parents=True, exist_ok=True)
    for sub in ("keys", "data", "run", "logs", "secrets"):
        (directory / sub).mkdir(mode=0o700, exist_ok=True)
    if kek_from_env:
        config_kek = os.environ.get(KEK_ENV)
        if not config_kek:
            raise ValueError(f"--kek-env given but {KEK_ENV} is not set")
        kek = kek_from_hex(config_kek, f"environment variable {KEK_ENV}")
    else:
        kek = secrets.token_bytes(16)
        _write_secret(directory / "secrets" / "kek", kek.hex().encode("ascii"))
    _write_secret(directory / "secrets" / "raft.secret", secrets.token_hex(32).encode("ascii"))

    members = [m for m in genesis.members if m.role in (NATIONAL, PROVINCE)]
    ports = free_loopback_ports(2 * len(members))
    nodes = []
    for i, member in enumerate(members):
        key = consortium.keys[member.name]
        _write_secret(directory / "keys" / f"{member.name}.key", encrypt_private_key(key, kek))
        nodes.append(MemberNode(member.name, member.role, key.key_id, ports[2 * i], ports[2 * i + 1]))
    config = NetworkConfig(
        directory=directory.resolve(),
        network=network,
        network_id=genesis.network_id,
        quorum=quorum,
        checkpoint_interval=checkpoint_interval,
        genesis_envelope=genesis_envelope,
        members=tuple(nodes),
    )
    config.save()
    return config
