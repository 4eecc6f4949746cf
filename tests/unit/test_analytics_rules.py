"""The analytics rules of app/services/analytics/rules.py (KPI §4.1-4.4, aggregates §3.5), each
against a figure worked out by hand in the comment beside it.

The SQL expressions are evaluated in an in-memory SQLite through SQLAlchemy Core, on a table with
the session log's columns they read (no app, no migration): what the snapshot build counts in SQL
must be what the Python rule says.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from app.scope import LEVELS
from app.services.analytics import rules
from app.services.analytics.rules import Counters, Level, RankBy
from app.services.analytics.statements import Dialect
from app.services.analytics.tables import AGGREGATES, count_if

# The session log's columns the rules read, with their stored types (persistence/models/logs.py).
SESSION_LOG = sa.Table(
    "session_log",
    sa.MetaData(),
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("engine", sa.String(16), nullable=False),
    sa.Column("turn_count", sa.Integer(), nullable=False),
    sa.Column("correct_answers", sa.Integer()),
    sa.Column("upsell_attempts", sa.Integer()),
    sa.Column("upsell_success", sa.Boolean()),
)
PAIRS = sa.Table(
    "pairs",
    sa.MetaData(),
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("numerator", sa.Integer(), nullable=False),
    sa.Column("denominator", sa.Integer(), nullable=False),
)
ACTIONS = sa.Table("actions", sa.MetaData(), sa.Column("action", sa.String(64), primary_key=True))


@pytest.fixture
def conn() -> Iterator[sa.Connection]:
    engine = sa.create_engine("sqlite://")
    with engine.connect() as connection:
        for table in (SESSION_LOG, PAIRS, ACTIONS):
            table.create(connection)
        yield connection
    engine.dispose()


def session(
    session_id: str,
    engine: str,
    turns: int = 10,
    correct: int | None = None,
    attempts: int | None = None,
    success: bool | None = None,
) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "engine": engine,
        "turn_count": turns,
        "correct_answers": correct,
        "upsell_attempts": attempts,
        "upsell_success": success,
    }


def evaluate(conn: sa.Connection, rows: list[dict[str, Any]], rule: Any) -> dict[str, bool]:
    """Each session's value of one rule, as the database computes it."""
    conn.execute(sa.insert(SESSION_LOG), rows)
    selected = sa.select(SESSION_LOG.c.session_id, rule.label("value")).order_by(SESSION_LOG.c.session_id)
    return {row.session_id: bool(row.value) for row in conn.execute(selected)}


# --- ratio, the rate of every KPI ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (3, 4, 0.75),  # 3/4
        (1, 2, 0.5),  # 1/2, not integer division
        (0, 5, 0.0),  # 0/5: measured, and zero
        (7, 7, 1.0),  # 7/7
        (0, 0, None),  # nothing attempted: null, not a division error
        (5, 0, None),  # a zero denominator is null whatever the numerator
        (1, -1, None),  # only a positive denominator is a rate
    ],
)
def test_ratio_is_null_without_a_positive_denominator(numerator, denominator, expected):
    # when
    rate = rules.ratio(numerator, denominator)
    # then
    assert rate == (pytest.approx(expected) if expected is not None else None)


def test_ratio_sql_is_the_same_division_as_ratio(conn):
    # given
    pairs = [(3, 4), (1, 2), (1, 3), (2, 3), (7, 10), (0, 5), (0, 0), (5, 0)]
    conn.execute(
        sa.insert(PAIRS), [{"id": i, "numerator": n, "denominator": d} for i, (n, d) in enumerate(pairs)]
    )
    # when
    query = sa.select(rules.ratio_sql(PAIRS.c.numerator, PAIRS.c.denominator)).order_by(PAIRS.c.id)
    in_sql = conn.execute(query).scalars().all()
    # then: the very same floats (1/3 = 0.333..., 7/10 = 0.7), so stored and re-derived rates compare
    # equal; None where the denominator is 0
    assert in_sql == [rules.ratio(n, d) for n, d in pairs]
    assert in_sql == [0.75, 0.5, 1 / 3, 2 / 3, 0.7, 0.0, None, None]


@pytest.mark.parametrize(
    ("correct", "turns", "expected"),
    [
        (7, 10, 0.7),  # 7/10
        (0, 4, 0.0),  # 0/4
        (None, 10, None),  # no correctAnswers: no score
        (0, 0, None),  # no questions: no score
    ],
)
def test_quiz_score_is_correct_answers_over_turns(correct, turns, expected):
    # when
    score = rules.quiz_score(correct, turns)
    # then
    assert score == (pytest.approx(expected) if expected is not None else None)


# --- what the snapshot counts, in SQL -----------------------------------------------------------


def test_every_quiz_session_is_a_completed_quiz(conn):
    # given
    rows = [session("a", "quiz", correct=0), session("b", "quiz", turns=0), session("c", "saleslab")]
    # when
    values = evaluate(conn, rows, rules.is_quiz_sql(SESSION_LOG))
    # then: §4.3's #completed counts quiz sessions, passed or not, with or without questions
    assert values == {"a": True, "b": True, "c": False}


