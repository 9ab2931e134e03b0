"""The PostgreSQL backend: several relay processes sharing one database (SPEC section 7).

connection.py: the pool, migrations, driver errors, group commit; sql.py: the write
operations and their SQL; store.py: the Store contract and the reads; cluster.py: the
heartbeat, wake-ups and `nodes`.
"""

from relay.storage.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
