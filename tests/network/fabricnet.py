"""A real Hyperledger Fabric network on loopback for the tests: one Raft orderer, one channel, one peer per
organisation (one or more organisations), and the license-registry contract deployed as chaincode-as-a-service
(``python -m chaincode``, one chaincode server per organisation, as each organisation runs its own).

Nothing of Fabric is in this repository. The tests use Fabric's own binaries and default configuration as a
Fabric release lays them out (``bin/`` with ``peer``, ``orderer``, ``configtxgen``, ``cryptogen``, ``osnadmin``
and ``config/`` with ``core.yaml`` and ``orderer.yaml``), found through ``LICLEDGER_FABRIC_HOME`` or, failing
that, ``peer`` on the PATH with ``config/`` beside its ``bin/``; the tests are skipped, saying so, when there is
none (docs/node.md, "Running on Hyperledger Fabric", says what they are). What is written here is licledger's
own network definition: the organisations for ``cryptogen``, the channel profile for ``configtxgen``, the
chaincode package (``ccaas`` type, a ``connection.json``) and the external builder that releases it, and the
environment each process runs with: TLS everywhere (Raft requires it), including mutually authenticated TLS
between the peer and the chaincode server.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import transaction_pb2

from core.codes import TYPE_CODE_OF, LicenseId, LicenseKind
from core.commitment import leaf_data
from core.consortium import Consortium
from core.hashing import sm3
from core.merkle import MerkleTree, leaf_hash
from core.sm2 import PrivateKey
from core.transactions import REVOKED, anchor_batch, change_status
from network.fabric_gateway import FabricGateway, FabricGatewayError, FabricIdentity
from network.fabric_lifecycle import FabricLifecycle, ServerTLS, ccaas_package

T = TypeVar("T")
LICLEDGER = [sys.executable, "-c", "from node.cli import main; main()"]
"""``licledger`` as a command, for the chaincode servers (the tests need not find the installed script)."""
_FORMING = re.compile(r"no Raft leader|UNAVAILABLE|no peers available|failed to collect enough|no combination")

FABRIC_TOOLS = ("peer", "orderer", "configtxgen", "cryptogen", "osnadmin")
CHANNEL = "licledger"
CHAINCODE = "licledger"
ORG = "Org1MSP"
ORDERER_DOMAIN = "licledger.test"


def fabric_home() -> Path | None:
    """Fabric's release layout (``bin/`` and ``config/``) if this machine has one, else ``None``."""
    env = os.environ.get("LICLEDGER_FABRIC_HOME")
    candidates = [Path(env)] if env else []
    peer = shutil.which("peer")
    if peer:
        candidates.append(Path(peer).resolve().parent.parent)
    for home in candidates:
        if all((home / "bin" / t).is_file() for t in FABRIC_TOOLS) and (home / "config" / "core.yaml").is_file():
            return home
    return None


SKIP_REASON = (
    "no Hyperledger Fabric binaries: set LICLEDGER_FABRIC_HOME to a Fabric release's directory (bin/ and config/) "
    "or put its bin/ on the PATH (docs/node.md, 'Running on Hyperledger Fabric')"
)


def module_network(tmp_path_factory: Any, orgs: int = 1) -> Iterator[FabricNet]:
    """A module fixture's body: the running network, or the test skipped with :data:`SKIP_REASON`."""
    import pytest

    home = fabric_home()
    if home is None:
        pytest.skip(SKIP_REASON)
    with fabric_network(home, tmp_path_factory.mktemp("fabric"), orgs=orgs) as running:
        yield running


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}):\n{log.read_text()[-3000:]}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"port {port} did not open:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.2)


def msp_id(org: int) -> str:
    return f"Org{org}MSP"


def org_domain(org: int) -> str:
    return f"org{org}.licledger.test"


def crypto_config(orgs: int, peers: int = 1) -> str:
    peer_orgs = "".join(
        f"""
  - Name: Org{o}
    Domain: {org_domain(o)}
    EnableNodeOUs: true
    Template:
      Count: {peers}
      SANS: [127.0.0.1, localhost]
    Specs:
      - Hostname: chaincode
        SANS: [127.0.0.1, localhost]
    Users:
      Count: 1"""
        for o in range(1, orgs + 1)
    )
    return f"""
OrdererOrgs:
  - Name: Orderer
    Domain: {ORDERER_DOMAIN}
    EnableNodeOUs: true
    Specs:
      - Hostname: orderer
        SANS: [127.0.0.1, localhost]
PeerOrgs:{peer_orgs}
"""


