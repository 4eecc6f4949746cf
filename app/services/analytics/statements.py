"""The set-based SQL of a build: one day of raw logs -> snapshots -> aggregates.

Each statement is one INSERT ... SELECT ... GROUP BY filtered on the indexed
``day`` column, so a day costs time in proportion to that day's records, never
to the history; no row travels to Python.

"The versions and scope of the latest record" is an arg-max, for which SQL has
no portable aggregate, and a per-row sort key or a window over a day's records
costs more than the whole GROUP BY. So: on SQLite the GROUP BYs keep max(ts)
and the record's own columns as bare columns (SQLite's documented rule: they
come from the row holding the max()); on PostgreSQL a DISTINCT ON pass sorted
by (user in byte order, time) picks the record, beside the counting GROUP BY.

Ties: across logs events win, then interactions, then sessions; within one log
at the same microsecond, the first stored (SQLite keeps the first row reaching
the max in (day, user) index order; PostgreSQL takes the lowest seq). A unit's
latest snapshot on a tie: the greatest userId.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.sql.elements import ColumnElement

from app.services.analytics.rules import (
    BADGE_PREFIX,
    LOGIN,
    MODULE_COMPLETE,
    MODULE_START,
    REWARD_CLAIM,
    XP_ACTION,
    XP_PREFIX,
    Counters,
    Level,
    is_quiz_sql,
    is_saleslab_sql,
    quiz_passed_sql,
    ratio_sql,
    upsell_attempted_sql,
    upsell_succeeded_sql,
)
from app.services.analytics.tables import (
    AGGREGATES,
    EVENTS,
    INTERACTIONS,
    SESSIONS,
    SNAPSHOTS,
    UNITS,
    VERSION_COLUMNS,
    count_if,
)
from persistence.models.live import LIVE_PATH_DAY

SCOPE_COLUMNS = tuple(level.column for level in Level)
# A day: a date, or a bind parameter (a statement made once, run for any day).
Day = date | sa.BindParameter[date]
Moment = datetime | sa.BindParameter[datetime]
CARRIED = (*VERSION_COLUMNS, *SCOPE_COLUMNS)
TS_TEXT_WIDTH = len("YYYY-MM-DD HH:MM:SS.ffffff")
# The per-user counters each raw log contributes (the others are 0 for it).
EVENT_COUNTERS = ("module_started", "module_completed", "logins", "xp_gained", "badge_claims")
SESSION_COUNTERS = (
    "quiz_completed",
    "quiz_passed",
    "saleslab_sessions",
    "upsell_attempts",
    "upsell_successes",
)
# Record sources, in tie-break order (the greatest wins a tie on the timestamp).
SESSION_SOURCE, INTERACTION_SOURCE, EVENT_SOURCE = 0, 1, 2
# (log, its timestamp column, source)
LOGS = (
    (EVENTS, EVENTS.c.ts, EVENT_SOURCE),
    (INTERACTIONS, INTERACTIONS.c.ts, INTERACTION_SOURCE),
    (SESSIONS, SESSIONS.c.end_time, SESSION_SOURCE),
)


class Dialect:
    """The few places SQLite and PostgreSQL need different SQL."""

    def __init__(self, name: str) -> None:
        self.postgres = name == "postgresql"

    def time_source_key(self, ts: Any, source: int) -> ColumnElement[str]:
        """SQLite: (timestamp, source) as text whose order is that pair's order (SQLAlchemy
        stores SQLite datetimes as fixed-width UTC text)."""
        key: ColumnElement[str] = sa.type_coerce(ts, sa.String) + str(source)
        return key

    def is_xp_action(self, action: Any) -> ColumnElement[bool]:
        """``XP_ACTION`` ("xp:" and 1-9 digits). SQLite's REGEXP is a Python callback per row,
        so SQLite spells it with GLOB instead."""
        if self.postgres:
            return action.regexp_match(XP_ACTION)  # type: ignore[no-any-return]
        digits = sa.func.substr(action, len(XP_PREFIX) + 1)
        return sa.and_(
            sa.func.substr(action, 1, len(XP_PREFIX)) == XP_PREFIX,
            sa.func.length(digits).between(1, 9),
            digits.op("NOT GLOB")("*[^0-9]*"),
        )

    def per_log_latest(self, table: sa.Table, ts: Any, source: int) -> list[Any]:
        """SQLite, level 1 (one log, GROUP BY user): ``latest_at``, ``latest_key`` and the latest
        record's versions and scope as bare columns."""
        if self.postgres:
            return []
        at = sa.func.max(ts)
        return [
            at.label("latest_at"),
            self.time_source_key(at, source).label("latest_key"),
            *(table.c[name] for name in CARRIED),
        ]

    def user_latest(self, parts: sa.Subquery) -> list[Any]:
        """SQLite, level 2 (the three logs' rows, GROUP BY user): ``latest_at`` and the winner's
        bare columns."""
        if self.postgres:
            return []
        key = sa.func.max(parts.c.latest_key)
        return [
            sa.func.substr(key, 1, TS_TEXT_WIDTH).label("latest_at"),
            *(parts.c[name] for name in CARRIED),
        ]

    def carried(self, users: sa.Subquery, day: date) -> tuple[Any, dict[str, Any]]:
        """The FROM clause, and per user ``latest_at`` with the latest record's versions and scope."""
        u = users.c
        if not self.postgres:
            return users, {name: u[name] for name in ("latest_at", *CARRIED)}
        latest = _latest_records(day)
        return users.join(latest, latest.c.user_id == u.user_id), {
            name: latest.c[name] for name in ("latest_at", *CARRIED)
        }

    def previous_row(self, user_id: Any, day: Day) -> list[Any]:
        """SQLite: the rowid of the user's previous snapshot, one probe of the (user, day) index
        per user (level 2); joined by rowid, the table's own key, not by a second index."""
        if self.postgres:
            return []
        q = SNAPSHOTS.alias("q")
        found: sa.Select[Any] = (
            sa.select(sa.literal_column("q.rowid"))
            .where(q.c.user_id == user_id, q.c.day < day)
            .order_by(q.c.day.desc())
            .limit(1)
        )
        return [found.scalar_subquery().label("prev_row")]

    def previous(self, joined: Any, users: sa.Subquery, day: Day) -> tuple[Any, Any]:
        """Join each user's previous snapshot (any earlier day): found through the (user, day)
        index, never by reading the history. PostgreSQL does it in one probe (LATERAL)."""
        u = users.c
        if self.postgres:
            q = SNAPSHOTS.alias("q")
            prev = (
                sa.select(q.c.xp_total, q.c.badges_owned)
                .where(q.c.user_id == u.user_id, q.c.day < day)
                .order_by(q.c.day.desc())
                .limit(1)
                .lateral("prev")
            )
            return joined.outerjoin(prev, sa.true()), prev
        prev_table = SNAPSHOTS.alias("prev")
        on = sa.literal_column("prev.rowid") == u.prev_row
        return joined.outerjoin(prev_table, on), prev_table

    def only(self, value: Any) -> Any:
        """The one non-null value of a group."""
        if self.postgres:
            return sa.func.array_agg(value).filter(value.is_not(None))[1]
        return sa.func.group_concat(value)

    def json_agg(self, value: Any) -> Any:
        return sa.func.json_agg(value) if self.postgres else sa.func.json_group_array(value)

    def json(self, value: Any) -> Any:
        return sa.cast(value, sa.JSON) if self.postgres else value

    def sorted_union(self, *arrays: Any) -> Any:
        """The sorted set of the strings in some JSON arrays, as a JSON array (scalar subquery)."""
        fn = sa.func.json_array_elements_text if self.postgres else sa.func.json_each
        union = sa.union(
            *(sa.select(fn(a).table_valued("value").c.value.label("v")) for a in arrays)
        ).subquery("u")
        if self.postgres:
            ordered = sa.func.json_agg(aggregate_order_by(union.c.v, union.c.v.collate("C")))
            return sa.select(ordered).scalar_subquery()
        # SQLite 3.40 has no ORDER BY inside aggregates: aggregate an ordered subquery.
        inner = sa.select(union.c.v).order_by(union.c.v).subquery("o")
        return sa.select(sa.func.json_group_array(inner.c.v)).scalar_subquery()


