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

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
    validate,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

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


def expanded_fields(document: DocumentNode) -> int:
    """How many fields the document holds with every fragment spread expanded, in time linear
    in its size (each fragment is counted once, then multiplied). A spread that would close a
    cycle counts 0: validation refuses cycles anyway."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    sizes: dict[str, int] = {}
    total = 0
    for definition in document.definitions:
        selection_set = getattr(definition, "selection_set", None)
        if selection_set is not None and not isinstance(definition, FragmentDefinitionNode):
            total += _size(selection_set, fragments, sizes, set())
    return total


def _size(
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    sizes: dict[str, int],
    open_: set[str],
) -> int:
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            total += 1
            if selection.selection_set is not None:
                total += _size(selection.selection_set, fragments, sizes, open_)
        elif isinstance(selection, InlineFragmentNode):
            total += _size(selection.selection_set, fragments, sizes, open_)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in sizes and name in fragments and name not in open_:
                open_.add(name)
                sizes[name] = _size(fragments[name].selection_set, fragments, sizes, open_)
                open_.discard(name)
            total += sizes.get(name, 0)
    return total


def _check_expansion(document: DocumentNode, limit: int) -> list[GraphQLError] | None:
    fields = expanded_fields(document)
    if fields > limit:
        return [GraphQLError(f"the document expands to {fields} fields, over the limit of {limit}")]
    return None


class Documents:
    """What the extension needs, made once per schema."""

    def __init__(self, settings: Settings) -> None:
        self.max_tokens = settings.max_tokens
        self.max_expanded_fields = settings.max_expanded_fields
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
            limit = self.documents.max_expanded_fields
            named = context._provided_operation_name is not None
            context.pre_execution_errors = self.documents.validations.get(
                document,
                (id(schema), named),
                lambda: _validate(schema, document, rules, limit, named),
            )
        yield


def validate_document(
    schema: GraphQLSchema, document: DocumentNode, rules: tuple[type[ASTValidationRule], ...]
) -> list[GraphQLError]:
    """Strawberry's validation (its rules after graphql-core's and ours), without the
    "Did you mean …?" suggestions that would spell out the schema to a guessing caller."""
    return validate(
        schema, document, (*rules, MaybeNullValidationRule, OneOfInputValidationRule), hide_suggestions=True
    )


def _validate(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
    limit: int,
    named: bool,
) -> list[GraphQLError]:
    """Always a list, ``[]`` when valid: ``None`` tells Strawberry that no extension validated,
    and it would validate the whole document again on every request."""
    return (
        _check_expansion(document, limit)
        or validate_document(schema, document, rules)
        or _unnamed_choice(document, named)
        or []
    )


def _unnamed_choice(document: DocumentNode, named: bool) -> list[GraphQLError] | None:
    """Strawberry runs the first of several operations when the request names none; the
    GraphQL spec (GetOperation) says that request is an error."""
    if named:
        return None
    operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
    if operations > 1:
        return [GraphQLError("Must provide operation name if query contains multiple operations.")]
    return None
