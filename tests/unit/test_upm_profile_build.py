"""The profile's derived figures (README's formula table: behaviorScore, per-session averages,
avgAccuracy, repeatCount), computed by app/services/upm/profile.build from the stored counters,
each against a figure worked out by hand. No database: the rows are built in memory."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.services.upm.profile import ProfileCounters, ProfileRows, build
from app.services.upm.ruleset import DEFAULT_UPM_RULESET, SKILLS, UpmRuleset

AT = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


def aggregated_by(aggregation: str) -> UpmRuleset:
    document = DEFAULT_UPM_RULESET.document()
    document["behaviorScore"] = document["behaviorScore"] | {"aggregation": aggregation}
    return UpmRuleset.model_validate(document)


def profile(**counters: Any) -> ProfileCounters:
    return ProfileCounters(user_id="u_01", updated_at=AT, **counters)


def test_behavior_score_is_the_ema_or_the_mean_as_the_ruleset_says():
    # given: two sessions scored .9 and .6, whose EMA (alpha .3) the log path kept
    row = profile(scenario_sessions=2, behavior_sum=1.5, behavior_count=2, behavior_ema=0.81)
    rows = ProfileRows(profile=row)
    # when
    ema = build("u_01", rows, aggregated_by("ema")).scenario.behavior_score
    mean = build("u_01", rows, aggregated_by("mean")).scenario.behavior_score
    # then: the stored EMA (.3*.6 + .7*.9 = .81); the mean (.9 + .6)/2 = .75
    assert ema == pytest.approx(0.81)
    assert mean == pytest.approx(0.75)


def test_a_mean_over_no_counted_session_is_null():
    # given: one session too short to count (sessions 1, behavior_count 0)
    rows = ProfileRows(profile=profile(scenario_sessions=1, scenario_turns=2))
    # when
    scenario = build("u_01", rows, aggregated_by("mean")).scenario
    # then: 0/0 -> null, while the session counts in the totals: avg turns 2/1 = 2
    assert scenario.behavior_score is None
    assert scenario.total_sessions == 1
    assert scenario.avg_turns == pytest.approx(2.0)


def test_scenario_figures_are_per_session():
    # given: 4 sessions, 22 turns, 1 upsell success, 6 objections
    row = profile(scenario_sessions=4, scenario_turns=22, scenario_upsell_successes=1, scenario_objections=6)
    # when
    scenario = build("u_01", ProfileRows(profile=row), DEFAULT_UPM_RULESET).scenario
    # then: 22/4 = 5.5 turns, 1/4 = .25 upsell success rate, 6/4 = 1.5 objections
    assert scenario.avg_turns == pytest.approx(5.5)
    assert scenario.upsell_success_rate == pytest.approx(0.25)
    assert scenario.avg_objections == pytest.approx(1.5)


def test_quiz_learning_and_mission_figures():
    # given: 3 quizzes of accuracy .8, .7, .6; 5 learning logs over 3 modules (2 completed),
    # 1 completed log, 12 minutes; 2 missions passed, 1 failed and still open
    row = profile(
        quiz_count=3,
        quiz_accuracy_sum=2.1,
        learning_logs=5,
        learning_completed_logs=1,
        learning_minutes=12.0,
        missions_completed=2,
        missions_failed=1,
    )
    rows = ProfileRows(
        profile=row,
        topics=[("oled_basics", 3, 21, 30)],
        modules=3,
        completed_modules=2,
        active_missions=1,
    )
    # when
    view = build("u_01", rows, DEFAULT_UPM_RULESET)
    # then
    assert view.quiz.avg_accuracy == pytest.approx(0.7)  # (.8 + .7 + .6)/3 = 2.1/3
    assert (view.quiz.strengths, view.quiz.weaknesses) == ([], [])  # 21/30 = .7: neither
    assert view.learning.repeat_count == 2  # 5 logs - 3 modules
    assert view.learning.completed_modules == 2
    assert view.learning.engagement_score == pytest.approx(0.184)  # .6*1/5 + .4*min(1, 12/75)
    assert (view.missions.completed, view.missions.failed, view.missions.active) == (2, 1, 1)
    assert view.updated_at == AT


def test_skills_without_a_stored_mastery_are_zero():
    # given: only upsell has moved
    rows = ProfileRows(profile=profile(), skills={"upsell": 0.35})
    # when
    skills = build("u_01", rows, DEFAULT_UPM_RULESET).skill
    # then
    assert skills == {skill: 0.35 if skill == "upsell" else 0.0 for skill in SKILLS}


def test_a_user_without_history_has_an_empty_profile():
    # when: no stored row at all
    view = build("u_01", ProfileRows(), DEFAULT_UPM_RULESET)
    # then: counts 0, every average null (no division by zero)
    assert view.scenario.total_sessions == 0 and view.quiz.total_quizzes == 0
    assert view.scenario.avg_turns is None and view.scenario.upsell_success_rate is None
    assert view.scenario.avg_objections is None and view.scenario.behavior_score is None
    assert view.quiz.avg_accuracy is None and view.learning.engagement_score is None
    assert (view.learning.completed_modules, view.learning.repeat_count) == (0, 0)
    assert view.skill == dict.fromkeys(SKILLS, 0.0)
    assert view.updated_at is None
