"""Table models, one module per domain. Importing this registers every table."""

from persistence.models.directory import UserRow

__all__ = ["UserRow"]
