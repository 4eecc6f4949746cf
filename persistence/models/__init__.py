"""Table models, one module per domain. Importing this registers every table."""

from persistence.models.directory import UserRow
from persistence.models.logs import RAW_LOG_TABLES, EventLogRow, InteractionLogRow, SessionLogRow

__all__ = ["RAW_LOG_TABLES", "EventLogRow", "InteractionLogRow", "SessionLogRow", "UserRow"]