def _latest_records(day: date) -> sa.Subquery:
    """PostgreSQL: per user, the latest record of the day across the three logs, found by
    sorting (DISTINCT ON; byte order on userId, which sorts far faster than a locale)."""
    candidates = []
    for table, ts, source in LOGS:
        c = table.c
        user = c.user_id.collate("C")
        candidates.append(
            sa.select(
                c.user_id, ts.label("latest_at"), sa.literal(source).label("source"), *(c[n] for n in CARRIED)
            )
            .where(c.day == day)
            .distinct(user)
            .order_by(user, ts.desc(), c.seq)
        )
    union = sa.union_all(*candidates).subquery("candidates")
    user = union.c.user_id.collate("C")
    return (
        sa.select(union)
        .distinct(user)
        .order_by(user, union.c.latest_at.desc(), union.c.source.desc())
        .subquery("latest")
    )


def _per_user(
    sql: Dialect,
    table: sa.Table,
    ts: Any,
    source: int,
    day: date,
    counters: dict[str, Any],
    badges_today: Any,
) -> sa.Select[Any]:
    """One raw log's day, per user: its counters and the time of its latest record."""
    c = table.c
    return (
        sa.select(
            c.user_id,
            *sql.per_log_latest(table, ts, source),
            *(counters.get(name, sa.literal(0)).label(name) for name in (*EVENT_COUNTERS, *SESSION_COUNTERS)),
            badges_today.label("badges_today"),
        )
        .where(c.day == day)
        .group_by(c.user_id)
    )


