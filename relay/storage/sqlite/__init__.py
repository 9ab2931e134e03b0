"""The SQLite backend (the default): one relay process on one database file.

connection.py: pragmas, the lock file, migrations, the writer thread with group commit,
the checkpointer, backup; sql.py: the write operations and their SQL; store.py: the Store
contract and the reads.
"""

from relay.storage.sqlite.connection import SCHEMA_VERSION, Sync, backup
from relay.storage.sqlite.store import SQLiteStore

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "Sync", "backup"]
