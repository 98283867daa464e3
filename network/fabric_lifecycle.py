"""Deploying the license-registry contract on a Fabric channel: Fabric 2.x's chaincode lifecycle from licledger.

On Fabric the contract runs as *chaincode as a service*: each organisation runs the chaincode server
(``licledger fabric chaincode``, :mod:`chaincode.server`) and its peer dials it. Putting it on a channel is
Fabric's lifecycle ("Fabric chaincode lifecycle", Fabric 2.x documentation; the ``_lifecycle`` system chaincode,
``peer/lifecycle/lifecycle.proto``), done here without Fabric's ``peer`` CLI:

1. **Package** (:func:`ccaas_package`): a ``tar.gz`` of ``metadata.json`` (``{"type": "ccaas", "label": ...}``)
   and ``code.tar.gz`` holding ``connection.json`` (the chaincode server's address, and for mutually
   authenticated TLS the peer's client key and certificate and the server's CA, as PEM), the layout Fabric's
   ``ccaas`` external builder reads. The archive is byte-for-byte reproducible (fixed names, modes and times),
   so one organisation's package id can be recomputed by another from the same inputs. The package id is
   ``<label>:<hex SHA-256 of the package file>`` (Fabric ``persistence.PackageID``).
2. **Install** (:meth:`FabricLifecycle.install`): ``InstallChaincode`` sent to the organisation's own peer
   (its ``Endorser`` service; needs the peer's admin identity). Installing a package already installed is not
   an error: its package id is answered.
3. **Approve** (:meth:`FabricLifecycle.approve`): ``ApproveChaincodeDefinitionForMyOrg`` for the channel, name,
   version and sequence, naming the package id, endorsed by the organisation's own peers only and ordered.
   Empty endorsement and validation settings take the channel's defaults (``escc``, ``vscc``, the
   ``/Channel/Application/Endorsement`` policy), as the peer CLI does.
4. **Commit** (:meth:`FabricLifecycle.commit`): ``CommitChaincodeDefinition``, once
   ``CheckCommitReadiness`` shows the approvals the channel's ``LifecycleEndorsement`` policy needs; endorsed by
   the organisations named (default: every organisation that approved), ordered. Refused *before* anything is
   sent while an organisation named has not approved: the error names which.
5. **Queries**: the installed packages, the committed definition (sequence, version, approvals) and the
   readiness of a definition, for ``licledger fabric status``. The sequence to approve defaults to the committed
   one plus one (1 for a new name).

The identity is an organisation admin's (a peer's admin can install; any member the channel's policies allow
can approve for its organisation): lifecycle transactions are Fabric's own business and carry no licledger
SM2 signature; the contract's transactions still do (docs/chaincode.md).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass

from fabric_protos.peer.lifecycle import lifecycle_pb2

from core.errors import LicledgerError
from network.fabric_gateway import FabricCommit, FabricGateway, FabricGatewayError

__all__ = [
    "ChaincodeDefinition",
    "FabricLifecycle",
    "LifecycleError",
    "ServerTLS",
    "ccaas_package",
    "package_id",
]

LIFECYCLE = "_lifecycle"
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
"""Fabric's package label rule (``persistence.ValidateLabel``)."""
_ADDRESS = re.compile(r"[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}")
_NAME = re.compile(r"[a-zA-Z0-9]+([-_][a-zA-Z0-9]+)*")
"""Fabric's chaincode name rule (``lifecycle.ChaincodeNameRegExp``)."""
_VERSION = re.compile(r"[A-Za-z0-9_.+-]+")


class LifecycleError(LicledgerError):
    """A lifecycle step cannot be done: bad input, or the channel is not in the state the step needs."""


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """What the peer needs to dial the chaincode server over mutually authenticated TLS, as PEM text: the peer's
    TLS client key and certificate, and the CA that issued the chaincode server's certificate."""

    client_key: str
    client_cert: str
    root_cert: str

    def __post_init__(self) -> None:
        for name, text, marker in (
            ("client key", self.client_key, "PRIVATE KEY-----"),
            ("client certificate", self.client_cert, "-----BEGIN CERTIFICATE-----"),
            ("root certificate", self.root_cert, "-----BEGIN CERTIFICATE-----"),
        ):
            if marker not in text:
                raise LifecycleError(f"the TLS {name} is not PEM")


