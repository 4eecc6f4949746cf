"""The Info type every resolver receives, typed with our Context."""

from __future__ import annotations

import strawberry

from graphql_schema.context import Context

Info = strawberry.Info[Context, None]
