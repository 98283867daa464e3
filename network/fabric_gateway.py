"""A client of Hyperledger Fabric's Gateway service (Fabric 2.4+), for the license-registry contract on real Fabric.

The embedded ledger is one backend; Fabric is the other (docs/chaincode.md, "Running on Fabric"). A Fabric
network runs the same contract as a chaincode server (``python -m chaincode``, chaincode-as-a-service); this
module is how a node or a tool talks to it: through the peer's Gateway gRPC service (``gateway.proto``, protos
from ``hyperledger-fabric-protos``), the flow the official fabric-gateway SDKs implement:

1. **Proposal.** A ``SignedProposal`` for ``chaincode`` on ``channel``: a ``ChannelHeader`` of type
   ``ENDORSER_TRANSACTION`` with the client's time and a transaction id, a ``SignatureHeader`` with the client's
   ``SerializedIdentity`` (MSP id and X.509 certificate) and a 24-byte nonce, and the ``ChaincodeInvocationSpec``
   whose arguments are the function name then its string arguments. The transaction id is the hex SHA-256 of
   nonce || creator (Fabric's ``protoutil.ComputeTxID``), so a peer can check it.
2. **Signatures.** Fabric MSP identities sign with ECDSA over SHA-256 (FIPS 186-4; the proposal bytes, the
   transaction payload, the commit-status request), DER-encoded with a *low* S (s <= n/2): Fabric's BCCSP
   refuses high-S signatures as malleable. licledger's own trust does not rest on these signatures: every
   envelope the contract accepts carries its author's SM2 signature, which the contract checks on every peer.
3. **Submit** = ``Endorse`` (the gateway collects endorsements under the chaincode's policy and returns the
   prepared transaction), sign the prepared ``Envelope``'s payload, ``Submit`` it to ordering, then
   ``CommitStatus`` (waits for the block): the Fabric validation code and block number. Only ``VALID`` is a
   committed transaction; anything else is :class:`FabricCommitError` naming the code.
4. **Evaluate** runs a query on one peer without ordering; its answer is the chaincode's response payload.
5. **Errors carry evidence.** A refused endorsement or evaluation (the chaincode raised) is
   :class:`FabricGatewayError` with the gRPC status, every ``ErrorDetail`` (peer address, MSP id, message) and,
   when the chaincode refused with one of the contract's reasons (``"<REASON>: <message>"``,
   :class:`chaincode.errors.Reason`), that reason; nothing else in a message is taken for one. A transport
   failure (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``) is :class:`FabricUnavailableError`: retrying later is safe,
   because the contract refuses a replayed envelope.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import (
    chaincode_pb2,
    peer_pb2_grpc,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)
from google.protobuf import timestamp_pb2
from google.rpc import status_pb2

from chaincode.errors import Reason
from core.errors import LicledgerError

__all__ = [
    "FabricCommit",
    "FabricCommitError",
    "FabricGateway",
    "FabricGatewayError",
    "FabricIdentity",
    "FabricTransaction",
    "FabricUnavailableError",
    "low_s_signature",
]

_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
"""The order n of NIST P-256 (FIPS 186-4, D.1.2.3), the curve of Fabric's ECDSA identities."""
_NONCE_BYTES = 24
_REASON = re.compile(r"(?:^|chaincode response \d+, )([A-Z][A-Z0-9_]{2,}): ")
"""Where a chaincode's refusal shows in the gateway's messages: ``chaincode response 500, <REASON>: ...``."""
_REASONS = frozenset(r.value for r in Reason)
_UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def low_s_signature(der: bytes) -> bytes:
    """``der`` (an ECDSA P-256 signature) with S replaced by n - S when S > n/2, as Fabric requires (rule 2)."""
    r, s = decode_dss_signature(der)
    if s > _P256_ORDER // 2:
        s = _P256_ORDER - s
    return encode_dss_signature(r, s)