@dataclass(frozen=True, slots=True)
class ChaincodeDefinition:
    """A chaincode definition on a channel as ``QueryChaincodeDefinition`` answers it."""

    name: str
    sequence: int
    version: str
    approvals: dict[str, bool]


def _tar_gz(members: Sequence[tuple[str, bytes]]) -> bytes:
    """A reproducible ``tar.gz``: members in the order given, mode 0644, owner 0, time 0; gzip without name or
    time."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def ccaas_package(label: str, address: str, tls: ServerTLS | None = None, *, dial_timeout: str = "10s") -> bytes:
    """The chaincode-as-a-service package for a chaincode server at ``address`` (``host:port``), rule 1."""
    if _LABEL.fullmatch(label) is None:
        raise LifecycleError(f"package label {label!r} must match {_LABEL.pattern} (Fabric's rule)")
    if _ADDRESS.fullmatch(address) is None:
        raise LifecycleError(f"chaincode server address {address!r} must be host:port")
    connection: dict[str, object] = {"address": address, "dial_timeout": dial_timeout, "tls_required": tls is not None}
    if tls is not None:
        connection.update(
            client_auth_required=True, client_key=tls.client_key, client_cert=tls.client_cert, root_cert=tls.root_cert
        )
    code = _tar_gz([("connection.json", json.dumps(connection, sort_keys=True).encode())])
    metadata = json.dumps({"label": label, "type": "ccaas"}, sort_keys=True).encode()
    return _tar_gz([("metadata.json", metadata), ("code.tar.gz", code)])


def package_id(label: str, package: bytes) -> str:
    """Fabric's package id: ``<label>:<hex SHA-256 of the package>``."""
    return f"{label}:{hashlib.sha256(package).hexdigest()}"


def package_label(package: bytes) -> str:
    """The label in a chaincode package's ``metadata.json``; :class:`LifecycleError` if it is not a package."""
    try:
        with tarfile.open(fileobj=io.BytesIO(package), mode="r:gz") as tar:
            member = tar.extractfile("metadata.json")
            if member is None:
                raise KeyError("metadata.json")
            metadata = json.loads(member.read())
    except (tarfile.TarError, KeyError, OSError, EOFError, ValueError) as exc:
        raise LifecycleError(f"not a chaincode package (a tar.gz with metadata.json): {exc}") from None
    label = metadata.get("label") if isinstance(metadata, dict) else None
    if not isinstance(label, str) or _LABEL.fullmatch(label) is None:
        raise LifecycleError("the package's metadata.json has no valid label")
    return label


def _check_definition(name: str, version: str, sequence: int) -> None:
    if _NAME.fullmatch(name) is None:
        raise LifecycleError(f"chaincode name {name!r} must match {_NAME.pattern} (Fabric's rule)")
    if _VERSION.fullmatch(version) is None:
        raise LifecycleError(f"chaincode version {version!r} must match {_VERSION.pattern}")
    if sequence < 1:
        raise LifecycleError(f"sequence must be at least 1, got {sequence}")


