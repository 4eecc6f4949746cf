"""(d) of bench.derive: a hand-written GROUP BY that stores a day's complete snapshot rows.

The rows are those ``buildSnapshots`` stores: one per user with a record in any raw log that
day, the event and session counters, the cumulative xpTotal and badgesOwned (the user's previous
row plus the day), and the versions and scope of the user's latest record. They go into
``bench_floor_snapshot``, a table made like ``snapshot_daily_user`` (same columns, primary key
and (user, day) index), which grows day by day as the real one does, and each day commits.
It is written the way one would write it by hand for each database, not with the app's code.
"""

from __future__ import annotations

import sqlalchemy as sa

from app.services.analytics.tables import SNAPSHOTS

TABLE = "bench_floor_snapshot"
COLUMNS = ", ".join(column.name for column in SNAPSHOTS.columns)


def _table() -> sa.Table:
    """The copy of snapshot_daily_user: its columns (with their types), its key, its (user, day) index."""
    copy = sa.Table(TABLE, sa.MetaData(), *(column._copy() for column in SNAPSHOTS.columns))
    sa.Index(f"ix_{TABLE}_user_day", copy.c.user_id, copy.c.day)
    return copy


def create_table(connection: sa.Connection) -> None:
    """(Re)create the copy, empty."""
    copy = _table()
    copy.drop(connection, checkfirst=True)
    copy.create(connection)


# SQLite: per log and user the counters and the latest record (max(ts) with the row's own
# columns, SQLite's bare-column rule; the key ends with the log's tie rank), then per user;
# the previous row found through the (user, day) index and joined by its rowid.
SQLITE = sa.text(
    f"""
    INSERT INTO {TABLE} ({COLUMNS})
    SELECT :day, u.user_id, u.logins > 0, u.module_started, u.module_completed,
           u.quiz_completed, u.quiz_passed, u.saleslab_sessions, u.upsell_attempts,
           u.upsell_successes, u.xp_gained, COALESCE(p.xp_total, 0) + u.xp_gained,
           CASE WHEN u.badges IS NULL THEN COALESCE(p.badges_owned, '[]')
                ELSE (SELECT json_group_array(v) FROM (
                        SELECT value AS v FROM json_each(COALESCE(p.badges_owned, '[]'))
                        UNION SELECT value FROM json_each(u.badges) ORDER BY 1)) END,
           substr(u.k, 1, 26), u.module_version, u.scenario_version, u.prompt_version,
           u.region_id, u.country_id, u.branch_id, u.team_id
    FROM (
        SELECT user_id, max(k) AS k, module_version, scenario_version, prompt_version,
               region_id, country_id, branch_id, team_id,
               sum(logins) AS logins, sum(module_started) AS module_started,
               sum(module_completed) AS module_completed, sum(quiz_completed) AS quiz_completed,
               sum(quiz_passed) AS quiz_passed, sum(saleslab_sessions) AS saleslab_sessions,
               sum(upsell_attempts) AS upsell_attempts, sum(upsell_successes) AS upsell_successes,
               sum(xp_gained) AS xp_gained, group_concat(badges) AS badges,
               (SELECT q.rowid FROM {TABLE} q WHERE q.user_id = parts.user_id AND q.day < :day
                ORDER BY q.day DESC LIMIT 1) AS prev_row
        FROM (
            SELECT user_id, max(ts) || '2' AS k, module_version, scenario_version, prompt_version,
                   region_id, country_id, branch_id, team_id,
                   sum(event_type = 'login') AS logins,
                   sum(event_type = 'module_start') AS module_started,
                   sum(event_type = 'module_complete') AS module_completed,
                   0 AS quiz_completed, 0 AS quiz_passed, 0 AS saleslab_sessions,
                   0 AS upsell_attempts, 0 AS upsell_successes,
                   sum(CASE WHEN event_type = 'reward_claim' AND action GLOB 'xp:[0-9]*'
                            AND action NOT GLOB 'xp:*[^0-9]*' AND length(action) <= 12
                            THEN CAST(substr(action, 4) AS INTEGER) ELSE 0 END) AS xp_gained,
                   CASE WHEN sum(event_type = 'reward_claim' AND action GLOB 'badge:?*') > 0
                        THEN json_group_array(substr(action, 7))
                             FILTER (WHERE event_type = 'reward_claim' AND action GLOB 'badge:?*')
                   END AS badges
            FROM event_log WHERE day = :day GROUP BY user_id
            UNION ALL
            SELECT user_id, max(end_time) || '0', module_version, scenario_version, prompt_version,
                   region_id, country_id, branch_id, team_id, 0, 0, 0,
                   sum(engine = 'quiz'),
                   sum(engine = 'quiz' AND turn_count > 0
                       AND CAST(correct_answers AS REAL) / turn_count >= :threshold),
                   sum(engine = 'saleslab'),
                   sum(engine = 'saleslab' AND COALESCE(upsell_attempts, 0) > 0),
                   sum(engine = 'saleslab' AND COALESCE(upsell_success, 0)),
                   0, NULL
            FROM session_log WHERE day = :day GROUP BY user_id
            UNION ALL
            SELECT user_id, max(ts) || '1', module_version, scenario_version, prompt_version,
                   region_id, country_id, branch_id, team_id, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL
            FROM interaction_log WHERE day = :day GROUP BY user_id
        ) AS parts
        GROUP BY user_id
    ) AS u
    LEFT JOIN {TABLE} p ON p.rowid = u.prev_row
    """
)