def _event_counters(sql: Dialect) -> tuple[dict[str, Any], Any]:
    e = EVENTS.c
    is_badge = sa.and_(
        e.event_type == REWARD_CLAIM,
        sa.func.substr(e.action, 1, len(BADGE_PREFIX)) == BADGE_PREFIX,
        sa.func.length(e.action) > len(BADGE_PREFIX),
    )
    xp = sa.case(
        (
            e.event_type == REWARD_CLAIM,
            sa.case(
                (sql.is_xp_action(e.action), sa.cast(sa.func.substr(e.action, 4), sa.BigInteger)),
                else_=0,
            ),
        ),
        else_=0,
    )
    counters = {
        "module_started": count_if(e.event_type == MODULE_START),
        "module_completed": count_if(e.event_type == MODULE_COMPLETE),
        "logins": count_if(e.event_type == LOGIN),
        "xp_gained": sa.func.sum(xp),
        "badge_claims": count_if(is_badge),
    }
    badges = sql.json_agg(sa.func.substr(e.action, len(BADGE_PREFIX) + 1)).filter(is_badge)
    return counters, badges


def _session_counters(threshold: float) -> dict[str, Any]:
    return {
        "quiz_completed": count_if(is_quiz_sql(SESSIONS)),
        "quiz_passed": count_if(quiz_passed_sql(SESSIONS, threshold)),
        "saleslab_sessions": count_if(is_saleslab_sql(SESSIONS)),
        "upsell_attempts": count_if(upsell_attempted_sql(SESSIONS)),
        "upsell_successes": count_if(upsell_succeeded_sql(SESSIONS)),
    }


