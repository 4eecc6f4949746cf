"""`trainer-console`: serve, migrate, token, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from app.auth import Role, issue_token
from app.settings import Settings, get_settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from persistence.migrate import migrate_sync

    settings.check_safe()
    migrate_sync(settings)
    if args.demo:
        from app.demo import seed_demo

        asyncio.run(seed_demo(settings))
    host = "localhost" if args.host in ("0.0.0.0", "127.0.0.1") else args.host
    print(f"trainer-console: database {settings.database_url}")
    if not settings.is_production:
        print(f"GraphiQL:  http://{host}:{args.port}/graphql  (open it in a browser)")
        print("A token:   trainer-console token --role admin")
        print('           then add the header {"Authorization": "Bearer <token>"} in GraphiQL')
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
    )
    return 0


def _migrate(_: argparse.Namespace, settings: Settings) -> int:
    from persistence.migrate import migrate_sync

    migrate_sync(settings)
    print(f"schema at head: {settings.database_url}")
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    role = Role(args.role)
    token = issue_token(
        settings,
        sub=args.sub or f"{role.value}-dev",
        role=role,
        region_id=args.region_id,
        country_id=args.country_id,
        branch_id=args.branch_id,
        ttl_seconds=args.ttl,
    )
    print(token)
    return 0


def _export_schema(args: argparse.Namespace, settings: Settings) -> int:
    from graphql_schema.schema import SDL_PATH, export_sdl

    path = args.output or SDL_PATH
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(export_sdl(settings))
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainer-console", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate the database and start the server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--demo", action="store_true", help="seed a few demo users")
    serve.set_defaults(run=_serve)

    sub.add_parser("migrate", help="create or upgrade the database schema").set_defaults(run=_migrate)

    token = sub.add_parser("token", help="print a development JWT")
    token.add_argument("--role", required=True, choices=[r.value for r in Role])
    token.add_argument("--sub")
    token.add_argument("--region-id")
    token.add_argument("--country-id")
    token.add_argument("--branch-id")
    token.add_argument("--ttl", type=int, default=8 * 3600, help="seconds (default 8 hours)")
    token.set_defaults(run=_token)

    export = sub.add_parser("export-schema", help="write graphql_schema/schema.graphql")
    export.add_argument("--output")
    export.set_defaults(run=_export_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    result: int = args.run(args, settings)
    return result


if __name__ == "__main__":
    sys.exit(main())
