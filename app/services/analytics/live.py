"""The live deriver: newly committed raw records -> per-(user, day) counters -> per-path sums.

A *fold* is one transaction:

1. it takes the deriver's lock (PostgreSQL: a transaction advisory lock, then the
   ``live_state`` row FOR UPDATE; SQLite: its first statement writes ``live_state``,
   which takes the database's single write lock), so one fold runs at a time across
   every process; a process that dies mid-fold rolls back and frees the lock;
2. it reads the watermark of the previous fold and takes a new one;
3. it folds the records committed in between, set-based: one
   ``INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE`` into ``live_user_day``,
   one insert of the day's badges, and the touched scope paths of ``live_path_day``
   summed again from ``live_user_day`` (never from the raw logs);
4. it stores the new watermark, and commits: counters and watermark together, so each
   record is applied exactly once, whoever folds next.

Watermarks. SQLite has one writer: a record's ``seq`` order is commit order, and a fold
holding the write lock sees every record below the current maximum committed. PostgreSQL
assigns ``seq`` at INSERT, so a lower seq may commit after a higher one. There every raw
row carries its inserting transaction's id (``txid``, a column default), and the
watermark is a ``pg_current_snapshot()``: a fold applies exactly the rows whose
transaction is visible in its snapshot and was not in the previous one. Visibility only
grows, so a transaction that commits late is applied by the first fold that sees it,
and never twice; a transaction still in progress holds nobody back.

Days. ``live_day`` records per UTC day the quiz pass threshold its counters use. A record
for a day already built (``snapshot_build``) marks that day stale: its KPIs say so until
``buildSnapshots(date, rebuild: true)``.

The quiz pass threshold (a setting): the counters of a day that is not built are counted
again from that day's already folded records when a deriver runs with another threshold
(at its next fold). A built day keeps the threshold it was built with, in its snapshots
and its counters; a late record for it is counted with that same threshold. Only
``rebuild: true`` recounts it with the current one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.schema import CreateTable

from app.services.analytics.rules import (
    BADGE_PREFIX,
    LOGIN,
    MODULE_COMPLETE,
    MODULE_START,
    QUIZ,
    REWARD_CLAIM,
    SALESLAB,
)
from app.services.analytics.statements import (
    EVENT_SOURCE,
    INTERACTION_SOURCE,
    SESSION_SOURCE,
    Day,
    Dialect,
)
from app.services.analytics.tables import BUILDS, EVENTS, INTERACTIONS, SESSIONS, SNAPSHOTS, count_if
from persistence.db import Database
from persistence.models.live import (
    LIVE_DAY,
    LIVE_PATH_DAY,
    LIVE_STATE,
    LIVE_USER_BADGE,
    LIVE_USER_DAY,
    PATH_COUNTERS,
    SCOPE,
    USER_COUNTERS,
    VERSIONS,
)
from persistence.prepared import as_text

log = logging.getLogger("trainer_console.analytics.live")

STATE = "deriver"
# The broker topic a fold that changed counters publishes (kpisUpdated listens to it).
KPIS_TOPIC = "kpis"
# pg_advisory_xact_lock key of the deriver ("LIVE" in ASCII).
LOCK_KEY = 0x4C495645
# (log, its time column, source, its watermark column in live_state)
LOGS = (
    (EVENTS, EVENTS.c.ts, EVENT_SOURCE, "event_seq"),
    (INTERACTIONS, INTERACTIONS.c.ts, INTERACTION_SOURCE, "interaction_seq"),
    (SESSIONS, SESSIONS.c.end_time, SESSION_SOURCE, "session_seq"),
)

_latest_lag: float | None = None


def latest_lag_seconds() -> float | None:
    """The lag of this process's latest fold: from the oldest record it applied being received
    (its ingest transaction, just before COMMIT) to the fold's COMMIT. None before any fold."""
    return _latest_lag


@dataclass(frozen=True, slots=True)
class Watermark:
    """What a fold has applied: a PostgreSQL snapshot, or the last seq of each log (SQLite)."""

    xmin: int = 0
    xmax: int = 0
    xip: tuple[int, ...] = ()
    seqs: dict[str, int] = field(default_factory=dict)
    empty: bool = True  # nothing folded yet (PostgreSQL)

    @classmethod
    def parse(cls, text: str | None) -> Watermark:
        if not text:
            return cls()
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), tuple(int(x) for x in xip.split(",") if x), empty=False)

    def text(self) -> str:
        return f"{self.xmin}:{self.xmax}:{','.join(str(x) for x in self.xip)}"

    def sees(self, table: sa.Table, column: str) -> sa.ColumnElement[bool]:
        """The rows of ``table`` this watermark has applied."""
        if self.seqs:
            return table.c.seq <= self.seqs[column]
        txid = table.c.txid
        if self.empty:
            return txid.is_(None)
        return sa.or_(txid.is_(None), sa.and_(txid < self.xmax, txid.not_in(self.xip)))

    def new_rows(self, previous: Watermark) -> tuple[dict[str, Any], dict[str, Any], str]:
        """Per log, the rows this watermark sees and ``previous`` did not, spelt with named
        parameters: the same SQL on every fold (rendered once, see ``_run``), with the values in
        the returned parameters. The third item names the SQL's shape (the key its rendering is
        kept under)."""
        big = sa.BigInteger()
        where: dict[str, Any] = {}
        if self.seqs:
            params: dict[str, Any] = {}
            for table, _ts, _source, column in LOGS:
                seq = table.c.seq
                after, upto = f"{column}_after", f"{column}_upto"
                where[column] = sa.and_(
                    seq > sa.bindparam(after, type_=big), seq <= sa.bindparam(upto, type_=big)
                )
                params |= {after: previous.seqs.get(column, 0), upto: self.seqs[column]}
            return where, params, "seq"
        ids = postgresql.ARRAY(sa.BigInteger)
        params = {"xmax": self.xmax, "xip": list(self.xip)}
        if not previous.empty:
            params |= {"prev_xmin": previous.xmin, "prev_xmax": previous.xmax, "prev_xip": list(previous.xip)}
        for table, _ts, _source, column in LOGS:
            txid = table.c.txid
            now = sa.and_(
                txid < sa.bindparam("xmax", type_=big), txid != sa.all_(sa.bindparam("xip", type_=ids))
            )
            if previous.empty:
                where[column] = sa.or_(txid.is_(None), now)
                continue
            new = sa.or_(
                txid >= sa.bindparam("prev_xmax", type_=big),
                txid == sa.any_(sa.bindparam("prev_xip", type_=ids)),
            )
            # below previous.xmin every transaction had ended, so was visible to ``previous``
            where[column] = sa.and_(txid >= sa.bindparam("prev_xmin", type_=big), new, now)
        return where, params, "first" if previous.empty else "txid"


