"""What `lint-imports` (the contracts in pyproject.toml) cannot see: import circles between single
modules (TYPE_CHECKING imports count: a reader follows them too), and the migrations, which are
no package and must import no project code but the DDL helpers (an old migration's meaning must
not change when service code does)."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

PACKAGES = ("app", "graphql_schema", "resolvers", "persistence")
VERSIONS = Path(__file__).parents[2] / "persistence" / "migrations" / "versions"
# the standard library's, SQLAlchemy, Alembic and the append-only DDL
MIGRATION_IMPORTS = ("__future__", "collections", "datetime", "typing", "sqlalchemy", "alembic")
DDL_HELPERS = ("persistence.append_only",)


def _allowed(module: str) -> bool:
    return any(module == ok or module.startswith(ok + ".") for ok in (*MIGRATION_IMPORTS, *DDL_HELPERS))


def test_no_module_is_part_of_an_import_circle():
    # given
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    # when: an import whose target leads back to the importer closes a circle
    circles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                circles.append(" -> ".join((importer, *back)))
    # then
    assert circles == []


def test_migrations_import_no_project_code_but_the_ddl_helpers():
    # given
    found: dict[str, set[str]] = {}
    for path in sorted(VERSIONS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {node.module or ""}
            else:
                continue
            found.setdefault(path.name, set()).update(names)
    # when
    outside = {name: sorted(m for m in modules if not _allowed(m)) for name, modules in found.items()}
    # then
    assert len(found) >= 7
    assert {name: modules for name, modules in outside.items() if modules} == {}
