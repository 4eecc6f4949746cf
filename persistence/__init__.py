"""Database access: engine, sessions, table models and migrations."""