@dataclass(frozen=True, slots=True)
class Fold:
    records: int
    days: frozenset[date]
    recounted: frozenset[date]
    lag_seconds: float | None
    folded_at: datetime


def _insert(sql: Dialect, table: sa.Table) -> Any:
    return (postgresql.insert if sql.postgres else sqlite.insert)(table)


_RENDERED: dict[tuple[str, str], sa.TextClause] = {}


async def _run(
    session: AsyncSession, key: str | None, build: Callable[[], Any], params: dict[str, Any] | None = None
) -> Any:
    """Execute a statement of a fold. With ``key``, it is rendered to SQL once per dialect and
    kept: SQLAlchemy compiles an ``INSERT ... ON CONFLICT`` on every execution (no cache key),
    and a fold's took tens of milliseconds, whatever the number of new records. Without, it
    is built and compiled as usual (``recount``: its day lists vary)."""
    conn = await session.connection()
    if key is None:
        return await conn.execute(build(), params)
    dialect = conn.dialect.name
    statement = _RENDERED.get((dialect, key))
    if statement is None:
        statement = _RENDERED[(dialect, key)] = as_text(build(), dialect)
    return await conn.execute(statement, params)


class _Temp:
    """Temporary tables of one fold (made and dropped inside its transaction)."""

    def __init__(self) -> None:
        meta = sa.MetaData()
        self.users = sa.Table(
            "live_fold_users",
            meta,
            sa.Column("day", sa.Date()),
            sa.Column("user_id", sa.String(128)),
            sa.Column("n", sa.BigInteger()),
            sa.Column("first_received", sa.DateTime(timezone=True)),
            prefixes=["TEMPORARY"],
            postgresql_on_commit="DROP",
        )
        self.paths = sa.Table(
            "live_fold_paths",
            meta,
            sa.Column("day", sa.Date()),
            *(sa.Column(name, sa.String(128)) for name in SCOPE),
            prefixes=["TEMPORARY"],
            postgresql_on_commit="DROP",
        )
        self.meta = meta
        self._ddl: dict[str, list[str]] = {}

    async def create(self, session: AsyncSession) -> None:
        """``CREATE TEMPORARY TABLE IF NOT EXISTS``: PostgreSQL drops them at COMMIT; a SQLite
        connection keeps them, empty, for its next fold (no DDL per fold)."""
        conn = await session.connection()
        ddl = self._ddl.get(conn.dialect.name)
        if ddl is None:
            ddl = self._ddl[conn.dialect.name] = [
                str(CreateTable(table, if_not_exists=True).compile(dialect=conn.dialect))
                for table in self.meta.sorted_tables
            ]
        for statement in ddl:
            await conn.exec_driver_sql(statement)

    async def drop(self, session: AsyncSession) -> None:
        conn = await session.connection()
        for table in self.meta.sorted_tables:
            await conn.execute(sa.delete(table))


TEMP = _Temp()


async def _lock(session: AsyncSession, sql: Dialect, holder: str, wait: bool) -> dict[str, Any] | None:
    """Take the deriver's lock for this transaction and return ``live_state`` (None: busy)."""
    state = LIVE_STATE.c
    if sql.postgres:
        fn = sa.func.pg_advisory_xact_lock if wait else sa.func.pg_try_advisory_xact_lock
        got = await session.scalar(sa.select(fn(LOCK_KEY)))
        if not wait and not got:
            return None
        row = (
            (await session.execute(sa.select(LIVE_STATE).where(state.name == STATE).with_for_update()))
            .mappings()
            .one()
        )
        return dict(row)
    await session.execute(sa.update(LIVE_STATE).where(state.name == STATE).values(holder=holder))
    return dict((await session.execute(sa.select(LIVE_STATE).where(state.name == STATE))).mappings().one())


