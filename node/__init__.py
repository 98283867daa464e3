"""The provincial and national node services (FastAPI, SQLAlchemy) and the `licledger` CLI."""