def test_a_quiz_passes_at_correct_answers_over_turns_at_least_the_threshold(conn):
    # given: threshold .7 (TRAINER_QUIZ_PASS_THRESHOLD's default)
    rows = [
        session("a", "quiz", turns=10, correct=7),  # 7/10 = .7 >= .7 (while .7*10 = 7.000000000000001 > 7)
        session("b", "quiz", turns=10, correct=6),  # 6/10 = .6 < .7
        session("c", "quiz", turns=20, correct=14),  # 14/20 = .7 >= .7
        session("d", "quiz", turns=10, correct=10),  # 10/10 = 1
        session("e", "quiz", turns=10, correct=None),  # no correctAnswers: does not pass
        session("f", "quiz", turns=0, correct=0),  # no questions: 0/NULLIF(0, 0) is NULL, does not pass
        session("g", "saleslab", turns=10, correct=10),  # 10/10, but not a quiz
    ]
    # when
    values = evaluate(conn, rows, rules.quiz_passed_sql(SESSION_LOG, 0.7))
    # then
    assert values == {"a": True, "b": False, "c": True, "d": True, "e": False, "f": False, "g": False}


def test_the_pass_threshold_is_a_parameter(conn):
    # given: the same two quizzes under thresholds .3 and .31
    rows = [session("a", "quiz", turns=10, correct=3), session("b", "quiz", turns=10, correct=4)]
    conn.execute(sa.insert(SESSION_LOG), rows)
    # when
    query = sa.select(
        rules.quiz_passed_sql(SESSION_LOG, 0.3), rules.quiz_passed_sql(SESSION_LOG, 0.31)
    ).order_by(SESSION_LOG.c.session_id)
    values = [tuple(bool(v) for v in row) for row in conn.execute(query)]
    # then: 3/10 = .3 >= .3 but < .31; 4/10 = .4 passes both
    assert values == [(True, False), (True, True)]


def test_saleslab_sessions(conn):
    # when
    values = evaluate(
        conn,
        [session("a", "saleslab"), session("b", "quiz"), session("c", "learning")],
        rules.is_saleslab_sql(SESSION_LOG),
    )
    # then
    assert values == {"a": True, "b": False, "c": False}


def test_an_upsell_is_attempted_in_a_saleslab_session_with_attempts(conn):
    # given
    rows = [
        session("a", "saleslab", attempts=2),  # 2 > 0
        session("b", "saleslab", attempts=1),  # 1 > 0: the boundary
        session("c", "saleslab", attempts=0),  # 0: not attempted
        session("d", "saleslab", attempts=None),  # not reported: COALESCE(NULL, 0) = 0
        session("e", "quiz", attempts=3),  # not a SalesLab session
    ]
    # when
    values = evaluate(conn, rows, rules.upsell_attempted_sql(SESSION_LOG))
    # then: §4.4's denominator
    assert values == {"a": True, "b": True, "c": False, "d": False, "e": False}


def test_an_upsell_succeeds_in_a_saleslab_session_with_upsell_success(conn):
    # given
    rows = [
        session("a", "saleslab", attempts=1, success=True),
        session("b", "saleslab", attempts=1, success=False),
        session("c", "saleslab", attempts=1, success=None),  # not reported: COALESCE(NULL, false)
        session("d", "quiz", attempts=1, success=True),  # not a SalesLab session
    ]
    # when
    values = evaluate(conn, rows, rules.upsell_succeeded_sql(SESSION_LOG))
    # then: §4.4's numerator
    assert values == {"a": True, "b": False, "c": False, "d": False}


def test_the_snapshots_counts_are_the_kpis_counters(conn):
    # given: two quizzes (one passed) and three SalesLab sessions (two attempted, one succeeded)
    rows = [
        session("q1", "quiz", turns=10, correct=8),  # .8 >= .7: passed
        session("q2", "quiz", turns=10, correct=5),  # .5: failed
        session("s1", "saleslab", attempts=2, success=True),
        session("s2", "saleslab", attempts=1, success=False),
        session("s3", "saleslab", attempts=0, success=None),
    ]
    conn.execute(sa.insert(SESSION_LOG), rows)
    # when: counted as the build counts them
    query = sa.select(
        count_if(rules.is_quiz_sql(SESSION_LOG)).label("quiz_completed"),
        count_if(rules.quiz_passed_sql(SESSION_LOG, 0.7)).label("quiz_passed"),
        count_if(rules.is_saleslab_sql(SESSION_LOG)).label("saleslab_sessions"),
        count_if(rules.upsell_attempted_sql(SESSION_LOG)).label("upsell_attempts"),
        count_if(rules.upsell_succeeded_sql(SESSION_LOG)).label("upsell_successes"),
    )
    counters = Counters(**conn.execute(query).one()._mapping)
    # then: quiz pass rate 1/2 = .5; upsell success rate 1/2 = .5 (s3 made no attempt)
    assert (counters.quiz_completed, counters.quiz_passed) == (2, 1)
    assert (counters.saleslab_sessions, counters.upsell_attempts, counters.upsell_successes) == (3, 2, 1)
    assert counters.quiz_pass_rate == pytest.approx(0.5)
    assert counters.upsell_success_rate == pytest.approx(0.5)