async def _current(session: AsyncSession, sql: Dialect) -> Watermark:
    if sql.postgres:
        return Watermark.parse(await session.scalar(sa.text("SELECT pg_current_snapshot()::text")))
    latest = (
        await session.execute(
            sa.select(
                *(
                    sa.select(sa.func.coalesce(sa.func.max(table.c.seq), 0)).scalar_subquery()
                    for table, _ts, _source, _column in LOGS
                )
            )
        )
    ).one()
    seqs = {column: int(seq or 0) for (*_rest, column), seq in zip(LOGS, latest, strict=True)}
    return Watermark(seqs=seqs, empty=False)


def _stored(state: dict[str, Any], sql: Dialect) -> Watermark:
    if sql.postgres:
        return Watermark.parse(state["pg_snapshot"])
    return Watermark(seqs={column: int(state[column]) for *_rest, column in LOGS}, empty=False)


def _threshold(day: Any) -> Any:
    """The pass threshold of the record's day: the day's own once it has counters, else the
    fold's (the ``threshold`` parameter)."""
    recorded = sa.select(LIVE_DAY.c.quiz_pass_threshold).where(LIVE_DAY.c.day == day).scalar_subquery()
    return sa.func.coalesce(recorded, sa.bindparam("threshold", type_=sa.Float()))


def _parts(where: dict[str, Any], sql: Dialect) -> sa.Subquery:
    """The new records' counters per (day, user) and log, as one UNION ALL."""
    e, s, i = EVENTS.c, SESSIONS.c, INTERACTIONS.c
    zero = sa.literal(0)
    is_badge = sa.and_(
        e.event_type == REWARD_CLAIM,
        sa.func.substr(e.action, 1, len(BADGE_PREFIX)) == BADGE_PREFIX,
        sa.func.length(e.action) > len(BADGE_PREFIX),
    )
    return sa.union_all(
        sa.select(
            e.day,
            e.user_id,
            count_if(e.event_type == LOGIN).label("logins"),
            count_if(e.event_type == MODULE_START).label("module_started"),
            count_if(e.event_type == MODULE_COMPLETE).label("module_completed"),
            zero.label("quiz_completed"),
            zero.label("quiz_passed"),
            zero.label("saleslab_sessions"),
            zero.label("upsell_attempts"),
            zero.label("upsell_successes"),
            count_if(is_badge).label("badge_claims"),
            sa.func.sum(_xp(e, sql)).label("xp_gained"),
        )
        .where(where["event_seq"])
        .group_by(e.day, e.user_id),
        sa.select(
            s.day,
            s.user_id,
            zero,
            zero,
            zero,
            count_if(s.engine == QUIZ),
            count_if(
                sa.and_(
                    s.engine == QUIZ,
                    sa.func.coalesce(
                        sa.cast(s.correct_answers, sa.Float) / sa.func.nullif(s.turn_count, 0)
                        >= _threshold(s.day),
                        False,
                    ),
                )
            ),
            count_if(s.engine == SALESLAB),
            count_if(sa.and_(s.engine == SALESLAB, sa.func.coalesce(s.upsell_attempts, 0) > 0)),
            count_if(sa.and_(s.engine == SALESLAB, sa.func.coalesce(s.upsell_success, False))),
            zero,
            zero,
        )
        .where(where["session_seq"])
        .group_by(s.day, s.user_id),
        sa.select(i.day, i.user_id, *([zero] * 10))
        .where(where["interaction_seq"])
        .group_by(i.day, i.user_id),
    ).subquery("parts")


def _xp(e: Any, sql: Dialect) -> Any:
    return sa.case(
        (
            sa.and_(e.event_type == REWARD_CLAIM, sql.is_xp_action(e.action)),
            sa.cast(sa.func.substr(e.action, 4), sa.BigInteger),
        ),
        else_=0,
    )


def _latest(where: dict[str, Any], sql: Dialect) -> sa.Subquery:
    """Per (day, user), the latest new record: time, then log (events win), then lowest seq."""
    candidates = sa.union_all(
        *(
            sa.select(
                table.c.day,
                table.c.user_id,
                ts.label("latest_at"),
                sa.literal(source).label("latest_source"),
                table.c.seq.label("latest_seq"),
                *(table.c[name] for name in (*VERSIONS, *SCOPE)),
            ).where(where[column])
            for table, ts, source, column in LOGS
        )
    ).subquery("candidates")
    c = candidates.c
    ranked = sa.select(
        candidates,
        sa.func.row_number()
        .over(
            partition_by=(c.day, c.user_id),
            order_by=(c.latest_at.desc(), c.latest_source.desc(), c.latest_seq),
        )
        .label("rn"),
    ).subquery("ranked")
    return sa.select(ranked).where(ranked.c.rn == 1).subquery("latest")


def _xp_base(user_id: Any, day: Any) -> Any:
    q = SNAPSHOTS.alias("base")
    prev = (
        sa.select(q.c.xp_total)
        .where(q.c.user_id == user_id, q.c.day < day)
        .order_by(q.c.day.desc())
        .limit(1)
        .scalar_subquery()
    )
    return sa.func.coalesce(prev, 0)