class FabricLifecycle:
    """Fabric's chaincode lifecycle through ``gateway`` (a connection to one peer as an organisation's admin)."""

    def __init__(self, gateway: FabricGateway) -> None:
        self.gateway = gateway

    @property
    def channel(self) -> str:
        return self.gateway.channel_name

    @property
    def msp_id(self) -> str:
        return self.gateway.identity.msp_id

    # --- the peer's own packages (rule 2) ---

    def install(self, package: bytes) -> str:
        """Install ``package`` on this peer; its package id (also when it was installed already)."""
        label = package_label(package)
        expected = package_id(label, package)
        args = lifecycle_pb2.InstallChaincodeArgs(chaincode_install_package=package).SerializeToString()
        try:
            raw = self.gateway.process_proposal("InstallChaincode", args, chaincode=LIFECYCLE, channel="")
        except FabricGatewayError as exc:
            if "already successfully installed" in str(exc):
                return expected
            raise
        result = lifecycle_pb2.InstallChaincodeResult.FromString(raw)
        if result.package_id != expected:
            raise LifecycleError(f"the peer installed {result.package_id}, not {expected}")
        return expected

    def installed(self) -> dict[str, str]:
        """Package id -> label of every package installed on this peer."""
        args = lifecycle_pb2.QueryInstalledChaincodesArgs().SerializeToString()
        raw = self.gateway.process_proposal("QueryInstalledChaincodes", args, chaincode=LIFECYCLE, channel="")
        result = lifecycle_pb2.QueryInstalledChaincodesResult.FromString(raw)
        return {c.package_id: c.label for c in result.installed_chaincodes}

    # --- the channel's definitions (rules 3-5) ---

    def committed(self, name: str) -> ChaincodeDefinition | None:
        """The definition of ``name`` committed on the channel; ``None`` when there is none."""
        args = lifecycle_pb2.QueryChaincodeDefinitionArgs(name=name).SerializeToString()
        try:
            raw = self.gateway.evaluate("QueryChaincodeDefinition", args, chaincode=LIFECYCLE)
        except FabricGatewayError as exc:
            if f"namespace {name} is not defined" in str(exc):
                return None
            raise
        result = lifecycle_pb2.QueryChaincodeDefinitionResult.FromString(raw)
        return ChaincodeDefinition(name, int(result.sequence), result.version, dict(result.approvals))

    def next_sequence(self, name: str) -> int:
        """The sequence a new definition of ``name`` takes: the committed one plus one, or 1."""
        current = self.committed(name)
        return 1 if current is None else current.sequence + 1

    def readiness(self, name: str, version: str, sequence: int) -> dict[str, bool]:
        """MSP id -> whether that organisation approved this definition (``CheckCommitReadiness``)."""
        _check_definition(name, version, sequence)
        args = lifecycle_pb2.CheckCommitReadinessArgs(name=name, version=version, sequence=sequence)
        raw = self.gateway.evaluate("CheckCommitReadiness", args.SerializeToString(), chaincode=LIFECYCLE)
        return dict(lifecycle_pb2.CheckCommitReadinessResult.FromString(raw).approvals)

    def approve(self, name: str, version: str, sequence: int, package: str) -> FabricCommit:
        """Approve the definition for this identity's organisation, naming installed package id ``package``."""
        _check_definition(name, version, sequence)
        if ":" not in package or _LABEL.fullmatch(package.split(":", 1)[0]) is None:
            raise LifecycleError(f"{package!r} is not a package id (<label>:<sha256>)")
        args = lifecycle_pb2.ApproveChaincodeDefinitionForMyOrgArgs(
            name=name,
            version=version,
            sequence=sequence,
            source=lifecycle_pb2.ChaincodeSource(local_package=lifecycle_pb2.ChaincodeSource.Local(package_id=package)),
        )
        return self.gateway.submit(
            "ApproveChaincodeDefinitionForMyOrg",
            args.SerializeToString(),
            chaincode=LIFECYCLE,
            endorsing_organizations=[self.msp_id],
        )

    def commit(
        self, name: str, version: str, sequence: int, endorsing_organizations: Sequence[str] = ()
    ) -> FabricCommit:
        """Commit the definition, endorsed by ``endorsing_organizations`` (default: every organisation that
        approved it); :class:`LifecycleError`, nothing sent, while one of them has not approved (rule 4)."""
        approvals = self.readiness(name, version, sequence)
        orgs = list(endorsing_organizations) or sorted(m for m, ok in approvals.items() if ok)
        unknown = sorted(set(orgs) - set(approvals))
        if unknown:
            raise LifecycleError(f"not organisations of channel {self.channel}: {', '.join(unknown)}")
        missing = sorted(m for m in orgs if not approvals[m])
        if missing or not orgs:
            raise LifecycleError(
                f"{name} version {version} sequence {sequence} is not approved by "
                f"{', '.join(missing) or 'any organisation'} (approvals: "
                + ", ".join(f"{m}={'yes' if ok else 'no'}" for m, ok in sorted(approvals.items()))
                + ")"
            )
        args = lifecycle_pb2.CommitChaincodeDefinitionArgs(name=name, version=version, sequence=sequence)
        return self.gateway.submit(
            "CommitChaincodeDefinition",
            args.SerializeToString(),
            chaincode=LIFECYCLE,
            endorsing_organizations=orgs,
        )
