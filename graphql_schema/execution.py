"""A faster completion of plain-data object types.

graphql-core completes every field of every object through its full machinery
(resolve info, middleware, awaitable checks): about 3 µs a field, so a page of
100 users with their performance profile costs milliseconds in completion
alone. Most of our output types are plain data built by ``from_row``: fields
without arguments or extensions. For those, this execution context
compiles the selection (aliases, fragments, ``@skip``/``@include`` already
collected by graphql-core) once per request into a closure tree that reads
attributes and serialises leaves directly.

A field with a synchronous resolver that takes no arguments (only ``self``
and perhaps ``info``) is called by the plan too, with a stand-in ``info`` that
carries the request's ``context`` and nothing else: a page of 100 users whose
``performance`` is such a resolver then completes as one closure call instead
of 100 rounds of graphql-core's field machinery (resolve info, extensions,
argument parsing, awaitable checks).

Anything unusual (a null in a non-null field, a resolver that returns an
awaitable, raises, or reads more of ``info`` than its context, an abstract
type, a field with arguments or extensions) falls back to graphql-core's own
path for that object, so errors, paths and nullability behave exactly as
before; the fast path only skips work whose outcome is already known. A
fallback runs the object's resolvers again, so the plan only calls resolvers
that read (every resolver of a query type here does).

A selection without directives collects the same subfields in every request
that sends its document (the parser cache hands out one document per text), so
its plan is kept for the process (``_SHARED_PLANS``); a selection with
``@skip``/``@include``/``@defer`` may depend on the variables, and is planned
per request.
"""

from __future__ import annotations

import inspect
import keyword
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfoHelpers,
    GraphQLScalarType,
    SelectionSetNode,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# a completer takes the value and the request's _PlanInfo (leaves ignore it)
Completer = Callable[[Any, Any], Any]
Resolve = Callable[[Any, Any], Any]

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


class _Fallback(Exception):
    """The fast path met something only graphql-core's own path handles."""


_FALLBACK = _Fallback()