async def _apply(
    session: AsyncSession,
    sql: Dialect,
    where: dict[str, Any],
    params: dict[str, Any],
    key: str | None,
    threshold: float,
) -> None:
    """Fold the records ``where`` selects (per log) into the counters and the touched paths.

    ``params``: the values of ``where``'s named parameters; ``key``: the name of ``where``'s
    shape, under which the statements that use it are rendered once (None: not kept)."""
    params = {**params, "threshold": threshold, "now": datetime.now(UTC)}

    def keyed(name: str) -> str | None:
        return None if key is None else f"{key}:{name}"

    def fold_users() -> Any:
        # the (day, user)s touched, with how many records and the oldest receive time
        touched = sa.union_all(
            *(
                sa.select(t.c.day, t.c.user_id, t.c.received_at).where(where[column])
                for t, _ts, _source, column in LOGS
            )
        ).subquery("touched")
        return sa.insert(TEMP.users).from_select(
            ["day", "user_id", "n", "first_received"],
            sa.select(
                touched.c.day, touched.c.user_id, sa.func.count(), sa.func.min(touched.c.received_at)
            ).group_by(touched.c.day, touched.c.user_id),
        )

    await _run(session, keyed("users"), fold_users, params)
    # the paths those users were on before this fold
    await _touched_paths(session)
    # the days, before their sessions are counted with the day's threshold
    await _run(session, "days", lambda: _new_days(sql), params)
    await _run(session, "stale", _stale_days, params)
    await _run(session, keyed("counters"), lambda: _counters(where, sql), params)
    await _run(session, keyed("badges"), lambda: _badges(where, sql), params)
    # and the paths they are on now; then those paths summed again from the counters
    await _touched_paths(session)
    await _resum_paths(session, sql)


def _new_days(sql: Dialect) -> Any:
    fold_users = TEMP.users.c
    days = (
        sa.select(
            fold_users.day,
            sa.bindparam("threshold", type_=sa.Float()),
            sa.false(),
            sa.bindparam("now", type_=sa.DateTime(timezone=True)),
        )
        .where(sa.true())  # SQLite: "SELECT ... FROM t ON CONFLICT" would parse as a join
        .distinct()
    )
    return (
        _insert(sql, LIVE_DAY)
        .from_select(["day", "quiz_pass_threshold", "stale", "changed_at"], days)
        .on_conflict_do_nothing(index_elements=["day"])
    )


def _stale_days() -> Any:
    """A record for a built day: the day is stale until rebuilt."""
    return (
        sa.update(LIVE_DAY)
        .where(
            LIVE_DAY.c.day.in_(sa.select(TEMP.users.c.day)),
            LIVE_DAY.c.day.in_(sa.select(BUILDS.c.day)),
        )
        .values(stale=True, changed_at=sa.bindparam("now", type_=sa.DateTime(timezone=True)))
    )


def _counters(where: dict[str, Any], sql: Dialect) -> Any:
    """The new records' counters per (day, user), added to ``live_user_day``."""
    u = LIVE_USER_DAY.c
    parts = _parts(where, sql)
    p = parts.c
    counters = (*USER_COUNTERS, "xp_gained")
    sums = (
        sa.select(p.day, p.user_id, *(sa.func.sum(p[name]).label(name) for name in counters))
        .group_by(p.day, p.user_id)
        .subquery("sums")
    )
    latest = _latest(where, sql)
    lt = latest.c
    select = sa.select(
        sums.c.day,
        sums.c.user_id,
        *(sums.c[name] for name in counters),
        _xp_base(sums.c.user_id, sums.c.day),
        lt.latest_at,
        lt.latest_source,
        lt.latest_seq,
        *(lt[name] for name in (*VERSIONS, *SCOPE)),
    ).select_from(sums.join(latest, sa.and_(lt.day == sums.c.day, lt.user_id == sums.c.user_id)))
    columns = [
        "day",
        "user_id",
        *counters,
        "xp_base",
        "latest_at",
        "latest_source",
        "latest_seq",
        *VERSIONS,
        *SCOPE,
    ]
    statement = _insert(sql, LIVE_USER_DAY).from_select(columns, select.where(sa.true()))
    ex = statement.excluded
    newer = sa.or_(
        ex.latest_at > u.latest_at,
        sa.and_(
            ex.latest_at == u.latest_at,
            sa.or_(
                ex.latest_source > u.latest_source,
                sa.and_(ex.latest_source == u.latest_source, ex.latest_seq < u.latest_seq),
            ),
        ),
    )
    updates: dict[str, Any] = {name: u[name] + ex[name] for name in counters}
    updates["xp_base"] = ex.xp_base
    for name in ("latest_at", "latest_source", "latest_seq", *VERSIONS, *SCOPE):
        updates[name] = sa.case((newer, ex[name]), else_=u[name])
    return statement.on_conflict_do_update(index_elements=["day", "user_id"], set_=updates)


def _badges(where: dict[str, Any], sql: Dialect) -> Any:
    """The day's badges claimed by the new records."""
    e = EVENTS.c
    badges = (
        sa.select(e.day, e.user_id, sa.func.substr(e.action, len(BADGE_PREFIX) + 1))
        .where(
            where["event_seq"],
            e.event_type == REWARD_CLAIM,
            sa.func.substr(e.action, 1, len(BADGE_PREFIX)) == BADGE_PREFIX,
            sa.func.length(e.action) > len(BADGE_PREFIX),
        )
        .distinct()
    )
    return (
        _insert(sql, LIVE_USER_BADGE)
        .from_select(["day", "user_id", "badge"], badges.where(sa.true()))
        .on_conflict_do_nothing()
    )


