"""The one way a GraphQL input becomes the service's value.

An input reaches its resolver as Strawberry builds it and gives the service its value by
``to_value()`` (``ScopeFilterInput.to_value() -> ScopeFilter``). A log input is the exception
that proves it: its service value is the record the JSON form (``recordsJson``) sends, the
camelCase dict the log services validate and hash, so it is declared with ``@record_input``
and reaches its resolver as that record, typed as such:
``Annotated[Record, strawberry.argument(graphql_type=TheInput)]`` (the schema shows the
input, the resolver is told it gets the record).

graphql-core has already coerced every field to its declared type and left out the ones the
client omitted, which is exactly the record. Strawberry's generic conversion into dataclasses
(which ``to_value()`` would then turn back into a dict) costs about 1.2 M instructions for one
``ScenarioLogInput``, more than half of a whole ``logScenario``; handing over graphql-core's
value costs a copy. ``StrawberryObjectDefinition.from_input`` is Strawberry's documented hook
for this: integrations that build their own type definitions (``strawberry.pydantic``) pass
it when they create the definition, as ``record_input`` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import strawberry
from strawberry.types.base import get_object_definition

Record = dict[str, Any]
"""A log record as the JSON form sends it: camelCase keys, omitted fields absent."""

InputT = TypeVar("InputT", bound=type)


def _record(_cls: type, value: Mapping[str, Any], _context: object) -> Record:
    return dict(value)


def record_input(*, description: str) -> Callable[[InputT], InputT]:
    """A ``strawberry.input`` whose value reaches resolvers as its ``Record``."""

    def define(cls: InputT) -> InputT:
        typed = strawberry.input(cls, description=description)
        definition = get_object_definition(typed, strict=True)
        typed.__strawberry_definition__ = dataclasses.replace(  # type: ignore[attr-defined]
            definition, from_input=_record
        )
        return typed

    return define
