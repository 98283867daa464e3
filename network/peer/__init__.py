"""The embedded peer: its own hash-chained block store and world state, the commit loop and the HTTP API.

Modules, one job each (after Hyperledger Fabric's ``core/ledger`` / ``core/peer`` split):

* :mod:`network.peer.blocks`: the block format and its SM3 hash chain; pure functions, no I/O.
* :mod:`network.peer.store`: the block store and world state in one SQL database (SQLAlchemy 2).
* :mod:`network.peer.peer`: the commit loop, validation through the executor, checkpoint duties.
* :mod:`network.peer.bootstrap`: fetching blocks from another peer and re-verifying every one of them.
* :mod:`network.peer.api`: the HTTP API (FastAPI).
* :mod:`network.peer.__main__`: the process entry point used by ``licledger network up``.
"""
