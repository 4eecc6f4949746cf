"""GraphQL types, one module per domain.

A GraphQL type is built by its classmethod ``from_row``, from the row or service value it
shows (a type that needs a second source takes it as an extra argument of ``from_row``).
An input gives the service its value by ``to_value()``; a log input, whose value is the
record the JSON form sends, reaches its resolver as that record (``inputs.record_input``).
"""
