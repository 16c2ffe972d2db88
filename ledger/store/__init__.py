"""The ledger database: SQLAlchemy models, engine, migrations and ledger queries."""