def configtx(root: Path, orderer_port: int, peer_ports: list[int]) -> str:
    orderer_tls = root / "crypto/ordererOrganizations" / ORDERER_DOMAIN / "orderers" / f"orderer.{ORDERER_DOMAIN}"
    org_defs = "".join(
        f"""
  - &Org{o}
    Name: {msp_id(o)}
    ID: {msp_id(o)}
    MSPDir: {root}/crypto/peerOrganizations/{org_domain(o)}/msp
    Policies:
      Readers: {{Type: Signature, Rule: "OR('{msp_id(o)}.admin', '{msp_id(o)}.peer', '{msp_id(o)}.client')"}}
      Writers: {{Type: Signature, Rule: "OR('{msp_id(o)}.admin', '{msp_id(o)}.client')"}}
      Admins: {{Type: Signature, Rule: "OR('{msp_id(o)}.admin')"}}
      Endorsement: {{Type: Signature, Rule: "OR('{msp_id(o)}.peer')"}}
    AnchorPeers:
      - Host: 127.0.0.1
        Port: {port}"""
        for o, port in enumerate(peer_ports, start=1)
    )
    members = ", ".join(f"*Org{o}" for o in range(1, len(peer_ports) + 1))
    return f"""
Organizations:
  - &OrdererOrg
    Name: OrdererOrg
    ID: OrdererMSP
    MSPDir: {root}/crypto/ordererOrganizations/{ORDERER_DOMAIN}/msp
    Policies:
      Readers: {{Type: Signature, Rule: "OR('OrdererMSP.member')"}}
      Writers: {{Type: Signature, Rule: "OR('OrdererMSP.member')"}}
      Admins: {{Type: Signature, Rule: "OR('OrdererMSP.admin')"}}
    OrdererEndpoints: ["127.0.0.1:{orderer_port}"]{org_defs}
Capabilities:
  Channel: &ChannelCapabilities {{V2_0: true}}
  Orderer: &OrdererCapabilities {{V2_0: true}}
  Application: &ApplicationCapabilities {{V2_0: true}}
Application: &ApplicationDefaults
  Organizations:
  Policies:
    Readers: {{Type: ImplicitMeta, Rule: "ANY Readers"}}
    Writers: {{Type: ImplicitMeta, Rule: "ANY Writers"}}
    Admins: {{Type: ImplicitMeta, Rule: "MAJORITY Admins"}}
    LifecycleEndorsement: {{Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}}
    Endorsement: {{Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}}
  Capabilities: *ApplicationCapabilities
Orderer: &OrdererDefaults
  OrdererType: etcdraft
  EtcdRaft:
    Consenters:
      - Host: 127.0.0.1
        Port: {orderer_port}
        ClientTLSCert: {orderer_tls}/tls/server.crt
        ServerTLSCert: {orderer_tls}/tls/server.crt
  BatchTimeout: 250ms
  BatchSize: {{MaxMessageCount: 50, AbsoluteMaxBytes: 10 MB, PreferredMaxBytes: 2 MB}}
  Organizations:
  Policies:
    Readers: {{Type: ImplicitMeta, Rule: "ANY Readers"}}
    Writers: {{Type: ImplicitMeta, Rule: "ANY Writers"}}
    Admins: {{Type: ImplicitMeta, Rule: "MAJORITY Admins"}}
    BlockValidation: {{Type: ImplicitMeta, Rule: "ANY Writers"}}
Channel: &ChannelDefaults
  Policies:
    Readers: {{Type: ImplicitMeta, Rule: "ANY Readers"}}
    Writers: {{Type: ImplicitMeta, Rule: "ANY Writers"}}
    Admins: {{Type: ImplicitMeta, Rule: "MAJORITY Admins"}}
  Capabilities: *ChannelCapabilities
Profiles:
  LicledgerChannel:
    <<: *ChannelDefaults
    Orderer:
      <<: *OrdererDefaults
      Organizations: [*OrdererOrg]
      Capabilities: *OrdererCapabilities
    Application:
      <<: *ApplicationDefaults
      Organizations: [{members}]
      Capabilities: *ApplicationCapabilities
"""


