"""The SQLite backend (the default): one relay process on one database file.

connection.py: the writing connection's pragmas, the lock file, backup; schema.py: the
migrations; writer.py: the writer thread with group commit; checkpoint.py: the
checkpointer and the free-space watch; sql.py: the write operations and their SQL;
store.py: the Store contract and the reads.
"""

from relay.storage.sqlite.connection import backup
from relay.storage.sqlite.schema import SCHEMA_VERSION
from relay.storage.sqlite.store import SQLiteStore
from relay.storage.sqlite.writer import Sync

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "Sync", "backup"]