async def _touched_paths(session: AsyncSession) -> None:
    """The paths the fold's users are on (driven from the fold's users: primary-key probes)."""
    u, f = LIVE_USER_DAY.c, TEMP.users.c
    on = sa.and_(u.day == f.day, u.user_id == f.user_id)
    await _run(
        session,
        "touched_paths",
        lambda: sa.insert(TEMP.paths).from_select(
            ["day", *SCOPE],
            sa.select(u.day, *(u[name] for name in SCOPE))
            .select_from(TEMP.users.join(LIVE_USER_DAY, on))
            .distinct(),
        ),
    )


async def _resum_paths(session: AsyncSession, sql: Dialect) -> None:
    """Every touched (day, path) of live_path_day, summed again from its users' counters
    (found through the (day, path) index of live_user_day, never a scan of other days)."""
    await _run(session, "resum_delete", lambda: _resum(sql)[0])
    await _run(session, "resum_insert", lambda: _resum(sql)[1])


def _resum(sql: Dialect) -> tuple[Any, Any]:
    """``_resum_paths``'s DELETE and INSERT."""
    p, u, t = LIVE_PATH_DAY.c, LIVE_USER_DAY.c, TEMP.paths.c
    touched = sa.select(t.day, *(t[name] for name in SCOPE)).distinct().subquery("touched")
    delete = sa.delete(LIVE_PATH_DAY).where(
        sa.tuple_(p.day, *(p[name] for name in SCOPE)).in_(
            sa.select(touched.c.day, *(touched.c[name] for name in SCOPE))
        )
    )
    users = LIVE_USER_DAY.join(
        touched, sa.and_(u.day == touched.c.day, *(u[name] == touched.c[name] for name in SCOPE))
    )
    keys = (u.day, *(u[name] for name in SCOPE))
    values = {
        "users": sa.func.count(),
        "active_users": count_if(u.logins > 0),
        **{
            name: sa.func.sum(u[name])
            for name in PATH_COUNTERS
            if name not in ("users", "active_users", "xp_total_sum")
        },
        "xp_total_sum": sa.func.sum(u.xp_base + u.xp_gained),
    }
    if sql.postgres:
        # the path's latest user (latest record, then greatest userId) in the same GROUP BY: new
        # tables have no statistics, and a join of two grouped subqueries became a nested loop
        order = (u.latest_at.desc(), u.user_id.collate("C").desc())

        def first(column: Any) -> Any:
            return sa.func.array_agg(aggregate_order_by(column, *order))[1]

        select = (
            sa.select(
                *keys,
                *(value.label(name) for name, value in values.items()),
                sa.func.max(u.latest_at),
                first(u.user_id),
                *(first(u[name]) for name in VERSIONS),
            )
            .select_from(users)
            .group_by(*keys)
        )
    else:
        ranked = (
            sa.select(
                *keys,
                u.user_id,
                u.latest_at,
                *(u[name] for name in VERSIONS),
                sa.func.row_number()
                .over(partition_by=keys, order_by=(u.latest_at.desc(), u.user_id.desc()))
                .label("rn"),
            )
            .select_from(users)
            .subquery("ranked")
        )
        sums = (
            sa.select(*keys, *(value.label(name) for name, value in values.items()))
            .select_from(users)
            .group_by(*keys)
            .subquery("sums")
        )
        r = ranked.c
        joined = sums.join(
            ranked, sa.and_(r.rn == 1, r.day == sums.c.day, *(r[name] == sums.c[name] for name in SCOPE))
        )
        select = sa.select(
            sums.c.day,
            *(sums.c[name] for name in SCOPE),
            *(sums.c[name] for name in PATH_COUNTERS),
            r.latest_at,
            r.user_id,
            *(r[name] for name in VERSIONS),
        ).select_from(joined)
    columns = ["day", *SCOPE, *PATH_COUNTERS, "latest_at", "latest_user", *VERSIONS]
    return delete, sa.insert(LIVE_PATH_DAY).from_select(columns, select)


async def _recount(
    session: AsyncSession, sql: Dialect, days: Iterable[date], seen: Watermark, threshold: float
) -> None:
    """Count these days again from their folded records (another pass threshold)."""
    days = list(days)
    if not days:
        return
    for table in (LIVE_USER_BADGE, LIVE_PATH_DAY, LIVE_USER_DAY):
        await session.execute(sa.delete(table).where(table.c.day.in_(days)))
    await session.execute(
        sa.update(LIVE_DAY).where(LIVE_DAY.c.day.in_(days)).values(quiz_pass_threshold=threshold)
    )
    where = {
        column: sa.and_(table.c.day.in_(days), seen.sees(table, column)) for table, _ts, _s, column in LOGS
    }
    await _in_temp(session, lambda: _apply(session, sql, where, {}, None, threshold))


async def _in_temp(session: AsyncSession, work: Callable[[], Any]) -> None:
    await TEMP.create(session)
    try:
        await work()
    finally:
        await TEMP.drop(session)