# --- reward_claim actions -----------------------------------------------------------------------


XP_CASES = [
    ("xp:1", True),
    ("xp:120", True),
    ("xp:123456789", True),  # 9 digits, the most
    ("xp:1234567890", False),  # 10 digits
    ("xp:", False),  # no digits
    ("xp:12a", False),
    ("xp:-5", False),
    ("xp:1.5", False),
    ("XP:5", False),
    (" xp:5", False),
    ("xp:5 ", False),
    ("badge:gold", False),
]


@pytest.mark.parametrize(("action", "is_xp"), XP_CASES)
def test_an_xp_action_is_xp_and_one_to_nine_digits(action, is_xp):
    # when / then
    assert (re.search(rules.XP_ACTION, action) is not None) == is_xp
    assert action.startswith(rules.XP_PREFIX) or not is_xp


def test_sqlites_spelling_of_xp_action_accepts_what_the_regex_accepts(conn):
    # given
    conn.execute(sa.insert(ACTIONS), [{"action": action} for action, _ in XP_CASES])
    # when: the GLOB spelling the SQLite build uses instead of REGEXP
    rule = Dialect("sqlite").is_xp_action(ACTIONS.c.action)
    in_sql = {
        row.action: bool(row.value) for row in conn.execute(sa.select(ACTIONS.c.action, rule.label("value")))
    }
    # then
    assert in_sql == dict(XP_CASES)


# --- counters and the rates derived from them ---------------------------------------------------


def test_counters_rates_are_derived_from_the_counters():
    # given
    counters = Counters(
        users=4,
        module_started=8,
        module_completed=6,
        quiz_completed=5,
        quiz_passed=4,
        upsell_attempts=3,
        upsell_successes=2,
        xp_total_sum=1000,
    )
    # then
    assert counters.module_completion_rate == pytest.approx(0.75)  # 6/8
    assert counters.quiz_pass_rate == pytest.approx(0.8)  # 4/5
    assert counters.upsell_success_rate == pytest.approx(2 / 3)  # 2/3 = .666...
    assert counters.avg_xp_total == pytest.approx(250.0)  # 1000/4


def test_nothing_counted_has_null_rates():
    # given
    empty = Counters()
    # then: every denominator is 0
    assert empty.module_completion_rate is None
    assert empty.quiz_pass_rate is None
    assert empty.upsell_success_rate is None
    assert empty.avg_xp_total is None


def test_summed_counters_pool_their_rates():
    # given: a team with 1 of 4 modules completed and one with 1 of 1
    first = Counters(users=1, module_started=4, module_completed=1, xp_total_sum=100)
    second = Counters(users=1, module_started=1, module_completed=1, xp_total_sum=300)
    # when
    both = first + second
    # then: (1+1)/(4+1) = .4, not the mean of the rates (.25+1)/2 = .625; (100+300)/2 = 200
    assert both.module_completion_rate == pytest.approx(0.4)
    assert both.avg_xp_total == pytest.approx(200.0)
    assert both == Counters(users=2, module_started=5, module_completed=2, xp_total_sum=400)


def test_counters_of_a_row_read_null_sums_as_zero():
    # given: SUM() over no rows is NULL; PostgreSQL's SUM of integers is a Decimal
    values: dict[str, Any] = dict.fromkeys(Counters.names())
    values |= {"users": 3, "quiz_completed": Decimal("5"), "quiz_passed": Decimal("2")}
    # when
    counters = Counters.of(SimpleNamespace(**values))
    # then
    assert counters == Counters(users=3, quiz_completed=5, quiz_passed=2)
    assert counters.quiz_pass_rate == pytest.approx(0.4)  # 2/5


# --- levels and ranking keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "depth", "parents", "column"),
    [
        (Level.REGION, 0, (), "region_id"),
        (Level.COUNTRY, 1, (Level.REGION,), "country_id"),
        (Level.BRANCH, 2, (Level.REGION, Level.COUNTRY), "branch_id"),
        (Level.TEAM, 3, (Level.REGION, Level.COUNTRY, Level.BRANCH), "team_id"),
    ],
)
def test_a_level_knows_its_depth_parents_and_column(level, depth, parents, column):
    # then
    assert level.depth == depth
    assert level.parents == parents
    assert level.column == column


def test_levels_run_coarsest_first_like_the_scope():
    # then
    assert [level.value for level in Level] == list(LEVELS)


def test_ranking_keys_are_aggregate_columns():
    # then: each key names a column of every level's aggregate table
    for table in AGGREGATES.values():
        assert {key.value for key in RankBy} <= set(table.c.keys())
