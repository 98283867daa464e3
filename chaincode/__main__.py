"""``python -m chaincode``: start the contract as a Fabric chaincode server (see :mod:`chaincode.server`)."""

from chaincode.server import main

main()
