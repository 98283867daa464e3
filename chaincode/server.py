"""Run the license-registry contract as a real Fabric chaincode server (chaincode-as-a-service).

``python -m chaincode --id <package id> --address 127.0.0.1:9999`` starts the ``fabric-chaincode-python``
shim's gRPC server, which a Fabric peer configured for chaincode-as-a-service connects to (Fabric 2.4+
``ccaas`` builder). The environment variables the shim reads take precedence, as in every Fabric chaincode:
``CHAINCODE_ID`` and ``CHAINCODE_SERVER_ADDRESS``; TLS files come from ``--tls-key``/``--tls-cert``/
``--client-ca`` or ``CORE_TLS_CLIENT_KEY_PATH``/``CORE_TLS_CLIENT_CERT_PATH``/``CORE_PEER_TLS_ROOTCERT_FILE``.

The embedded ledger does not use this: it runs the same contract in process (:mod:`network.executor`).

Two corrections to the shim (fabric-chaincode-python 2.5.4), found running against a real Fabric v2.4.9 peer:

1. **One write at a time on the peer stream.** The shim handles each transaction in its own asyncio task, and
   those tasks write to the one gRPC stream concurrently; grpc.aio allows a single write in flight per stream,
   so two provinces' transactions endorsed at once failed (``GRPC_CALL_ERROR_TOO_MANY_OPERATIONS``) and left a
   transaction unanswered until the peer's 30 s execute timeout. :func:`_serialise_stream_writes` puts an
   ``asyncio.Lock`` around the stream's ``write`` (:class:`_SerialWrites`).
2. **Quiet logs.** The shim configures the root logger at DEBUG and logs every proposal and payload at INFO;
   ``main`` sets its logger and the root to ``--log-level`` (default ERROR: the shim also warns on every
   message), so transaction contents stay out of the logs unless asked for.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Sequence
from typing import Any

from fabric_chaincode_python.fabric_contract_api import ContractChaincode  # type: ignore[import-untyped]
from fabric_chaincode_python.fabric_shim.handler import Handler  # type: ignore[import-untyped]

from chaincode.contract import LicenseRegistry

__all__ = ["build_chaincode", "main"]


class _SerialWrites:
    """A gRPC stream context whose ``write`` waits for the previous write to finish (correction 1)."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self._lock = asyncio.Lock()

    async def write(self, message: Any) -> None:
        async with self._lock:
            await self._context.write(message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _serialise_stream_writes() -> None:
    """Correction 1, once: the shim's ``Handler.chat_with_peer`` gets the stream context wrapped."""
    original = Handler.chat_with_peer
    if getattr(original, "_licledger_serial", False):
        return

    async def chat_with_peer(self: Any, stream: Any, context: Any) -> Any:
        return await original(self, stream, _SerialWrites(context))

    chat_with_peer._licledger_serial = True  # type: ignore[attr-defined]
    Handler.chat_with_peer = chat_with_peer


def build_chaincode() -> ContractChaincode:
    """The ``ContractChaincode`` holding :class:`LicenseRegistry`, with the shim's stream writes serialised."""
    _serialise_stream_writes()
    return ContractChaincode.new_chaincode(LicenseRegistry())


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as fh:
        return fh.read()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chaincode", description=__doc__.split("\n\n")[0])
    parser.add_argument("--id", default=os.environ.get("CHAINCODE_ID"), help="chaincode package id")
    parser.add_argument(
        "--address",
        default=os.environ.get("CHAINCODE_SERVER_ADDRESS"),
        help="host:port to listen on (e.g. 127.0.0.1:9999)",
    )
    parser.add_argument("--tls-key", default=os.environ.get("CORE_TLS_CLIENT_KEY_PATH"))
    parser.add_argument("--tls-cert", default=os.environ.get("CORE_TLS_CLIENT_CERT_PATH"))
    parser.add_argument("--client-ca", default=os.environ.get("CORE_PEER_TLS_ROOTCERT_FILE"))
    parser.add_argument("--log-level", default="ERROR", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    for name in ("", "fabric_chaincode_python", "fabric_shim"):
        logging.getLogger(name).setLevel(args.log_level)
    from fabric_chaincode_python.fabric_shim.logging import LOGGER  # type: ignore[import-untyped]

    LOGGER.setLevel(args.log_level)
    if not args.id or not args.address:
        parser.error("--id and --address (or CHAINCODE_ID and CHAINCODE_SERVER_ADDRESS) are required")
    build_chaincode().start(
        cc_id=args.id,
        address=args.address,
        key=_read(args.tls_key),
        cert=_read(args.tls_cert),
        client_ca_certs=_read(args.client_ca),
    )