async def fold(
    session: AsyncSession,
    *,
    threshold: float,
    holder: str,
    wait: bool = False,
    recount: Iterable[date] = (),
    refresh_bases: bool = True,
) -> Fold | None:
    """One fold inside the caller's transaction (which must commit or roll back as a whole).

    None: another fold holds the lock (only when not ``wait``). ``recount``: days to count
    again from their folded records, beside those whose threshold is not ``threshold``.
    """
    sql = Dialect(session.get_bind().dialect.name)
    state = await _lock(session, sql, holder, wait)
    if state is None:
        return None
    previous = _stored(state, sql)
    now = await _current(session, sql)
    if refresh_bases:  # not inside a build: a month built day by day refreshes once, afterwards
        await _refresh_bases(session, sql)
    # days not built whose counters use another threshold: counted again with this one
    other = (await session.scalars(sa.select(LIVE_DAY.c.day).where(_counted_with_another(threshold)))).all()
    recounted = frozenset({*other, *recount})
    if not previous.empty or not sql.postgres:
        await _recount(session, sql, sorted(recounted), previous, threshold)
    where, params, shape = now.new_rows(previous)
    records, days, first = 0, frozenset[date](), None

    async def work() -> None:
        nonlocal records, days, first
        await _apply(session, sql, where, params, shape, threshold)
        f = TEMP.users.c
        rows = (
            await session.execute(
                sa.select(f.day, sa.func.sum(f.n), sa.func.min(f.first_received)).group_by(f.day)
            )
        ).all()
        records = sum(int(n) for _d, n, _r in rows)
        days = frozenset(d if isinstance(d, date) else date.fromisoformat(str(d)) for d, _n, _r in rows)
        receipts = [r for _d, _n, r in rows if r is not None]
        first = min(receipts) if receipts else None

    await _in_temp(session, work)
    folded_at = datetime.now(UTC)
    values: dict[str, Any] = {
        "records": LIVE_STATE.c.records + records,
        "folds": LIVE_STATE.c.folds + 1,
        "folded_at": folded_at,
        "holder": holder,
    }
    if sql.postgres:
        values["pg_snapshot"] = now.text()
    else:
        values.update(now.seqs)
    await session.execute(sa.update(LIVE_STATE).where(LIVE_STATE.c.name == STATE).values(**values))
    lag = None
    if first is not None:
        if isinstance(first, str):
            first = datetime.fromisoformat(first)
        if first.tzinfo is None:
            first = first.replace(tzinfo=UTC)
        lag = max(0.0, (folded_at - first).total_seconds())
    return Fold(records=records, days=days, recounted=recounted, lag_seconds=lag, folded_at=folded_at)


def _counted_with_another(threshold: float) -> sa.ColumnElement[bool]:
    """The days not built whose counters use another pass threshold (a fold counts them again)."""
    return sa.and_(
        LIVE_DAY.c.quiz_pass_threshold != threshold, LIVE_DAY.c.day.not_in(sa.select(BUILDS.c.day))
    )


async def pending(session: AsyncSession, threshold: float) -> bool:
    """Is there anything to fold (new records, or days to count again)? Reads only: an idle
    deriver costs a few index probes per poll, and writes nothing."""
    sql = Dialect(session.get_bind().dialect.name)
    state = (await session.execute(sa.select(LIVE_STATE).where(LIVE_STATE.c.name == STATE))).mappings().one()
    previous = _stored(dict(state), sql)
    new, params, _shape = (await _current(session, sql)).new_rows(previous)
    checks = [sa.exists().where(records) for records in new.values()]
    checks.append(sa.exists().where(_counted_with_another(threshold)))
    checks.append(sa.exists().where(LIVE_STATE.c.name == BASES))
    return bool(await session.scalar(sa.select(sa.or_(*checks)), params))


async def fold_now(
    db: Database, *, threshold: float, holder: str | None = None, wait: bool = True
) -> Fold | None:
    """One fold in its own transaction, if there is anything to fold (None: nothing, or
    another fold holds the lock and ``wait`` is false).

    SQLite: a unit of the group-commit writer (``Database.heavy_transaction``)."""
    global _latest_lag
    holder = holder or default_holder()
    if db.writer.sync_engine is not None:
        result = await db.heavy_transaction(partial(_fold_if_pending, threshold=threshold, holder=holder))
    else:
        async with db.session() as session:
            if not await pending(session, threshold):
                return None
        async with db.transaction() as session:
            result = await fold(session, threshold=threshold, holder=holder, wait=wait)
    if result is not None and result.lag_seconds is not None:
        _latest_lag = result.lag_seconds
    return result


async def _fold_if_pending(session: AsyncSession, *, threshold: float, holder: str) -> Fold | None:
    """SQLite, as the writer's unit (in its transaction, which holds the database's write lock
    from its start: nothing commits in between): a fold if there is anything to fold."""
    if not await pending(session, threshold):
        return None
    return await fold(session, threshold=threshold, holder=holder, wait=True)


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class LiveDeriver:
    """The background loop of one app: folds every ``interval`` seconds, off the request path.

    Every process runs one; the lock lets one fold at a time, so one of them does the work
    and another takes over at its next poll if that one dies. ``lag_seconds``: the lag of
    this deriver's latest fold that applied records (see ``latest_lag_seconds``).
    """

    def __init__(
        self,
        db: Database,
        threshold: float,
        interval: float,
        on_change: Callable[[Fold], None] | None = None,
    ) -> None:
        self.db = db
        self.threshold = threshold
        self.interval = interval
        self.on_change = on_change
        self.holder = default_holder()
        self.lag_seconds: float | None = None
        self.folds = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def fold_once(self, wait: bool = False) -> Fold | None:
        result = await fold_now(self.db, threshold=self.threshold, holder=self.holder, wait=wait)
        if result is not None:
            self.folds += 1
            if result.lag_seconds is not None:
                self.lag_seconds = result.lag_seconds
            if (result.records or result.recounted) and self.on_change is not None:
                self.on_change(result)
        return result

    async def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                await self.fold_once()
            except Exception:  # a failed fold changed nothing (rolled back): try again next time
                log.exception("live fold failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stopping.wait(), max(0.0, self.interval - (time.monotonic() - started))
                )

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="live-deriver")

    async def stop(self) -> None:
        """Let the fold in progress finish (a cancelled one would roll back anyway), then end."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), 10)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


async def day_threshold(session: AsyncSession, day: date) -> float | None:
    """The pass threshold the day's counters use (None: no counters for the day)."""
    found = await session.scalar(sa.select(LIVE_DAY.c.quiz_pass_threshold).where(LIVE_DAY.c.day == day))
    return None if found is None else float(found)