class _PlanInfo:
    """What a planned resolver gets as ``info``: the request's context, nothing else. Reading
    anything more raises AttributeError, and the object falls back to graphql-core's path,
    which passes the real thing."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


_UNPLANNED = object()
_SHARED_PLANS_LIMIT = 1024
# (type, field nodes) by identity -> (the type and nodes, kept so their ids stay theirs; the plan)
_SHARED_PLANS: dict[tuple[int, tuple[int, ...]], tuple[Any, Completer | None]] = {}


def _without_directives(
    selection_set: SelectionSetNode | None, fragments: dict[str, Any], seen: set[str]
) -> bool:
    """No directive below, fragments included: what is collected depends on nothing else."""
    if selection_set is None:
        return True
    for selection in selection_set.selections:
        if selection.directives:
            return False
        if isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if getattr(selection, "arguments", None) or name not in fragments:
                return False
            if name not in seen:
                seen.add(name)
                definition = fragments[name].definition
                if definition.directives or not _without_directives(
                    definition.selection_set, fragments, seen
                ):
                    return False
        elif not _without_directives(getattr(selection, "selection_set", None), fragments, seen):
            return False
    return True


def _python_name(field: GraphQLField) -> str | None:
    """The attribute behind a plain data field, or None if the field computes anything."""
    definition = (field.extensions or {}).get("strawberry-definition")
    if definition is None or field.args:
        return None
    if getattr(definition, "base_resolver", None) is not None or definition.extensions:
        return None
    name: str = definition.python_name
    return name


def _resolver(field: GraphQLField) -> Resolve | None:
    """A call of the field's resolver as (source, info), if it is synchronous and takes nothing
    but ``self`` and ``info``; None otherwise."""
    definition = (field.extensions or {}).get("strawberry-definition")
    resolver = getattr(definition, "base_resolver", None)
    if definition is None or resolver is None or field.args or definition.extensions or resolver.is_async:
        return None
    if resolver.arguments or resolver.root_parameter is not None or resolver.parent_parameter is not None:
        return None
    func = resolver.wrapped_func
    if not callable(func):
        return None
    takes_self = resolver.self_parameter is not None
    info_name = resolver.info_parameter.name if resolver.info_parameter is not None else None
    isawaitable = inspect.isawaitable

    def resolve(source: Any, info: _PlanInfo) -> Any:
        args = (source,) if takes_self else ()
        value = func(*args, **{info_name: info}) if info_name else func(*args)
        if isawaitable(value):
            close = getattr(value, "close", None)
            if close is not None:  # a coroutine never awaited: close it, quietly
                close()
            raise _FALLBACK
        return value

    return resolve


def _typename(name: str) -> Resolve:
    def resolve(_source: Any, _info: Any) -> str:
        return name

    return resolve


# what the generated code inlines for a leaf: the value passes as is when this holds
_INLINE = {
    "Int": "type({v}) is int and _INT_MIN <= {v} <= _INT_MAX",
    "Float": "type({v}) is float",
    "String": "type({v}) is str",
    "Boolean": "type({v}) is bool",
}


def _leaf(leaf_type: GraphQLScalarType | GraphQLEnumType) -> Completer:
    serialize = leaf_type.serialize

    def complete_leaf(value: Any, _info: Any = None) -> Any:
        return serialize(value)

    if isinstance(leaf_type, GraphQLScalarType) and leaf_type.name in _INLINE:
        complete_leaf.inline = _INLINE[leaf_type.name]  # type: ignore[attr-defined]
    return complete_leaf


def _string(value: Any, _info: Any = None) -> Any:
    return value


_string.inline = _INLINE["String"]  # type: ignore[attr-defined]

Step = tuple[str, str | None, Resolve | None, Completer, bool]


def _compile(type_name: str, steps: list[Step]) -> Completer:
    """The plan of one object as straight-line Python, made once per selection: a field costs
    an attribute read (or a resolver call), a None check and, for a leaf, a type check,
    instead of a loop over steps with a call per value."""
    names: dict[str, Any] = {"_FALLBACK": _FALLBACK, "_INT_MIN": _INT_MIN, "_INT_MAX": _INT_MAX}
    lines = ["def complete(source, info):"]
    keys = []
    for i, (key, attribute, resolve, completer, non_null) in enumerate(steps):
        v = f"v{i}"
        names[f"c{i}"] = completer
        if attribute is not None and attribute.isidentifier() and not keyword.iskeyword(attribute):
            lines.append(f"    {v} = source.{attribute}")
        elif attribute is not None:
            names[f"a{i}"] = attribute
            lines.append(f"    {v} = getattr(source, a{i})")
        else:
            names[f"r{i}"] = resolve
            lines.append(f"    {v} = r{i}(source, info)")
        inline = getattr(completer, "inline", None)
        convert = f"not ({inline.format(v=v)})" if inline else "True"
        call = f"c{i}({v})" if inline else f"c{i}({v}, info)"
        if non_null:
            lines.append(f"    if {v} is None:\n        raise _FALLBACK")
            lines.append(f"    if {convert}:\n        {v} = {call}")
        else:
            lines.append(f"    if {v} is not None and {convert}:\n        {v} = {call}")
        keys.append(f"{key!r}: {v}")
    lines.append(f"    return {{{', '.join(keys)}}}")
    exec(compile("\n".join(lines), f"<plan of {type_name}>", "exec"), names)
    complete: Completer = names["complete"]
    return complete


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        """No "Did you mean …?" in variable-coercion errors either (an unknown field of an
        input object sent through variables): suggestions would spell out the schema."""
        kwargs["hide_suggestions"] = True
        return super().build(*args, **kwargs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # graphql-core stores two of the executor's own bound methods on it: a reference
        # cycle that keeps each request's whole execution state (context, variables,
        # results) alive until a cyclic garbage collection, the costliest part of a
        # small request under load. A weak reference back breaks it: a request's
        # objects are freed as soon as it is answered.
        executor = weakref.ref(self)

        def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
            return executor().gather_async_work(values)  # type: ignore[union-attr]

        def track(values: Sequence[Any]) -> None:
            executor().track_async_work(values)  # type: ignore[union-attr]

        self.async_helpers = GraphQLResolveInfoHelpers(gather=gather, track=track)

    def _plan_object(
        self, object_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> Completer | None:
        grouped, _defer_usages, _forbidden = self.collect_subfields(object_type, field_details_list)
        steps: list[Step] = []
        for key, details in grouped.items():
            name = details[0].node.name.value
            if name == "__typename":
                steps.append((key, None, _typename(object_type.name), _string, True))
                continue
            field = object_type.fields.get(name)
            if field is None:
                return None
            attribute = _python_name(field)
            resolve = None if attribute is not None else _resolver(field)
            if attribute is None and resolve is None:
                return None
            completer = self._plan_type(field.type, details)
            if completer is None:
                return None
            steps.append((key, attribute, resolve, completer, isinstance(field.type, GraphQLNonNull)))

        return _compile(object_type.name, steps)

    def _plan_type(
        self, output_type: GraphQLOutputType, field_details_list: FieldDetailsList
    ) -> Completer | None:
        if isinstance(output_type, GraphQLNonNull):
            return self._plan_type(output_type.of_type, field_details_list)
        if isinstance(output_type, GraphQLList):
            item_type = output_type.of_type
            inner = self._plan_type(item_type, field_details_list)
            if inner is None:
                return None
            items_non_null = isinstance(item_type, GraphQLNonNull)

            def complete_list(values: Any, info: _PlanInfo) -> list[Any]:
                if isinstance(values, str | bytes | dict) or not hasattr(values, "__iter__"):
                    raise _FALLBACK
                out: list[Any] = []
                for value in values:
                    if value is None:
                        if items_non_null:
                            raise _FALLBACK
                        out.append(None)
                    else:
                        out.append(inner(value, info))
                return out

            return complete_list
        if isinstance(output_type, GraphQLScalarType | GraphQLEnumType):
            return _leaf(output_type)
        if isinstance(output_type, GraphQLObjectType) and output_type.is_type_of is None:
            return self._plan_object(output_type, field_details_list)
        return None

    def _shared_plan(self, return_type: GraphQLObjectType, field_details_list: FieldDetailsList) -> Any:
        """The process's plan for these field nodes, or _UNPLANNED if they have directives."""
        nodes = tuple(details.node for details in field_details_list)
        key = (id(return_type), tuple(map(id, nodes)))
        found = _SHARED_PLANS.get(key)
        if found is not None:
            return found[1]
        if any(details.defer_usage or details.fragment_variable_values for details in field_details_list):
            return _UNPLANNED
        if not all(
            isinstance(node, FieldNode)
            and not node.directives
            and _without_directives(node.selection_set, self.fragments, set())
            for node in nodes
        ):
            return _UNPLANNED
        plan = self._plan_object(return_type, field_details_list)
        if len(_SHARED_PLANS) >= _SHARED_PLANS_LIMIT:
            _SHARED_PLANS.clear()
        _SHARED_PLANS[key] = ((return_type, nodes), plan)
        return plan

    def _new_plan_info(self) -> _PlanInfo:
        info = self.__dict__["_plan_info"] = _PlanInfo(self.context_value)
        return info

    def collect_and_execute_subfields(
        self,
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        plans: dict[tuple[str, int], Any] = self.__dict__.setdefault("_fast_plans", {})
        key = (return_type.name, id(field_details_list))
        plan = plans.get(key, _UNPLANNED)
        if plan is _UNPLANNED:
            plan = self._shared_plan(return_type, field_details_list)
            if plan is _UNPLANNED:
                plan = self._plan_object(return_type, field_details_list)
            # keep the list alive with its plan, so its id is not reused in this request
            plans[key] = plan
            plans[(return_type.name, -id(field_details_list))] = field_details_list
        if plan is not None:
            try:
                return plan(result, self.__dict__.get("_plan_info") or self._new_plan_info())
            except Exception as error:  # _Fallback, or an error graphql-core will report properly
                # the one _FALLBACK would otherwise keep its last traceback, and with it the
                # frames, values and context of the request that raised it last
                error.__traceback__ = None
        return super().collect_and_execute_subfields(
            return_type, field_details_list, path, result, position_context
        )