# The external builder for chaincode-as-a-service packages (Fabric's "External Builders and Launchers"): detect a
# ccaas package, copy its connection.json through build and release; the peer then dials the address it names.
BUILDER = {
    "detect": '#!/bin/sh\ngrep -q \'"type": *"ccaas"\' "$2/metadata.json"\n',
    "build": '#!/bin/sh\nset -e\ncp "$1/connection.json" "$3/connection.json"\n',
    "release": '#!/bin/sh\nset -e\nmkdir -p "$2/chaincode/server"\ncp "$1/connection.json" "$2/chaincode/server/"\n',
}


@dataclass
class FabricNet:
    """The running network; :func:`fabric_network` builds it. Organisation 1's peer is ``peer`` (the one the
    tests' clients use), organisation N's ``peer-orgN``."""

    home: Path
    root: Path
    orgs: int = 1
    orderer_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    peer_ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started: dict[str, tuple[list[str], dict[str, str], int]] = field(default_factory=dict)
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    """The latest process started under each name (every organisation's peer runs the same command line)."""
    more_peers: dict[int, list[int]] = field(default_factory=dict)
    """Organisation -> the ports of its peers after the first (:meth:`add_peer`)."""
    packages: list[tuple[int, bytes]] = field(default_factory=list)
    """(organisation, package) of every chaincode deployed, to install on peers added later."""

    def __post_init__(self) -> None:
        self.peer_ports = [free_port() for _ in range(self.orgs)]

    @property
    def crypto(self) -> Path:
        return self.root / "crypto"

    @property
    def orderer_dir(self) -> Path:
        return self.crypto / "ordererOrganizations" / ORDERER_DOMAIN / "orderers" / f"orderer.{ORDERER_DOMAIN}"

    @property
    def orderer_ca(self) -> Path:
        return self.orderer_dir / "tls" / "ca.crt"

    def org_dir(self, org: int = 1) -> Path:
        return self.crypto / "peerOrganizations" / org_domain(org)

    def peer_dir_of(self, org: int, index: int = 0) -> Path:
        return self.org_dir(org) / "peers" / f"peer{index}.{org_domain(org)}"

    def endpoint(self, org: int, index: int = 0) -> str:
        port = self.peer_ports[org - 1] if index == 0 else self.more_peers[org][index - 1]
        return f"127.0.0.1:{port}"

    def peer_indexes(self, org: int) -> range:
        return range(1 + len(self.more_peers.get(org, [])))

    @property
    def peer_dir(self) -> Path:
        return self.peer_dir_of(1)

    @property
    def peer_tls_ca(self) -> Path:
        return self.peer_dir / "tls" / "ca.crt"

    @property
    def peer_endpoint(self) -> str:
        return self.endpoint(1)

    def user_msp(self, user: str = "User1", org: int = 1) -> Path:
        return self.org_dir(org) / "users" / f"{user}@{org_domain(org)}" / "msp"

    def node_settings(self, chaincode: str = CHAINCODE) -> dict[str, object]:
        """A node's settings for a ledger on this network's ``chaincode``, through organisation 1's peer as its
        ``User1`` (``load_settings`` keywords; :meth:`node_environment` for a process)."""
        return {
            "ledger_backend": "fabric",
            "fabric_gateway": self.peer_endpoint,
            "fabric_msp_id": ORG,
            "fabric_msp_dir": self.user_msp(),
            "fabric_tls_ca": self.peer_tls_ca,
            "fabric_channel": CHANNEL,
            "fabric_chaincode": chaincode,
        }

    def node_environment(self, chaincode: str = CHAINCODE) -> dict[str, str]:
        """:meth:`node_settings` as the ``LICLEDGER_*`` environment of a ``licledger node`` process."""
        return {f"LICLEDGER_{k.upper()}": str(v) for k, v in self.node_settings(chaincode).items()}

    @staticmethod
    def peer_name(org: int, index: int = 0) -> str:
        if index:
            return f"peer{index}-org{org}"
        return "peer" if org == 1 else f"peer-org{org}"

    def tool(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
        full = {**os.environ, "FABRIC_CFG_PATH": str(self.home / "config"), **(env or {})}
        out = subprocess.run(
            [str(self.home / "bin" / args[0]), *args[1:]],
            env=full,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:3])} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        return out.stdout + out.stderr

    def start(self, name: str, argv: list[str], env: dict[str, str], port: int) -> None:
        """Start process ``name`` (its output appended to ``<name>.log``) and wait until ``port`` listens."""
        log = self.root / f"{name}.log"
        with log.open("ab") as fh:
            proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=fh, stderr=subprocess.STDOUT, cwd=self.root)
        self.procs.append(proc)
        self.started[name] = (argv, env, port)
        self.running[name] = proc
        wait_port(port, proc, log)

    def kill(self, name: str) -> None:
        """SIGKILL process ``name`` (e.g. ``peer``): a crash, nothing flushed or closed."""
        proc = self.running[name]
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self, name: str) -> None:
        """Start process ``name`` again as it was first started (same ports, same data directories)."""
        argv, env, port = self.started[name]
        self.start(name, argv, env, port)

    def start_peer(self, org: int, builder: Path, index: int = 0) -> None:
        pdir, endpoint = self.peer_dir_of(org, index), self.endpoint(org, index)
        ptls = pdir / "tls"
        data = self.root / f"{self.peer_name(org, index)}-data"
        self.start(
            self.peer_name(org, index),
            [str(self.home / "bin" / "peer"), "node", "start"],
            {
                "FABRIC_CFG_PATH": str(self.home / "config"),
                "FABRIC_LOGGING_SPEC": "WARNING",
                "CORE_PEER_ID": f"peer{index}.{org_domain(org)}",
                "CORE_PEER_ADDRESS": endpoint,
                "CORE_PEER_LISTENADDRESS": endpoint,
                "CORE_PEER_CHAINCODEADDRESS": f"127.0.0.1:{(cc_port := free_port())}",
                "CORE_PEER_CHAINCODELISTENADDRESS": f"127.0.0.1:{cc_port}",
                "CORE_PEER_GOSSIP_BOOTSTRAP": self.endpoint(org),
                "CORE_PEER_GOSSIP_EXTERNALENDPOINT": endpoint,
                "CORE_PEER_LOCALMSPID": msp_id(org),
                "CORE_PEER_MSPCONFIGPATH": str(pdir / "msp"),
                "CORE_PEER_TLS_ENABLED": "true",
                "CORE_PEER_TLS_CERT_FILE": str(ptls / "server.crt"),
                "CORE_PEER_TLS_KEY_FILE": str(ptls / "server.key"),
                "CORE_PEER_TLS_ROOTCERT_FILE": str(ptls / "ca.crt"),
                "CORE_PEER_FILESYSTEMPATH": str(data),
                "CORE_PEER_GATEWAY_ENABLED": "true",
                "CORE_LEDGER_SNAPSHOTS_ROOTDIR": str(data / "snapshots"),
                "CORE_OPERATIONS_LISTENADDRESS": f"127.0.0.1:{free_port()}",
                "CORE_METRICS_PROVIDER": "disabled",
                "CORE_VM_ENDPOINT": "",
                "CORE_CHAINCODE_EXTERNALBUILDERS": f"[{{name: ccaas, path: {builder}}}]",
            },
            int(endpoint.rsplit(":", 1)[1]),
        )

    def add_peer(self, org: int) -> int:
        """Another peer for organisation ``org`` (``cryptogen extend`` makes its certificates): started, joined
        to the channel and given every chaincode package deployed so far; returns its index (its endpoint is
        ``endpoint(org, index)``, its process ``peer_name(org, index)``)."""
        index = len(self.peer_indexes(org))
        (self.root / "crypto-config.yaml").write_text(crypto_config(self.orgs, peers=index + 1))
        self.tool("cryptogen", "extend", "--input", str(self.crypto), "--config", str(self.root / "crypto-config.yaml"))
        self.more_peers.setdefault(org, []).append(free_port())
        self.start_peer(org, self.root / "ccaas-builder", index)
        block = self.root / "genesis.block"
        self.tool("peer", "channel", "join", "-b", str(block), env=self.admin_env(org, index))
        with self.lifecycle(org, index) as lifecycle:
            for owner, package in self.packages:
                if owner == org:
                    lifecycle.install(package)
        return index

    def deploy(self, name: str) -> str:
        """Every organisation packages the contract as chaincode ``name`` (a ``ccaas`` package naming its own
        chaincode server, ``licledger fabric chaincode``, started here on a free port with mutually authenticated
        TLS), installs and approves it; then it is committed (sequence 1) with every organisation's endorsement,
        all through licledger's own lifecycle client (:mod:`network.fabric_lifecycle`). Returns ``name``: each
        name is a ledger of its own on the channel."""
        label = f"{name.replace('-', '_')}_1"
        for org in range(1, self.orgs + 1):
            port = free_port()
            # the chaincode server presents its organisation's "chaincode" node certificate and requires the
            # peer's TLS client certificate, both issued by the organisation's TLS CA
            peer_tls = self.peer_dir_of(org) / "tls"
            server_tls = self.org_dir(org) / "peers" / f"chaincode.{org_domain(org)}" / "tls"
            tls = ServerTLS(
                client_key=(peer_tls / "server.key").read_text(),
                client_cert=(peer_tls / "server.crt").read_text(),
                root_cert=(server_tls / "ca.crt").read_text(),
            )
            package = ccaas_package(label, f"127.0.0.1:{port}", tls)
            self.packages.append((org, package))
            for index in self.peer_indexes(org)[1:]:  # the organisation's other peers dial the same server
                with self.lifecycle(org, index) as other:
                    other.install(package)
            with self.lifecycle(org) as lifecycle:
                package_id = lifecycle.install(package)
                server = [*LICLEDGER, "fabric", "chaincode", "--id", package_id, "--address", f"127.0.0.1:{port}"]
                server += ["--tls-key", str(server_tls / "server.key"), "--tls-cert", str(server_tls / "server.crt")]
                server += ["--client-ca", str(peer_tls / "ca.crt")]
                self.start(f"chaincode-{name}-org{org}", server, {}, port)
                self.retried(functools.partial(lifecycle.approve, name, "1", 1, package_id))
        with self.lifecycle(1) as lifecycle:
            orgs = [msp_id(o) for o in range(1, self.orgs + 1)]
            self.retried(functools.partial(lifecycle.commit, name, "1", 1, orgs))
        return name

    def gateway(
        self, org: int = 1, chaincode: str = CHAINCODE, identity: FabricIdentity | None = None
    ) -> FabricGateway:
        """A gateway to organisation ``org``'s peer for ``chaincode``, as ``identity`` (default: the organisation's
        ``User1``); close it after use."""
        return FabricGateway(
            self.endpoint(org),
            identity or FabricIdentity.from_msp_dir(msp_id(org), self.user_msp(org=org)),
            channel=CHANNEL,
            chaincode=chaincode,
            tls_root_cert=(self.peer_dir_of(org) / "tls" / "ca.crt").read_bytes(),
            timeout=60,
        )

    @contextlib.contextmanager
    def lifecycle(self, org: int = 1, index: int = 0) -> Iterator[FabricLifecycle]:
        """Organisation ``org``'s admin, connected to its peer ``index``, for the chaincode lifecycle."""
        admin = self.org_dir(org) / "users" / f"Admin@{org_domain(org)}" / "msp"
        with FabricGateway(
            self.endpoint(org, index),
            FabricIdentity.from_msp_dir(msp_id(org), admin),
            channel=CHANNEL,
            chaincode="_lifecycle",
            tls_root_cert=(self.peer_dir_of(org) / "tls" / "ca.crt").read_bytes(),
            timeout=60,
        ) as gateway:
            yield FabricLifecycle(gateway)

    @staticmethod
    def retried(step: Callable[[], T], timeout: float = 90) -> T:
        """``step()``, retried while the channel's Raft cluster or the peer's view of it is still forming (the
        gateway answers UNAVAILABLE or finds no peer to endorse yet)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return step()
            except FabricGatewayError as exc:
                if time.monotonic() > deadline or not _FORMING.search(str(exc)):
                    raise
                time.sleep(1)

    def admin_env(self, org: int = 1, index: int = 0) -> dict[str, str]:
        """The peer CLI as organisation ``org``'s admin, talking to its peer ``index`` over TLS."""
        admin = self.org_dir(org) / "users" / f"Admin@{org_domain(org)}" / "msp"
        return {
            "CORE_PEER_LOCALMSPID": msp_id(org),
            "CORE_PEER_MSPCONFIGPATH": str(admin),
            "CORE_PEER_ADDRESS": self.endpoint(org, index),
            "CORE_PEER_TLS_ENABLED": "true",
            "CORE_PEER_TLS_ROOTCERT_FILE": str(self.peer_dir_of(org, index) / "tls" / "ca.crt"),
        }

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def fabric_network(home: Path, root: Path, *, orgs: int = 1) -> Iterator[FabricNet]:
    """Crypto material, the channel's genesis block (``orgs`` organisations, each its anchor peer; the default
    endorsement policy a majority of them), a Raft orderer joined to it through the channel participation API,
    a peer per organisation joined to it, and the contract deployed (:meth:`FabricNet.deploy`)."""
    net = FabricNet(home, root, orgs)
    try:
        (root / "crypto-config.yaml").write_text(crypto_config(orgs))
        net.tool("cryptogen", "generate", "--config", str(root / "crypto-config.yaml"), "--output", str(net.crypto))
        (root / "configtx.yaml").write_text(configtx(root, net.orderer_port, net.peer_ports))
        block = root / "genesis.block"
        net.tool(
            "configtxgen", "-profile", "LicledgerChannel", "-outputBlock", str(block), "-channelID", CHANNEL,
            "-configPath", str(root),
        )  # fmt: skip
        tls = net.orderer_dir / "tls"
        net.start(
            "orderer",
            [str(home / "bin" / "orderer")],
            {
                "FABRIC_CFG_PATH": str(home / "config"),
                "FABRIC_LOGGING_SPEC": "WARNING",
                "ORDERER_GENERAL_LISTENADDRESS": "127.0.0.1",
                "ORDERER_GENERAL_LISTENPORT": str(net.orderer_port),
                "ORDERER_GENERAL_LOCALMSPID": "OrdererMSP",
                "ORDERER_GENERAL_LOCALMSPDIR": str(net.orderer_dir / "msp"),
                "ORDERER_GENERAL_TLS_ENABLED": "true",
                "ORDERER_GENERAL_TLS_PRIVATEKEY": str(tls / "server.key"),
                "ORDERER_GENERAL_TLS_CERTIFICATE": str(tls / "server.crt"),
                "ORDERER_GENERAL_TLS_ROOTCAS": f"[{tls / 'ca.crt'}]",
                "ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE": str(tls / "server.crt"),
                "ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY": str(tls / "server.key"),
                "ORDERER_GENERAL_CLUSTER_ROOTCAS": f"[{tls / 'ca.crt'}]",
                "ORDERER_GENERAL_BOOTSTRAPMETHOD": "none",
                "ORDERER_CHANNELPARTICIPATION_ENABLED": "true",
                "ORDERER_ADMIN_LISTENADDRESS": f"127.0.0.1:{net.admin_port}",
                "ORDERER_ADMIN_TLS_ENABLED": "true",
                "ORDERER_ADMIN_TLS_PRIVATEKEY": str(tls / "server.key"),
                "ORDERER_ADMIN_TLS_CERTIFICATE": str(tls / "server.crt"),
                "ORDERER_ADMIN_TLS_CLIENTAUTHREQUIRED": "true",
                "ORDERER_ADMIN_TLS_CLIENTROOTCAS": f"[{tls / 'ca.crt'}]",
                "ORDERER_FILELEDGER_LOCATION": str(root / "orderer-data"),
                "ORDERER_CONSENSUS_WALDIR": str(root / "orderer-data" / "wal"),
                "ORDERER_CONSENSUS_SNAPDIR": str(root / "orderer-data" / "snap"),
                "ORDERER_OPERATIONS_LISTENADDRESS": f"127.0.0.1:{free_port()}",
                "ORDERER_METRICS_PROVIDER": "disabled",
            },
            net.orderer_port,
        )
        net.tool(
            "osnadmin", "channel", "join", "--channelID", CHANNEL, "--config-block", str(block),
            "-o", f"127.0.0.1:{net.admin_port}", "--ca-file", str(tls / "ca.crt"),
            "--client-cert", str(tls / "server.crt"), "--client-key", str(tls / "server.key"),
        )  # fmt: skip
        builder = root / "ccaas-builder" / "bin"
        builder.mkdir(parents=True)
        for name, text in BUILDER.items():
            (builder / name).write_text(text)
            (builder / name).chmod(0o755)
        for org in range(1, orgs + 1):
            net.start_peer(org, builder.parent)
            net.tool("peer", "channel", "join", "-b", str(block), env=net.admin_env(org))
        net.deploy(CHAINCODE)
        yield net
    finally:
        net.stop()


