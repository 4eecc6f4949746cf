"""Each distinct document is parsed and validated once, with the request limits in force.

One extension instead of Strawberry's four (token limit, extra validation rules,
parser cache, validation cache): Strawberry sets up every extension's hooks on
every request, which cost a quarter of a small request with five extensions.
The limit rules are built once, so cached validations stay valid.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import suppress
from functools import lru_cache
from typing import Generic, TypeVar

from graphql import ASTValidationRule, DocumentNode, GraphQLError, parse
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.schema import validate_document

from app.settings import Settings

CACHE_SIZE = 512


@lru_cache(maxsize=CACHE_SIZE)
def _parse(query: str, max_tokens: int) -> DocumentNode:
    return parse(query, max_tokens=max_tokens)


V = TypeVar("V")


class ByDocument(Generic[V]):
    """Values worked out once per parsed document (the parser cache hands out one object per
    text), by identity: a document's own hash walks its whole tree. Least recently used
    entries go first."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[int, Hashable], tuple[DocumentNode, V]] = OrderedDict()

    def get(self, document: DocumentNode, extra: Hashable, compute: Callable[[], V]) -> V:
        key = (id(document), extra)
        found = self._entries.get(key)
        if found is not None and found[0] is document:
            self._entries.move_to_end(key)
            return found[1]
        value = compute()
        self._entries[key] = (document, value)  # holding the document keeps its id unique
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return value


class Documents:
    """What the extension needs, made once per schema."""

    def __init__(self, settings: Settings) -> None:
        self.max_tokens = settings.max_tokens
        extra: list[type[ASTValidationRule]] = [
            depth_rule(settings.max_query_depth, None, None),
            alias_rule(settings.max_aliases),
        ]
        if settings.is_production:
            extra.append(NoSchemaIntrospectionCustomRule)
        self.extra_rules = tuple(extra)
        self.validations: ByDocument[list[GraphQLError]] = ByDocument()

    def extension(self) -> PreparedDocuments:
        return PreparedDocuments(self)


class PreparedDocuments(SchemaExtension):
    def __init__(self, documents: Documents) -> None:
        self.documents = documents

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self.documents.max_tokens
        if context.graphql_document is None and context.query:
            # on a syntax error Strawberry parses again itself and reports it the usual way
            with suppress(GraphQLError):
                context.graphql_document = _parse(context.query, self.documents.max_tokens)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            schema = context.schema._schema
            rules = (*context.validation_rules, *self.documents.extra_rules)
            context.pre_execution_errors = self.documents.validations.get(
                document, id(schema), lambda: validate_document(schema, document, rules)
            )
        yield