async def fold_for_build(session: AsyncSession, day: date, threshold: float) -> None:
    """Inside a build's transaction: fold everything committed so far (waiting for the lock,
    which the build then holds to its end), counting the day again if its counters use
    another pass threshold."""
    recount = [day] if await day_threshold(session, day) not in (None, threshold) else []
    if not recount and not await _pending_locked(session, threshold):
        return  # the lock is held all the same, and nothing was committed since the last fold
    await fold(
        session, threshold=threshold, holder=default_holder(), wait=True, recount=recount, refresh_bases=False
    )


async def _pending_locked(session: AsyncSession, threshold: float) -> bool:
    """Inside a build: take the deriver's lock (kept to the end of the build's transaction) and
    say whether a fold would fold anything: new records, or days not built to count again with
    another pass threshold. The xpTotal bases a fold would refresh are left to the background
    fold, as a build's fold leaves them.

    SQLite: the build's first statement wrote, so its transaction already holds the database's
    write lock (nothing else commits until it ends): any record above the stored watermark is
    new. PostgreSQL: the lock, then the watermark against a snapshot, as a fold takes them."""
    sql = Dialect(session.get_bind().dialect.name)
    if sql.postgres:
        state = await _lock(session, sql, default_holder(), wait=True)
        assert state is not None  # waited for
        found, params, _shape = (await _current(session, sql)).new_rows(_stored(state, sql))
        new = list(found.values())
    else:
        row = (
            (await session.execute(sa.select(LIVE_STATE).where(LIVE_STATE.c.name == STATE))).mappings().one()
        )
        previous = _stored(dict(row), sql)
        new = [table.c.seq > previous.seqs[column] for table, _ts, _source, column in LOGS]
        params = {}
    checks = [sa.exists().where(records) for records in new]
    checks.append(sa.exists().where(_counted_with_another(threshold)))
    return bool(await session.scalar(sa.select(sa.or_(*checks)), params))


async def mark_current(session: AsyncSession, day: date) -> None:
    """The day's snapshots now agree with its counters."""
    await session.execute(
        sa.update(LIVE_DAY).where(LIVE_DAY.c.day == day).values(stale=False, changed_at=datetime.now(UTC))
    )


def snapshots_from_counters(day: Day, sql: Dialect, *, history: bool = True) -> sa.Select[Any]:
    """One snapshot row per user with counters that day, in snapshot_daily_user column order:
    the day's counters, plus the cumulative xpTotal and badgesOwned of the user's previous
    snapshot (one index probe per user), never a raw log. ``history=False``: there is no
    snapshot before the day, so no probe (on PostgreSQL a probe of a table that was empty when
    planned is a sequential scan, per user, of the rows the statement is inserting)."""
    u = LIVE_USER_DAY.c
    b = LIVE_USER_BADGE.c
    # the day's badges per user who claimed any: one range of the (day, user, badge) key, joined
    # (a probe per user would cost every user, and PostgreSQL, misjudging a new table, scanned it)
    today = (
        sa.select(b.user_id, sql.json_agg(b.badge).label("badges"))
        .where(b.day == day)
        .group_by(b.user_id)
        .subquery("today")
    )
    users = (
        sa.select(
            LIVE_USER_DAY,
            today.c.badges.label("badges_today"),
            *(sql.previous_row(u.user_id, day) if history else ()),
        )
        .select_from(LIVE_USER_DAY.outerjoin(today, today.c.user_id == u.user_id))
        .where(u.day == day)
        .subquery("users")
    )
    c = users.c
    nothing = sa.literal([], sa.JSON)
    joined: Any = users
    prev_xp: Any = sa.literal(0, sa.BigInteger)
    prev_badges: Any = nothing
    if history:
        joined, prev = sql.previous(users, users, day)
        prev_xp = sa.func.coalesce(prev.c.xp_total, 0)
        prev_badges = sa.func.coalesce(prev.c.badges_owned, nothing)
    # in user order, the order of the snapshots' (day, user) key: SQLite appends the rows to it
    # (its pages filled, not split), reading the counters in that order from their own key
    return (
        sa.select(
            c.day,
            c.user_id,
            c.logins > 0,
            c.module_started,
            c.module_completed,
            c.quiz_completed,
            c.quiz_passed,
            c.saleslab_sessions,
            c.upsell_attempts,
            c.upsell_successes,
            c.xp_gained,
            prev_xp + c.xp_gained,
            sa.case(
                (c.badge_claims > 0, sql.sorted_union(prev_badges, sql.json(c.badges_today))),
                else_=prev_badges,
            ),
            c.latest_at,
            *(c[name] for name in (*VERSIONS, *SCOPE)),
        )
        .select_from(joined)
        .order_by(c.user_id)
    )


