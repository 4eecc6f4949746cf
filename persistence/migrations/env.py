"""Alembic environment: runs on the connection handed over by persistence.migrate."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import persistence.models  # noqa: F401 - registers every table on the metadata

target_metadata = SQLModel.metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `trainer-console migrate`")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run()