# PostgreSQL: the latest record per log and user by an ordered array_agg of its columns, then
# across the logs; the previous row by a LATERAL probe of the (user, day) index.
_LATEST = "ARRAY[module_version, scenario_version, prompt_version, region_id, country_id, branch_id, team_id]"
POSTGRES = sa.text(
    f"""
    INSERT INTO {TABLE} ({COLUMNS})
    SELECT CAST(:day AS date), u.user_id, u.logins > 0, u.module_started, u.module_completed,
           u.quiz_completed, u.quiz_passed, u.saleslab_sessions, u.upsell_attempts,
           u.upsell_successes, u.xp_gained, COALESCE(p.xp_total, 0) + u.xp_gained,
           CASE WHEN u.badges IS NULL THEN COALESCE(p.badges_owned, '[]'::json)
                ELSE (SELECT json_agg(v ORDER BY v COLLATE "C") FROM (
                        SELECT json_array_elements_text(COALESCE(p.badges_owned, '[]'::json)) AS v
                        UNION SELECT unnest(u.badges)) AS b) END,
           u.latest_at, u.carried[1][1][1], u.carried[1][1][2], u.carried[1][1][3],
           u.carried[1][1][4], u.carried[1][1][5], u.carried[1][1][6], u.carried[1][1][7]
    FROM (
        SELECT user_id, max(latest_at) AS latest_at,
               (array_agg(carried ORDER BY latest_at DESC, rank DESC))[1:1] AS carried,
               sum(logins) AS logins, sum(module_started) AS module_started,
               sum(module_completed) AS module_completed, sum(quiz_completed) AS quiz_completed,
               sum(quiz_passed) AS quiz_passed, sum(saleslab_sessions) AS saleslab_sessions,
               sum(upsell_attempts) AS upsell_attempts, sum(upsell_successes) AS upsell_successes,
               sum(xp_gained) AS xp_gained, max(badges) AS badges
        FROM (
            SELECT user_id, max(ts) AS latest_at, 2 AS rank,
                   (array_agg({_LATEST} ORDER BY ts DESC, seq))[1:1] AS carried,
                   count(*) FILTER (WHERE event_type = 'login') AS logins,
                   count(*) FILTER (WHERE event_type = 'module_start') AS module_started,
                   count(*) FILTER (WHERE event_type = 'module_complete') AS module_completed,
                   0 AS quiz_completed, 0 AS quiz_passed, 0 AS saleslab_sessions,
                   0 AS upsell_attempts, 0 AS upsell_successes,
                   sum(CASE WHEN event_type = 'reward_claim' AND action ~ '^xp:[0-9]{{1,9}}$'
                            THEN substr(action, 4)::bigint ELSE 0 END) AS xp_gained,
                   array_agg(substr(action, 7))
                       FILTER (WHERE event_type = 'reward_claim' AND action LIKE 'badge:_%') AS badges
            FROM event_log WHERE day = :day GROUP BY user_id
            UNION ALL
            SELECT user_id, max(end_time), 0, (array_agg({_LATEST} ORDER BY end_time DESC, seq))[1:1],
                   0, 0, 0,
                   count(*) FILTER (WHERE engine = 'quiz'),
                   count(*) FILTER (WHERE engine = 'quiz' AND turn_count > 0
                                    AND correct_answers::float / NULLIF(turn_count, 0) >= :threshold),
                   count(*) FILTER (WHERE engine = 'saleslab'),
                   count(*) FILTER (WHERE engine = 'saleslab' AND COALESCE(upsell_attempts, 0) > 0),
                   count(*) FILTER (WHERE engine = 'saleslab' AND COALESCE(upsell_success, false)),
                   0, NULL
            FROM session_log WHERE day = :day GROUP BY user_id
            UNION ALL
            SELECT user_id, max(ts), 1, (array_agg({_LATEST} ORDER BY ts DESC, seq))[1:1],
                   0, 0, 0, 0, 0, 0, 0, 0, 0, NULL
            FROM interaction_log WHERE day = :day GROUP BY user_id
        ) AS parts
        GROUP BY user_id
    ) AS u
    LEFT JOIN LATERAL (
        SELECT q.xp_total, q.badges_owned FROM {TABLE} q
        WHERE q.user_id = u.user_id AND q.day < :day ORDER BY q.day DESC LIMIT 1
    ) AS p ON true
    """
)


def differences() -> str:
    """How many rows of (d) and of snapshot_daily_user are not in the other (JSON compared as text)."""
    columns = ", ".join(
        f"CAST({c.name} AS TEXT)" if c.name == "badges_owned" else c.name for c in SNAPSHOTS.columns
    )
    one, other = f"SELECT {columns} FROM {TABLE}", f"SELECT {columns} FROM snapshot_daily_user"
    return (
        f"SELECT (SELECT count(*) FROM ({one} EXCEPT {other}) AS d) "
        f"+ (SELECT count(*) FROM ({other} EXCEPT {one}) AS a)"
    )