async def bases_current(session: AsyncSession, day: date) -> bool:
    """Do the xpTotal bases of ``day``'s counters (a day not built) agree with the snapshots as
    they are now? Each base is taken from the snapshots when a fold counts the user's record,
    and only a build changes snapshots; a build marks the later days' bases due (``mark_bases``)
    until a background fold refreshes them. So they agree unless an earlier day is marked."""
    state = LIVE_STATE.c
    due = await session.scalar(sa.select(state.event_seq).where(state.name == BASES))
    return due is None or int(due) >= day.toordinal()


def rebase_paths(day: Day) -> sa.Update:
    """After ``day``'s snapshots were made from its counters while its xpTotal bases were due:
    each of the day's paths takes its xpTotalSum from the new snapshots (what its users' bases,
    refreshed, would sum to; the build's check then compares every counter of the paths with the
    snapshots). Only paths whose sum changed are written."""
    p, s = LIVE_PATH_DAY.c, SNAPSHOTS.c
    sums = (
        sa.select(*(s[name] for name in SCOPE), sa.func.sum(s.xp_total).label("xp_total_sum"))
        .where(s.day == day)
        .group_by(*(s[name] for name in SCOPE))
        .subquery("sums")
    )
    return (
        sa.update(LIVE_PATH_DAY)
        .where(
            p.day == day,
            *(p[name] == sums.c[name] for name in SCOPE),
            p.xp_total_sum != sums.c.xp_total_sum,
        )
        .values(xp_total_sum=sums.c.xp_total_sum)
    )


# What a snapshot holds of the day that its counters hold too (cumulative figures aside).
_COMPARED = (
    "module_started",
    "module_completed",
    "quiz_completed",
    "quiz_passed",
    "saleslab_sessions",
    "upsell_attempts",
    "upsell_successes",
    "xp_gained",
)


async def disagreeing_users(session: AsyncSession, day: date) -> list[str]:
    """Users whose snapshot of ``day`` differs from their counters (or exists on one side only):
    both sides' rows in one UNION ALL, grouped on every compared column; a row alone differs."""
    s, u = SNAPSHOTS.c, LIVE_USER_DAY.c
    snapshot_side = sa.select(
        s.user_id,
        *(s[name] for name in _COMPARED),
        sa.case((s.logged_in, 1), else_=0).label("logged_in"),
        s.latest_at,
        *(s[name] for name in SCOPE),
        *(s[f"latest_{name}"].label(name) for name in VERSIONS),
    ).where(s.day == day)
    counter_side = sa.select(
        u.user_id,
        *(u[name] for name in _COMPARED),
        sa.case((u.logins > 0, 1), else_=0),
        u.latest_at,
        *(u[name] for name in SCOPE),
        *(u[name] for name in VERSIONS),
    ).where(u.day == day)
    both = sa.union_all(snapshot_side, counter_side).subquery("both_sides")
    alone = sa.select(both.c.user_id).group_by(*both.c).having(sa.func.count() == 1).subquery("alone")
    query = sa.select(alone.c.user_id).distinct().order_by(alone.c.user_id).limit(5)
    return list((await session.scalars(query)).all())


BASES = "bases"  # a live_state row: the earliest built day whose later days' xp bases are due


async def mark_bases(session: AsyncSession, day: date) -> None:
    """After ``day``'s snapshots changed (a build): the live xpTotal bases of the days after it
    are due for a refresh, which the next background fold does (once for any number of builds).
    One upsert: the marked day is the earliest of those marked."""
    sql = Dialect(session.get_bind().dialect.name)

    def upsert() -> Any:
        state = LIVE_STATE.c
        statement = _insert(sql, LIVE_STATE).values(
            name=BASES,
            event_seq=sa.bindparam("marked", type_=sa.BigInteger()),
            interaction_seq=0,
            session_seq=0,
            records=0,
            folds=0,
        )
        earlier = statement.excluded.event_seq < state.event_seq
        return statement.on_conflict_do_update(
            index_elements=["name"],
            set_={"event_seq": sa.case((earlier, statement.excluded.event_seq), else_=state.event_seq)},
        )

    await _run(session, "mark_bases", upsert, {"marked": day.toordinal()})


async def _refresh_bases(session: AsyncSession, sql: Dialect) -> None:
    """The counters of days not built after the marked day take their xpTotal base from the
    snapshots as they are now, and those days' paths are summed again, so live averages stay
    what a build of those days would store."""
    state = LIVE_STATE.c
    due = await session.scalar(sa.select(state.event_seq).where(state.name == BASES))
    if due is None:
        return
    u = LIVE_USER_DAY.c
    later = sa.and_(u.day > date.fromordinal(int(due)), u.day.not_in(sa.select(BUILDS.c.day)))

    async def work() -> None:
        await session.execute(
            sa.insert(TEMP.users).from_select(["day", "user_id"], sa.select(u.day, u.user_id).where(later))
        )
        await session.execute(
            sa.update(LIVE_USER_DAY).where(later).values(xp_base=_xp_base(u.user_id, u.day))
        )
        await _touched_paths(session)
        await _resum_paths(session, sql)

    await _in_temp(session, work)
    await session.execute(sa.delete(LIVE_STATE).where(state.name == BASES))
