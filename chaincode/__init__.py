"""The license-registry contract (Hyperledger Fabric contract API), shared by both ledger backends."""
