"""Alembic migrations of the provincial node's database (run by node.db.migrate)."""
