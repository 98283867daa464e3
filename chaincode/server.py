"""Run the license-registry contract as a real Fabric chaincode server (chaincode-as-a-service).

``python -m chaincode --id <package id> --address 127.0.0.1:9999`` starts the ``fabric-chaincode-python``
shim's gRPC server, which a Fabric peer configured for chaincode-as-a-service connects to (Fabric 2.4+
``ccaas`` builder). The environment variables the shim reads take precedence, as in every Fabric chaincode:
``CHAINCODE_ID`` and ``CHAINCODE_SERVER_ADDRESS``; TLS files come from ``--tls-key``/``--tls-cert``/
``--client-ca`` or ``CORE_TLS_CLIENT_KEY_PATH``/``CORE_TLS_CLIENT_CERT_PATH``/``CORE_PEER_TLS_ROOTCERT_FILE``.

The embedded ledger does not use this: it runs the same contract in process (:mod:`network.executor`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from fabric_chaincode_python.fabric_contract_api import ContractChaincode  # type: ignore[import-untyped]

from chaincode.contract import LicenseRegistry

__all__ = ["build_chaincode", "main"]


def build_chaincode() -> ContractChaincode:
    """The ``ContractChaincode`` holding :class:`LicenseRegistry`."""
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
    args = parser.parse_args(argv)
    if not args.id or not args.address:
        parser.error("--id and --address (or CHAINCODE_ID and CHAINCODE_SERVER_ADDRESS) are required")
    build_chaincode().start(
        cc_id=args.id,
        address=args.address,
        key=_read(args.tls_key),
        cert=_read(args.tls_cert),
        client_ca_certs=_read(args.client_ca),
    )
