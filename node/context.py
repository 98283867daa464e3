"""What a running node holds in memory: settings, database, the province's signing key, the node secret, and
the client of the shared ledger when the node has joined one.

:func:`open_node` decrypts the key and the secret with the KEK (:mod:`core.keystore`, :mod:`node.tokens`),
migrates the database to the newest schema (``alembic upgrade head``) and returns a :class:`NodeContext`
that the web app, the importer and the CLI share. The clock is a field so tests and the importer read one.

The signing key is read through a :class:`network.keyfile.KeyFile`: after ``licledger node rotate-key submit``
replaced the key file (docs/node.md, "Key rotation"), a running ``node serve`` seals and anchors with the new
key within a second, without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.keystore import decrypt_private_key
from core.sm2 import PrivateKey
from network.keyfile import KeyFile
from node.db.engine import make_engine, make_read_sessionmaker, make_sessionmaker
from node.db.migrate import upgrade
from node.directory import NodeDirectory
from node.errors import RotationPendingError
from node.ledger import Ledger, LedgerClient
from node.settings import NodeSettings
from node.tokens import NodeSecrets, load_secret_file

PENDING_KEY_FILE = "province-key.pending.enc"
"""A rotation's new key before the ledger committed it (:mod:`node.keyrotation`); while it exists nothing is signed."""


def now_ms() -> int:
    """Milliseconds since the Unix epoch (UTC)."""
    return time.time_ns() // 1_000_000


@dataclass
class NodeContext:
    """The node's long-lived objects. Nothing here is a per-request value."""

    settings: NodeSettings
    engine: Engine
    sessions: sessionmaker[Session]
    key: PrivateKey
    """The key loaded at start; read :attr:`signing_key`, which follows a rotation."""
    secrets: NodeSecrets
    clock: Callable[[], int] = field(default=now_ms)
    ledger: Ledger | None = None
    """The shared ledger (:mod:`node.ledger`), when the settings name its peers and network id."""
    key_file: KeyFile | None = None
    """Where the key comes from; when set, a replaced key file is adopted (key rotation)."""

    @property
    def signing_key(self) -> PrivateKey:
        """The province's signing key now (the key file's, once a rotation replaced it)."""
        if self.key_file is not None:
            self.key = self.key_file.current()
        return self.key

    @signing_key.setter
    def signing_key(self, key: PrivateKey) -> None:
        self.key = key
        if self.key_file is not None:
            self.key_file.replace(key)

    def sealing_key(self) -> PrivateKey:
        """The key to seal with now: :attr:`signing_key`, with the key file looked at now (one ``stat``) rather
        than at most once a second. ``rotate-key submit`` removes the pending key and installs the new one in
        one rename, so after :meth:`check_no_pending_rotation` passed this is never the key just retired (whose
        seals, dated after the rotation's request time, would not verify)."""
        if self.key_file is not None:
            self.key = self.key_file.current(fresh=True)
        return self.key

    def check_no_pending_rotation(self) -> None:
        """Raise :class:`~node.errors.RotationPendingError` while a key rotation is pending (docs/node.md, "Key
        rotation"): a seal or ledger transaction by the old key after the request time would not verify (or would
        make the contract reject the rotation), and the new key is not valid before the rotation commits."""
        pending = self.settings.dir / PENDING_KEY_FILE
        if pending.exists():
            raise RotationPendingError(pending.name)

    @cached_property
    def directory(self) -> NodeDirectory:
        """The other provinces' nodes (:mod:`node.directory`): the ledger's announcements and the settings'."""
        return NodeDirectory(self.settings, self.ledger)

    @cached_property
    def read_sessions(self) -> sessionmaker[Session]:
        """Sessions for work that only reads (SQLite: DEFERRED transactions, no write lock); built once."""
        return make_read_sessionmaker(self.engine)

    def close(self) -> None:
        self.engine.dispose()


def open_ledger(settings: NodeSettings) -> Ledger | None:
    """The ledger ``settings`` name (embedded peers or a Fabric gateway), or ``None`` if the node has none."""
    if not settings.has_ledger or settings.network_id is None:
        return None
    if settings.ledger_backend == "fabric":
        from network.fabric_gateway import FabricGateway, FabricIdentity
        from node.fabric_ledger import FabricLedger

        assert settings.fabric_gateway and settings.fabric_msp_id and settings.fabric_msp_dir  # the settings' rule
        identity = FabricIdentity.from_msp_dir(settings.fabric_msp_id, settings.fabric_msp_dir)
        tls = None if settings.fabric_tls_ca is None else settings.fabric_tls_ca.read_bytes()
        gateways = [
            FabricGateway(
                endpoint,
                identity,
                channel=settings.fabric_channel,
                chaincode=settings.fabric_chaincode,
                tls_root_cert=tls,
                server_name=settings.fabric_server_name,
                timeout=settings.ledger_timeout_s,
            )
            for endpoint in settings.fabric_gateway_list
        ]
        return FabricLedger(gateways, settings.network_id)
    return LedgerClient(settings.ledger_url_list, settings.network_id, timeout=settings.ledger_timeout_s)


def open_node(settings: NodeSettings, *, migrate: bool = True) -> NodeContext:
    """Load the node in ``settings.dir``: decrypt key and secret, migrate, connect.

    Raises :class:`~core.errors.DecryptionError` for a wrong KEK, ``FileNotFoundError`` for a directory that
    ``licledger node init`` has not prepared.
    """
    kek = settings.kek_bytes
    for path in (settings.key_file, settings.secret_file):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run `licledger node init --dir {settings.dir}` first")
    key = decrypt_private_key(settings.key_file.read_bytes(), kek)
    node_secrets = load_secret_file(settings.secret_file, kek)
    engine = make_engine(settings.url)
    try:
        if migrate:
            upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    ledger = open_ledger(settings)
    return NodeContext(
        settings,
        engine,
        make_sessionmaker(engine),
        key,
        node_secrets,
        ledger=ledger,
        key_file=KeyFile(settings.key_file, kek, key),
    )
