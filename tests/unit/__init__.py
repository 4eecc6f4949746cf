"""Unit tests: pure functions and in-memory objects, no database and no app.

Each test costs milliseconds (one forks the interpreter, one exports the SDL): the rules'
formulas against figures worked out by hand, the compiled execution path and the extensions
runner against Strawberry's own, server-made ids. The SQL-expression rules are evaluated in an
in-memory SQLite through SQLAlchemy Core, without migrations. Run them alone with
``pytest tests/unit``.
"""