def _json_of(text: str) -> str:
    """The JSON object in a peer CLI output that may be preceded by log lines."""
    return text[text.index("{") : text.rindex("}") + 1]


def endorsers(gw: FabricGateway, tx_id: str) -> set[str]:
    """The MSP ids that endorsed Fabric transaction ``tx_id``, read from its block (``qscc``)."""
    block = common_pb2.Block.FromString(gw.evaluate("GetBlockByTxID", CHANNEL, tx_id, chaincode="qscc"))
    for data in block.data.data:
        payload = common_pb2.Payload.FromString(common_pb2.Envelope.FromString(data).payload)
        if common_pb2.ChannelHeader.FromString(payload.header.channel_header).tx_id != tx_id:
            continue
        tx = transaction_pb2.Transaction.FromString(payload.data)
        action = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
        return {identities_pb2.SerializedIdentity.FromString(e.endorser).mspid for e in action.action.endorsements}
    raise AssertionError(f"{tx_id} is not in its block")


# --- transactions the Fabric tests submit ---------------------------------------------------------------


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def licenses(
    c: Consortium, province: str, count: int, tag: str = "fabric"
) -> tuple[list[LicenseId], list[bytes], MerkleTree]:
    """``count`` physicians' license ids of ``province``'s first issuer, commitments made from ``tag`` and the id,
    and the RFC 9162 tree of their leaves (core.commitment.leaf_data)."""
    member = c.genesis.member(province)
    assert member is not None
    prefix = tag[:1].upper()
    ids = [
        LicenseId.build(TYPE_CODE_OF[LicenseKind.PHYSICIAN], member.issuers[0], f"{prefix}{i:07d}")
        for i in range(count)
    ]
    commitments = [sm3(f"{tag}/{lic}".encode()) for lic in ids]
    tree = MerkleTree([leaf_hash(leaf_data(lic, lic.version, cm)) for lic, cm in zip(ids, commitments, strict=True)])
    return ids, commitments, tree


def anchor_env(c: Consortium, province: str, seq: int, tree: MerkleTree, key: PrivateKey | None = None) -> bytes:
    """``AnchorBatch`` of ``tree`` as ``province``'s batch ``seq``, signed with ``key`` (default: the province's
    own), dated now."""
    return anchor_batch(
        c.network_id,
        issuer=province,
        batch_seq=seq,
        root=tree.root_hash(),
        leaf_count=tree.size,
        key=key or c.key(province),
        timestamp_ms=now_ms(),
    )


def revoke_env(
    c: Consortium, province: str, ids: list[LicenseId], commitments: list[bytes], tree: MerkleTree, index: int
) -> bytes:
    """``ChangeStatus`` revoking license ``ids[index]`` of ``province``'s batch 0 (the first status change of that
    license), with its leaf's inclusion proof under ``tree``, signed by the province, dated now."""
    return change_status(
        c.network_id,
        issuer=province,
        license_id=str(ids[index]),
        status=REVOKED,
        reason="R01",
        effective_ms=now_ms(),
        status_seq=0,
        commitment=commitments[index],
        batch_seq=0,
        leaf_index=index,
        inclusion_proof=tree.inclusion_proof(index),
        key=c.key(province),
        timestamp_ms=now_ms(),
    )
