"""Scheduled jobs of a node: anchoring, catch-up, reconciliation."""