def snapshot_select(day: date, threshold: float, sql: Dialect) -> sa.Select[Any]:
    """One row per user with any record that day, in snapshot_daily_user column order."""
    event_counters, badges = _event_counters(sql)
    parts = sa.union_all(
        _per_user(sql, EVENTS, EVENTS.c.ts, EVENT_SOURCE, day, event_counters, badges),
        _per_user(
            sql, SESSIONS, SESSIONS.c.end_time, SESSION_SOURCE, day, _session_counters(threshold), sa.null()
        ),
        _per_user(sql, INTERACTIONS, INTERACTIONS.c.ts, INTERACTION_SOURCE, day, {}, sa.null()),
    ).subquery("parts")
    p = parts.c
    users = (
        sa.select(
            p.user_id,
            *sql.user_latest(parts),
            *(sa.func.sum(p[name]).label(name) for name in (*EVENT_COUNTERS, *SESSION_COUNTERS)),
            sql.only(p.badges_today).label("badges_today"),
            *sql.previous_row(p.user_id, day),
        )
        .group_by(p.user_id)
        .subquery("users")
    )
    u = users.c
    joined, latest = sql.carried(users, day)
    joined, prev = sql.previous(joined, users, day)
    prev_badges = sa.func.coalesce(prev.c.badges_owned, sa.literal([], sa.JSON))
    return sa.select(
        sa.literal(day, sa.Date).label("day"),
        u.user_id,
        (u.logins > 0).label("logged_in"),
        u.module_started,
        u.module_completed,
        u.quiz_completed,
        u.quiz_passed,
        u.saleslab_sessions,
        u.upsell_attempts,
        u.upsell_successes,
        u.xp_gained,
        sa.func.coalesce(prev.c.xp_total, 0) + u.xp_gained,
        sa.case(
            (u.badge_claims > 0, sql.sorted_union(prev_badges, sql.json(u.badges_today))), else_=prev_badges
        ),
        latest["latest_at"],
        *(latest[name] for name in CARRIED),
    ).select_from(joined)


SNAPSHOT_COLUMNS = [column.name for column in SNAPSHOTS.columns]


def aggregate_columns(level: Level) -> list[str]:
    return [
        "day",
        level.column,
        *(parent.column for parent in level.parents),
        *Counters.names(),
        "module_completion_rate",
        "quiz_pass_rate",
        "avg_upsell_success_rate",
        "avg_xp_total",
        *VERSION_COLUMNS,
        "latest_at",
        "built_at",
    ]


def _rollup(
    sql: Dialect,
    keys: dict[str, Any],
    values: dict[str, Any],
    latest: tuple[Any, Any],
    carried: dict[str, Any],
    where: Any = None,
) -> sa.Subquery:
    """The rows of one table grouped by ``keys`` (its columns): the sum of each of ``values``, and
    the ``carried`` columns of the group's latest row, the one with the greatest ``latest`` (time,
    then userId).

    Columns: the keys, the sums, ``latest_at``, ``latest_user``, the carried columns.
    """
    at, user = latest
    group = [value.label(name) for name, value in keys.items()]
    sums = [sa.func.sum(value).label(name) for name, value in values.items()]
    if not sql.postgres:
        key = sa.func.max(sa.type_coerce(at, sa.String) + user)
        selected = sa.select(
            *group,
            *sums,
            sa.func.substr(key, 1, TS_TEXT_WIDTH).label("latest_at"),
            sa.func.substr(key, TS_TEXT_WIDTH + 1).label("latest_user"),
            *(value.label(name) for name, value in carried.items()),  # bare columns of max()
        )
        if where is not None:
            selected = selected.where(where)
        return selected.group_by(*keys.values()).subquery("rolled")
    # PostgreSQL: the latest row's columns in the same GROUP BY (ordered array_agg, first
    # element): one pass, where a DISTINCT ON joined to the GROUP BY sorted the rows twice.
    order = (at.desc(), user.collate("C").desc())

    def first(value: Any) -> Any:
        return sa.func.array_agg(aggregate_order_by(value, *order))[1]

    selected = sa.select(
        *group,
        *sums,
        sa.func.max(at).label("latest_at"),
        first(user).label("latest_user"),
        *(first(value).label(name) for name, value in carried.items()),
    )
    if where is not None:
        selected = selected.where(where)
    return selected.group_by(*keys.values()).subquery("rolled")


UNIT_COLUMNS = [column.name for column in UNITS.columns]


def _snapshot_counters() -> dict[str, Any]:
    """What one snapshot adds to each of ``Counters`` (a snapshot is one user)."""
    s = SNAPSHOTS.c
    stored = (name for name in Counters.names() if name not in ("users", "active_users", "xp_total_sum"))
    return {
        "users": sa.literal(1),
        "active_users": sa.case((s.logged_in, 1), else_=0),
        **{name: s[name] for name in stored},
        "xp_total_sum": s.xp_total,
    }


