"""The PostgreSQL backend: several relay processes sharing one database (SPEC section 7).

connection.py: the pool, migrations, driver errors, group commit; sql.py: the write
operations and their SQL; store.py: the Store contract, heartbeat and wake-ups.
"""

from relay.storage.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