@dataclass(frozen=True)
class FabricIdentity:
    """A Fabric MSP identity: its MSP id, X.509 certificate (PEM) and ECDSA P-256 private key."""

    msp_id: str
    certificate_pem: bytes
    private_key: ec.EllipticCurvePrivateKey

    def __post_init__(self) -> None:
        if not self.msp_id:
            raise ValueError("the MSP id is empty")
        cert = x509.load_pem_x509_certificate(self.certificate_pem)
        if not isinstance(self.private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            self.private_key.curve, ec.SECP256R1
        ):
            raise ValueError("a Fabric identity's key must be ECDSA on P-256")
        if cert.public_key() != self.private_key.public_key():
            raise ValueError("the private key does not belong to the certificate")

    @classmethod
    def from_files(cls, msp_id: str, certificate: Path | str, private_key: Path | str) -> FabricIdentity:
        """An identity from PEM files (an MSP's ``signcerts/*.pem`` and ``keystore/*_sk``)."""
        key = serialization.load_pem_private_key(Path(private_key).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{private_key} is not an ECDSA private key")
        return cls(msp_id, Path(certificate).read_bytes(), key)

    @classmethod
    def from_msp_dir(cls, msp_id: str, msp_dir: Path | str) -> FabricIdentity:
        """The identity of an MSP directory as cryptogen and fabric-ca write it (one cert, one key)."""
        d = Path(msp_dir)
        certs = sorted((d / "signcerts").glob("*.pem"))
        keys = sorted((d / "keystore").iterdir())
        if len(certs) != 1 or len(keys) != 1:
            raise ValueError(f"{d} must hold exactly one signcerts/*.pem and one keystore file")
        return cls.from_files(msp_id, certs[0], keys[0])

    def creator(self) -> bytes:
        """The serialized identity (``msp.SerializedIdentity``) that proposals and transactions name."""
        out: bytes = identities_pb2.SerializedIdentity(
            mspid=self.msp_id, id_bytes=self.certificate_pem
        ).SerializeToString()
        return out

    def sign(self, message: bytes) -> bytes:
        """ECDSA P-256 over SHA-256 of ``message``, DER with low S (rule 2)."""
        return low_s_signature(self.private_key.sign(message, ec.ECDSA(hashes.SHA256())))


class FabricGatewayError(LicledgerError):
    """The gateway refused a request: ``code`` (gRPC status), ``details`` (peer address, MSP id, message each)
    and the licledger ``reason`` the chaincode gave, if any."""

    def __init__(self, what: str, code: grpc.StatusCode, message: str, details: Sequence[tuple[str, str, str]]):
        self.code = code
        self.details = tuple(details)
        texts = [message, *(d[2] for d in self.details)]
        found = next((m.group(1) for t in texts for m in _REASON.finditer(t) if m.group(1) in _REASONS), None)
        self.reason: str | None = found
        where = "; ".join(f"{addr} ({msp}): {msg}" for addr, msp, msg in self.details)
        super().__init__(f"{what} refused ({code.name}): {message}" + (f" [{where}]" if where else ""))


class FabricUnavailableError(FabricGatewayError):
    """The gateway did not answer in time or could not be reached; retrying later is safe."""


class FabricCommitError(LicledgerError):
    """A transaction was ordered but the peers marked it invalid (``validation_code``, e.g. ``MVCC_READ_CONFLICT``)."""

    def __init__(self, tx_id: str, validation_code: str, block_number: int) -> None:
        self.tx_id = tx_id
        self.validation_code = validation_code
        self.block_number = block_number
        super().__init__(f"transaction {tx_id} is {validation_code} in block {block_number}")


@dataclass(frozen=True, slots=True)
class FabricCommit:
    """A committed, valid Fabric transaction: its Fabric transaction id, block and the chaincode's result."""

    tx_id: str
    block_number: int
    result: bytes


@dataclass(frozen=True, slots=True)
class FabricTransaction:
    """A transaction found in a block: its position and Fabric validation code (``VALID`` or why not)."""

    tx_id: str
    block_number: int
    index: int
    validation_code: str
    result: bytes


@dataclass(frozen=True, slots=True)
class _Proposal:
    tx_id: str
    signed: Any  # peer.SignedProposal


def _details(exc: grpc.RpcError) -> list[tuple[str, str, str]]:
    """The ``gateway.ErrorDetail`` entries of a gRPC error's rich status (google.rpc.Status details)."""
    out: list[tuple[str, str, str]] = []
    trailers = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailers or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for any_detail in status.details:
            detail = gateway_pb2.ErrorDetail()
            if any_detail.Unpack(detail):
                out.append((detail.address, detail.msp_id, detail.message))
    return out


class FabricGateway:
    """A connection to one peer's Gateway service for ``chaincode`` on ``channel``, as ``identity``.

    ``endpoint`` is ``host:port``; with ``tls_root_cert`` (PEM of the peer's TLS CA) the channel is TLS, and
    ``server_name`` overrides the name checked in the peer's certificate (its hostname when connecting by IP).
    Thread-safe (gRPC channels are).
    """

    def __init__(
        self,
        endpoint: str,
        identity: FabricIdentity,
        *,
        channel: str,
        chaincode: str,
        tls_root_cert: bytes | None = None,
        server_name: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not channel or not chaincode:
            raise ValueError("channel and chaincode names are required")
        self.endpoint = endpoint
        self.identity = identity
        self.channel_name = channel
        self.chaincode = chaincode
        self.timeout = timeout
        if tls_root_cert is None:
            self._channel = grpc.insecure_channel(endpoint)
        else:
            options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
            self._channel = grpc.secure_channel(endpoint, grpc.ssl_channel_credentials(tls_root_cert), options)
        self._stub = gateway_pb2_grpc.GatewayStub(self._channel)
        self._endorser = peer_pb2_grpc.EndorserStub(self._channel)
        self._creator = identity.creator()

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> FabricGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- rule 1 ---

    def transaction_id(self, nonce: bytes) -> str:
        """The Fabric transaction id of a proposal by this identity with ``nonce`` (rule 1)."""
        return hashlib.sha256(nonce + self._creator).hexdigest()

    def proposal(
        self,
        function: str,
        args: Sequence[str | bytes],
        *,
        nonce: bytes | None = None,
        timestamp_ms: int | None = None,
        chaincode: str | None = None,
        channel: str | None = None,
    ) -> _Proposal:
        """A signed proposal invoking ``function(*args)``; see rule 1. ``nonce`` (default: 24 random bytes) and
        ``timestamp_ms`` (default: now) may be chosen by the caller, which makes the transaction id
        deterministic; ``chaincode`` overrides the gateway's (e.g. the system chaincode ``qscc``) and ``channel``
        the channel (``""`` for a peer-local call such as installing a chaincode package). A ``str`` argument is
        sent as its UTF-8 bytes, a ``bytes`` argument (a system chaincode's protobuf message) as it is."""
        nonce = os.urandom(_NONCE_BYTES) if nonce is None else nonce
        if len(nonce) < 16:
            raise ValueError("a proposal nonce must be at least 16 bytes")
        tx_id = self.transaction_id(nonce)
        now = timestamp_pb2.Timestamp()
        now.FromNanoseconds(time.time_ns() if timestamp_ms is None else timestamp_ms * 1_000_000)
        cc_id = chaincode_pb2.ChaincodeID(name=chaincode or self.chaincode)
        channel_header = common_pb2.ChannelHeader(
            type=common_pb2.HeaderType.ENDORSER_TRANSACTION,
            timestamp=now,
            channel_id=self.channel_name if channel is None else channel,
            tx_id=tx_id,
            epoch=0,
            extension=proposal_pb2.ChaincodeHeaderExtension(chaincode_id=cc_id).SerializeToString(),
        )
        signature_header = common_pb2.SignatureHeader(creator=self._creator, nonce=nonce)
        header = common_pb2.Header(
            channel_header=channel_header.SerializeToString(), signature_header=signature_header.SerializeToString()
        )
        spec = chaincode_pb2.ChaincodeInvocationSpec(
            chaincode_spec=chaincode_pb2.ChaincodeSpec(
                chaincode_id=cc_id,
                input=chaincode_pb2.ChaincodeInput(
                    args=[function.encode(), *(a if isinstance(a, bytes) else a.encode() for a in args)]
                ),
            )
        )
        payload = proposal_pb2.ChaincodeProposalPayload(input=spec.SerializeToString())
        proposal_bytes = proposal_pb2.Proposal(
            header=header.SerializeToString(), payload=payload.SerializeToString()
        ).SerializeToString()
        signed = proposal_pb2.SignedProposal(
            proposal_bytes=proposal_bytes, signature=self.identity.sign(proposal_bytes)
        )
        return _Proposal(tx_id, signed)

    def _rpc(self, what: str, call: Any, request: Any, timeout: float | None) -> Any:
        try:
            return call(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            message = exc.details() if hasattr(exc, "details") else str(exc)
            cls = FabricUnavailableError if code in _UNAVAILABLE else FabricGatewayError
            raise cls(what, code, message or "", _details(exc)) from None

    # --- rule 4 ---

    def evaluate(
        self, function: str, *args: str | bytes, timeout: float | None = None, chaincode: str | None = None
    ) -> bytes:
        """The chaincode's answer to a query, from one peer, not ordered."""
        p = self.proposal(function, args, chaincode=chaincode)
        request = gateway_pb2.EvaluateRequest(
            transaction_id=p.tx_id, channel_id=self.channel_name, proposed_transaction=p.signed
        )
        response = self._rpc(f"evaluate {function}", self._stub.Evaluate, request, timeout)
        result: bytes = response.result.payload
        return result

    # --- rule 3 ---

    def submit(
        self,
        function: str,
        *args: str | bytes,
        timeout: float | None = None,
        nonce: bytes | None = None,
        timestamp_ms: int | None = None,
        chaincode: str | None = None,
        endorsing_organizations: Sequence[str] = (),
    ) -> FabricCommit:
        """Endorse, order and wait for ``function(*args)``; its commit, or an error (rules 3, 5).
        ``endorsing_organizations`` (MSP ids) restricts endorsement to those organisations' peers (the gateway
        otherwise picks peers satisfying the chaincode's endorsement policy)."""
        p = self.proposal(function, args, nonce=nonce, timestamp_ms=timestamp_ms, chaincode=chaincode)
        endorsed = self._rpc(
            f"endorse {function}",
            self._stub.Endorse,
            gateway_pb2.EndorseRequest(
                transaction_id=p.tx_id,
                channel_id=self.channel_name,
                proposed_transaction=p.signed,
                endorsing_organizations=list(endorsing_organizations),
            ),
            timeout,
        )
        envelope = endorsed.prepared_transaction
        envelope.signature = self.identity.sign(envelope.payload)
        self._rpc(
            f"submit {function}",
            self._stub.Submit,
            gateway_pb2.SubmitRequest(
                transaction_id=p.tx_id, channel_id=self.channel_name, prepared_transaction=envelope
            ),
            timeout,
        )
        status = self.commit_status(p.tx_id, timeout=timeout)
        code, block = status
        if code != "VALID":
            raise FabricCommitError(p.tx_id, code, block)
        return FabricCommit(p.tx_id, block, _endorsed_result(envelope))

    def process_proposal(
        self, function: str, *args: str | bytes, chaincode: str, channel: str, timeout: float | None = None
    ) -> bytes:
        """A proposal sent to this peer's ``Endorser`` service itself, not through the gateway: for the peer's
        own administration (``_lifecycle`` ``InstallChaincode``, ``QueryInstalledChaincodes``, which name no
        channel). The chaincode's response payload; :class:`FabricGatewayError` naming the peer's status and
        message when it refuses."""
        p = self.proposal(function, args, chaincode=chaincode, channel=channel)
        response = self._rpc(function, self._endorser.ProcessProposal, p.signed, timeout)
        if response.response.status >= 400:
            raise FabricGatewayError(
                function,
                grpc.StatusCode.UNKNOWN,
                f"the peer answered {response.response.status}: {response.response.message}",
                (),
            )
        payload: bytes = response.response.payload
        return payload

    def commit_status(self, tx_id: str, *, timeout: float | None = None) -> tuple[str, int]:
        """Wait for ``tx_id``'s block: (validation code name, block number)."""
        request = gateway_pb2.CommitStatusRequest(
            transaction_id=tx_id, channel_id=self.channel_name, identity=self._creator
        ).SerializeToString()
        signed = gateway_pb2.SignedCommitStatusRequest(request=request, signature=self.identity.sign(request))
        response = self._rpc("commit status", self._stub.CommitStatus, signed, timeout)
        return transaction_pb2.TxValidationCode.Name(response.result), int(response.block_number)

    def find_transaction(self, tx_id: str, *, timeout: float | None = None) -> FabricTransaction | None:
        """Where Fabric transaction ``tx_id`` is in the channel's blocks (``qscc`` ``GetBlockByTxID``): block,
        position and validation code; ``None`` if no block holds it."""
        try:
            raw = self.evaluate("GetBlockByTxID", self.channel_name, tx_id, timeout=timeout, chaincode="qscc")
        except FabricUnavailableError:
            raise
        except FabricGatewayError as exc:
            if "no such transaction ID" in str(exc):
                return None
            raise
        block = common_pb2.Block.FromString(raw)
        flags = block.metadata.metadata[common_pb2.BlockMetadataIndex.TRANSACTIONS_FILTER]
        for index, data in enumerate(block.data.data):
            envelope = common_pb2.Envelope.FromString(data)
            payload = common_pb2.Payload.FromString(envelope.payload)
            header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
            if header.tx_id == tx_id:
                code = transaction_pb2.TxValidationCode.Name(flags[index]) if index < len(flags) else "UNKNOWN"
                return FabricTransaction(tx_id, int(block.header.number), index, code, _endorsed_result(envelope))
        raise FabricGatewayError(
            "GetBlockByTxID", grpc.StatusCode.INTERNAL, f"block {block.header.number} does not hold {tx_id}", ()
        )


def _endorsed_result(envelope: Any) -> bytes:
    """The chaincode's response payload inside a prepared transaction (Payload > Transaction > action >
    ChaincodeActionPayload > ProposalResponsePayload > ChaincodeAction.response.payload)."""
    payload = common_pb2.Payload.FromString(envelope.payload)
    tx = transaction_pb2.Transaction.FromString(payload.data)
    action_payload = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
    prp = proposal_response_pb2.ProposalResponsePayload.FromString(action_payload.action.proposal_response_payload)
    action = proposal_pb2.ChaincodeAction.FromString(prp.extension)
    result: bytes = action.response.payload
    return result
