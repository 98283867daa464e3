"""The ledger: peers, ordering, membership and local multi-node networks."""