def units_select(day: date, sql: Dialect) -> sa.Select[Any]:
    """One pass over the day's snapshots: per scope path (region, country, branch, team), the
    summed counters and the versions of its latest snapshot, in ``UNITS`` column order. Every
    level sums these rows (``aggregate_select``): each snapshot is read once, not once per level.

    Grouping by the whole path keeps a team that appears under two branches (the tree changed
    during the day) in both, exactly as grouping the snapshots by branch would.
    """
    s = SNAPSHOTS.c
    rolled = _rollup(
        sql,
        keys={level.column: s[level.column] for level in Level},
        values=_snapshot_counters(),
        latest=(s.latest_at, s.user_id),
        carried={name: s[f"latest_{name}"] for name in VERSION_COLUMNS},
        where=s.day == day,
    )
    return sa.select(*(rolled.c[name] for name in UNIT_COLUMNS))


def aggregate_select(
    level: Level, day: Day, built_at: Moment, sql: Dialect, source: sa.Table = UNITS
) -> sa.Select[Any]:
    """One row per unit at ``level`` and path above it, summed from the day's scope paths, in
    ``aggregate_columns`` order. ``source``: ``UNITS`` (a rebuild: the paths summed from the
    day's snapshots, ``units_select``) or ``live_path_day`` (a first build: the deriver's
    per-path sums of the counters the snapshots were made from). Both are snapshot-side: no
    aggregate reads a raw log (P-05).

    A unit seen under two parents that day (a reused id, a move) is one row under each: a
    row never mixes two nodes of the tree. Its versions are those of its latest snapshot
    (the one whose latest record is the latest; ties: the greatest userId). A team's path is
    the whole path, so its rows are the path rows themselves (nothing to group).
    """
    u = source.c
    where = u.day == day if "day" in u else None
    keys = {**{parent.column: u[parent.column] for parent in level.parents}, "unit": u[level.column]}
    if len(keys) == len(Level):
        b: Any = u
        unit = u[level.column]
    else:
        b = _rollup(
            sql,
            keys=keys,
            values={name: u[name] for name in Counters.names()},
            latest=(u.latest_at, u.latest_user),
            carried={name: u[name] for name in VERSION_COLUMNS},
            where=where,
        ).c
        unit, where = b.unit, None
    select = sa.select(
        _value(day, sa.Date()).label("day"),
        unit,
        *(b[parent.column] for parent in level.parents),
        *(b[name] for name in Counters.names()),
        ratio_sql(b.module_completed, b.module_started),
        ratio_sql(b.quiz_passed, b.quiz_completed),
        ratio_sql(b.upsell_successes, b.upsell_attempts),
        ratio_sql(b.xp_total_sum, b.users),
        *(b[name] for name in VERSION_COLUMNS),
        b.latest_at,
        _value(built_at, sa.DateTime(timezone=True)),
    )
    return select if where is None else select.where(where)


def _value(value: Any, type_: Any) -> Any:
    return value if isinstance(value, sa.BindParameter) else sa.literal(value, type_)


def totals_select(day: Day, *, paths: bool = False) -> sa.Select[Any]:
    """The build's own check: per level, the summed counters of all its rows that day, beside the
    snapshots' (label ``snapshots``), and with ``paths`` the day's live per-path sums' (label
    ``paths``). Read-time checks compare unit by unit (``check``)."""

    def sums(source: str, values: dict[str, Any], table: Any, day_column: Any) -> sa.Select[Any]:
        return (
            sa.select(
                sa.literal(source).label("source"),
                *(sa.func.sum(v).label(name) for name, v in values.items()),
            )
            .select_from(table)
            .where(day_column == day)
        )

    parts = [sums("snapshots", _snapshot_counters(), SNAPSHOTS, SNAPSHOTS.c.day)]
    if paths:
        p = LIVE_PATH_DAY.c
        parts.append(sums("paths", {name: p[name] for name in Counters.names()}, LIVE_PATH_DAY, p.day))
    for level, table in AGGREGATES.items():
        parts.append(
            sums(level.value, {name: table.c[name] for name in Counters.names()}, table, table.c.day)
        )
    return sa.union_all(*parts)  # type: ignore[return-value]
