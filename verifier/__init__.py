"""The cross-region verifier: trust core, CLI and verification service."""
