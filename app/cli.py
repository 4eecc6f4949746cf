"""`trainer-console`: serve, migrate, token, snapshot, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import uuid
from datetime import UTC, date, datetime, timedelta

from app.auth import Role, issue_token
from app.settings import Settings, get_settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from persistence.migrate import migrate_sync

    if args.workers > 1 and settings.coordination_backend == "memory":
        # Never silently per process: the engine limits and live updates would stop at each worker.
        if settings.is_sqlite:
            reason = (
                "the embedded SQLite database serves one worker (one file, one writer); set "
                "TRAINER_DATABASE_URL=postgresql://... to run several"
            )
        else:
            reason = (
                "TRAINER_COORDINATION=memory keeps the engine limits and live updates in each "
                "process; use auto, postgres or redis to run several"
            )
        print(f"trainer-console: --workers {args.workers} refused: {reason}", file=sys.stderr)
        return 2
    settings.check_safe()
    if args.workers > 1:
        # prometheus-client's multiprocess mode: every worker keeps its values in files there
        # and /metrics adds them up (app.observability); set before any worker imports it.
        from app.logformat import multiprocess_dir

        multiprocess_dir()
    migrate_sync(settings)
    demo = ""
    if args.demo:
        from app.demo import describe, seed_demo

        demo = describe(asyncio.run(seed_demo(settings)), settings)
    host = "localhost" if args.host in ("0.0.0.0", "127.0.0.1") else args.host
    print(f"trainer-console: database {settings.database_url}")
    print(f"trainer-console: limits and live updates shared through {settings.coordination_backend}")
    if not settings.is_production:
        print(f"GraphiQL:  http://{host}:{args.port}/graphql  (open it in a browser)")
        print("A token:   trainer-console token --role admin")
        print('           then add the header {"Authorization": "Bearer <token>"} in GraphiQL')
    if demo:
        print(demo)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        log_config=None,  # the app's JSON lines (app.observability), not uvicorn's own format
        access_log=False,  # one line per request comes from the app, with its request id
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


def _snapshot(args: argparse.Namespace, settings: Settings) -> int:
    """Build one UTC day's snapshots and aggregates, as buildSnapshots does (nightly job)."""
    from app.auth import Principal
    from app.errors import DomainError
    from app.services.analytics import BuildResult, build_snapshots
    from app.services.audit import AuditLog
    from persistence.db import Database

    day = args.date or (datetime.now(UTC) - timedelta(days=1)).date()
    principal = Principal(sub=args.by, role=Role.ADMIN)

    async def run() -> BuildResult:
        db = Database(settings)
        try:
            return await build_snapshots(
                db,
                AuditLog(settings.audit_secret),
                principal,
                day,
                rebuild=args.rebuild,
                quiz_pass_threshold=settings.quiz_pass_threshold,
                request_id=f"cli-snapshot-{uuid.uuid4().hex[:12]}",
            )
        finally:
            await db.dispose()

    try:
        result = asyncio.run(run())
    except DomainError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{n} {level.value}" for level, n in result.aggregates.items())
    verb = "rebuilt" if result.rebuilt else "built"
    print(f"{verb} {day.isoformat()}: {result.snapshots} snapshots; aggregates: {counts}")
    if result.later_days:
        print("cumulative xp/badges of later days start from this one; rebuild them too: ", end="")
        print(" ".join(later.isoformat() for later in result.later_days))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainer-console", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate the database and start the server")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)"
    )
    serve.add_argument("--port", type=int, default=8000, help="TCP port to listen on (default 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default 1); more than one needs PostgreSQL and a shared coordination",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="seed a few weeks of demo data (users, logs, events, snapshots) unless already there",
    )
    serve.set_defaults(run=_serve)

    sub.add_parser("migrate", help="create or upgrade the database schema").set_defaults(run=_migrate)

    token = sub.add_parser("token", help="print a development JWT")
    token.add_argument(
        "--role", required=True, choices=[r.value for r in Role], help="the role claim of the token"
    )
    token.add_argument("--sub", help="the subject (principal id); default <role>-dev")
    token.add_argument("--region-id", help="regionId claim (role region, or an engine's bound)")
    token.add_argument("--country-id", help="countryId claim (role country, or an engine's bound)")
    token.add_argument("--branch-id", help="branchId claim (role branch, or an engine's bound)")
    token.add_argument("--ttl", type=int, default=8 * 3600, help="seconds (default 8 hours)")
    token.set_defaults(run=_token)

    snapshot = sub.add_parser("snapshot", help="build a UTC day's snapshots and aggregates (nightly job)")
    snapshot.add_argument("--date", type=date.fromisoformat, help="YYYY-MM-DD (default: yesterday, UTC)")
    snapshot.add_argument("--rebuild", action="store_true", help="replace a day already built (audited)")
    snapshot.add_argument("--by", default="cli", help="who runs it, recorded as builtBy (default: cli)")
    snapshot.set_defaults(run=_snapshot)

    export = sub.add_parser("export-schema", help="write graphql_schema/schema.graphql")
    export.add_argument("--output", help="where to write the SDL (default graphql_schema/schema.graphql)")
    export.set_defaults(run=_export_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    if args.run is _serve:
        from app.logformat import configure_logging

        configure_logging(settings.log_level, settings.log_format)
    else:
        logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s %(message)s")
        logging.getLogger("alembic").setLevel(logging.WARNING)
    result: int = args.run(args, settings)
    return result


if __name__ == "__main__":
    sys.exit(main())
