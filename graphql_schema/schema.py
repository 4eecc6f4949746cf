"""Composes the per-domain root types and configures protection and caching."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import strawberry
from graphql.error import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from app.settings import Settings
from graphql_schema.errors import log_internal_errors
from graphql_schema.execution import FastExecutionContext
from resolvers.directory import DirectoryMutation, DirectoryQuery

SDL_PATH = Path(__file__).with_name("schema.graphql")

Query = merge_types("Query", (DirectoryQuery,))
Mutation = merge_types("Mutation", (DirectoryMutation,))


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Client mistakes are answered, not logged as server errors; our bugs are."""
        log_internal_errors(errors)


def build_schema(settings: Settings) -> strawberry.Schema:
    # The limit rules are made once, so the validation cache (keyed by the rule
    # classes) hits; Strawberry's limiter extensions would make new ones per request.
    limits = [
        depth_rule(settings.max_query_depth, None, None),
        alias_rule(settings.max_aliases),
    ]
    # Factories, not instances: Strawberry then makes fresh extensions per request.
    extensions: list[Callable[[], SchemaExtension]] = [
        partial(MaxTokensLimiter, max_token_count=settings.max_tokens),
        partial(AddValidationRules, limits),
        partial(ParserCache, maxsize=512),
        partial(ValidationCache, maxsize=512),
    ]
    if settings.is_production:
        extensions.append(DisableIntrospection)
    kwargs: dict[str, Any] = {
        "query": Query,
        "mutation": Mutation,
        "extensions": extensions,
        "config": StrawberryConfig(disable_field_suggestions=True),
        "execution_context_class": FastExecutionContext,
    }
    return Schema(**kwargs)


def export_sdl(settings: Settings | None = None) -> str:
    return build_schema(settings or Settings()).as_str() + "\n"
