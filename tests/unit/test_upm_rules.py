"""The UPM formulas of app/services/upm/rules.py (README "The formulas the specification leaves
open"), each against a figure worked out by hand in the comment beside it.

The default ruleset: session score weights engineScore .6 / upsellSuccess .25 /
objectionHandling .15, minTurns 3; quiz thresholds strength >= .8, weakness < .5, minAttempts 2;
skill weights per source (upsell, objection_handling, product_knowledge): scenario .05/.04/.01,
quiz 0/0/.05, learning .01/.01/.03, mission .03/.02/.02.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.services.upm import rules
from app.services.upm.payloads import LearningResult, MissionResult, QuizResult, ScenarioResult
from app.services.upm.ruleset import DEFAULT_UPM_RULESET, SOURCES, UpmRuleset

DEFAULT = DEFAULT_UPM_RULESET


def ruleset(**sections: Any) -> UpmRuleset:
    """The default ruleset with whole sections replaced (camelCase keys, as a document is uploaded)."""
    return UpmRuleset.model_validate(DEFAULT.document() | sections)


def behavior(min_turns: int = 3, engine: float = 0.6, upsell: float = 0.25, objection: float = 0.15) -> Any:
    weights = {"engineScore": engine, "upsellSuccess": upsell, "objectionHandling": objection}
    return {"aggregation": "ema", "emaAlpha": 0.3, "minTurns": min_turns, "weights": weights}


def scenario(
    turns: int = 5, upsell_success: bool = False, objections: int = 0, behavior_score: float = 0.5
) -> ScenarioResult:
    return ScenarioResult("u_01", "sc_01", turns, upsell_success, objections, behavior_score)


def quiz(correct: int, total: int) -> QuizResult:
    return QuizResult("u_01", "q_01", correct, total, "oled_basics", 2)


def learning(completed: bool, minutes: float = 20.0) -> LearningResult:
    return LearningResult("u_01", "m_01", minutes, completed)


def mission(success: bool, score: float) -> MissionResult:
    return MissionResult("u_01", "mi_01", success, score)


# --- a scenario session's score ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        # .6*.8 + .25*1 + .15/(1+1) = .48 + .25 + .075 = .805
        (scenario(upsell_success=True, objections=1, behavior_score=0.8), 0.805),
        # .6*.5 + .25*0 + .15/(1+0) = .30 + 0 + .15 = .45
        (scenario(upsell_success=False, objections=0, behavior_score=0.5), 0.45),
        # .6*0 + .25*0 + .15/(1+4) = .03
        (scenario(upsell_success=False, objections=4, behavior_score=0.0), 0.03),
        # .6*1 + .25*1 + .15/(1+0) = 1.0: the best session reaches 1 exactly
        (scenario(upsell_success=True, objections=0, behavior_score=1.0), 1.0),
    ],
)
def test_session_score_blends_the_engines_score_with_the_outcomes(result, expected):
    # when
    score = rules.session_score(result, DEFAULT)
    # then
    assert score == pytest.approx(expected)


def test_session_score_takes_its_weights_from_the_ruleset():
    # given: weights .5 / .3 / .2
    custom = ruleset(behaviorScore=behavior(engine=0.5, upsell=0.3, objection=0.2))
    # when
    score = rules.session_score(scenario(upsell_success=True, objections=3, behavior_score=0.9), custom)
    # then: .5*.9 + .3*1 + .2/(1+3) = .45 + .30 + .05 = .80
    assert score == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("turns", "counts"),
    [(2, False), (3, True), (4, True)],  # minTurns 3: a session of exactly 3 turns counts
)
def test_a_session_shorter_than_min_turns_has_no_score(turns, counts):
    # when
    score = rules.session_score(scenario(turns=turns, behavior_score=0.5), DEFAULT)
    # then: .6*.5 + .15/1 = .45 when it counts
    assert score == (pytest.approx(0.45) if counts else None)


def test_min_turns_zero_counts_a_session_without_turns():
    # given
    custom = ruleset(behaviorScore=behavior(min_turns=0))
    # when
    score = rules.session_score(scenario(turns=0, behavior_score=0.0), custom)
    # then: .6*0 + .25*0 + .15/(1+0) = .15
    assert score == pytest.approx(0.15)


def test_session_score_is_clamped_to_the_unit_interval():
    # given: weights that sum to 1 within the ruleset's 1e-6 tolerance, from above
    generous = ruleset(behaviorScore=behavior(engine=0.6000005))
    best = scenario(upsell_success=True, objections=0, behavior_score=1.0)
    # given: a behaviorScore below the payload's range (the payload check refuses it; the formula holds)
    below = scenario(upsell_success=False, objections=0, behavior_score=-1.0)
    # when
    high = rules.session_score(best, generous)
    low = rules.session_score(below, DEFAULT)
    # then: .6000005 + .25 + .15 = 1.0000005 -> 1.0; .6*-1 + 0 + .15 = -.45 -> 0.0
    assert high == 1.0
    assert low == 0.0


# --- a result's factor and source ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "source"),
    [
        (scenario(), "scenario"),
        (quiz(1, 2), "quiz"),
        (learning(True), "learning"),
        (mission(True, 1.0), "mission"),
    ],
)
def test_each_result_has_its_ruleset_source(result, source):
    # when / then
    assert rules.source_of(result) == source
    assert source in SOURCES


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        # scenario: its session score, .6*.8 + .25*1 + .15/2 = .805
        (scenario(upsell_success=True, objections=1, behavior_score=0.8), 0.805),
        # scenario too short to count (2 < minTurns 3): 0
        (scenario(turns=2, behavior_score=0.9), 0.0),
        # quiz: accuracy 7/10 = .7
        (quiz(7, 10), 0.7),
        # quiz: 0/4 = 0
        (quiz(0, 4), 0.0),
        # learning: 1 if completed else 0
        (learning(True), 1.0),
        (learning(False), 0.0),
        # mission: score if success else 0
        (mission(True, 0.9), 0.9),
        (mission(False, 0.9), 0.0),
    ],
)
def test_factor_is_the_results_share_of_a_full_success(result, expected):
    # when
    value = rules.factor(result, DEFAULT)
    # then
    assert value == pytest.approx(expected)


# --- skill deltas -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        # scenario, factor .805: upsell .05*.805, objection .04*.805, product .01*.805
        (
            scenario(upsell_success=True, objections=1, behavior_score=0.8),
            {"upsell": 0.04025, "objection_handling": 0.0322, "product_knowledge": 0.00805},
        ),
        # quiz 8/10, factor .8: upsell 0*.8 and objection 0*.8 are left out; product .05*.8 = .04
        (quiz(8, 10), {"product_knowledge": 0.04}),
        # completed learning, factor 1: .01, .01, .03
        (learning(True), {"upsell": 0.01, "objection_handling": 0.01, "product_knowledge": 0.03}),
        # successful mission scored .5: .03*.5 = .015, .02*.5 = .01, .02*.5 = .01
        (mission(True, 0.5), {"upsell": 0.015, "objection_handling": 0.01, "product_knowledge": 0.01}),
    ],
)
def test_each_skill_moves_by_its_weight_times_the_factor(result, expected):
    # when
    deltas = rules.skill_deltas(result, DEFAULT)
    # then
    assert deltas == pytest.approx(expected)
    assert set(deltas) == set(expected)


@pytest.mark.parametrize(
    "result",
    [learning(False), mission(False, 0.9), scenario(turns=2), quiz(0, 5)],
)
def test_a_result_with_factor_zero_moves_no_skill(result):
    # when: factor 0 -> every weight*0 = 0, all left out
    deltas = rules.skill_deltas(result, DEFAULT)
    # then
    assert deltas == {}


def test_a_negative_weight_lowers_the_skill():
    # given: a ruleset in which a mission costs upsell mastery
    weights = DEFAULT.document()["skillWeights"] | {
        "mission": {"upsell": -0.1, "objection_handling": 0.0, "product_knowledge": 0.02}
    }
    custom = ruleset(skillWeights=weights)
    # when
    deltas = rules.skill_deltas(mission(True, 0.5), custom)
    # then: -.1*.5 = -.05, objection 0*.5 left out, product .02*.5 = .01
    assert deltas == pytest.approx({"upsell": -0.05, "product_knowledge": 0.01})
    assert set(deltas) == {"upsell", "product_knowledge"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(-0.1, 0.0), (0.0, 0.0), (0.42, 0.42), (1.0, 1.0), (1.2, 1.0)],
)
def test_mastery_is_clamped_to_the_unit_interval(value, expected):
    # when / then
    assert rules.clamp_mastery(value) == expected


# --- learning engagement ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("logs", "completed", "minutes", "expected"),
    [
        # .6*3/4 + .4*min(1, 30/(4*15)) = .45 + .4*.5 = .65
        (4, 3, 30.0, 0.65),
        # .6*2/2 + .4*min(1, 90/(2*15) = 3) = .6 + .4 = 1.0: time past the target earns no more
        (2, 2, 90.0, 1.0),
        # .6*0/1 + .4*min(1, 15/(1*15)) = 0 + .4 = .4: exactly the target time
        (1, 0, 15.0, 0.4),
        # .6*0/3 + .4*min(1, 0/45) = 0
        (3, 0, 0.0, 0.0),
        # .6*1/5 + .4*min(1, 12/(5*15)) = .12 + .4*.16 = .12 + .064 = .184
        (5, 1, 12.0, 0.184),
    ],
)
def test_engagement_weighs_completion_and_time_spent(logs, completed, minutes, expected):
    # when
    score = rules.engagement(logs, completed, minutes)
    # then
    assert score == pytest.approx(expected)


def test_engagement_without_learning_logs_is_null():
    # when / then: 0 logs -> no division, null
    assert rules.engagement(0, 0, 0.0) is None


def test_engagement_constants_are_the_documented_ones():
    # then: README: 0.6 · completed / logs + 0.4 · min(1, minutes / (logs · 15))
    assert (rules.ENGAGEMENT_COMPLETION_WEIGHT, rules.ENGAGEMENT_TIME_WEIGHT) == (0.6, 0.4)
    assert rules.ENGAGEMENT_TARGET_MINUTES == 15.0


# --- quiz strengths and weaknesses --------------------------------------------------------------


def test_strengths_and_weaknesses_by_accuracy_over_all_questions():
    # given: (topic, quizzes, correct, total)
    topics = [
        ("a", 2, 16, 20),  # 16/20 = .8: exactly strengthAccuracy -> a strength
        ("b", 3, 27, 30),  # 27/30 = .9 -> a strength, better than a
        ("c", 2, 10, 20),  # 10/20 = .5: exactly weaknessAccuracy -> not a weakness (< .5)
        ("d", 2, 9, 20),  # 9/20 = .45 -> a weakness
        ("e", 1, 0, 10),  # 0/10 but 1 quiz < minAttempts 2 -> neither
        ("f", 4, 2, 20),  # 2/20 = .1 -> a weakness, worse than d
        ("g", 2, 15, 20),  # 15/20 = .75 -> neither
    ]
    # when
    strengths, weaknesses = rules.strengths_and_weaknesses(topics, DEFAULT)
    # then: best first, worst first
    assert strengths == ["b", "a"]
    assert weaknesses == ["f", "d"]


def test_equal_accuracies_are_ordered_by_topic():
    # given: x and y both .9 (18/20, 9/10); p and q both .1 (2/20, 1/10)
    topics = [("y", 2, 9, 10), ("q", 2, 1, 10), ("x", 2, 18, 20), ("p", 2, 2, 20)]
    # when
    strengths, weaknesses = rules.strengths_and_weaknesses(topics, DEFAULT)
    # then
    assert strengths == ["x", "y"]
    assert weaknesses == ["p", "q"]


def test_min_attempts_is_inclusive():
    # given: 0/10 = 0 over 1 quiz (too few) and over 2 quizzes (exactly minAttempts 2)
    topics = [("one", 1, 0, 10), ("two", 2, 0, 10)]
    # when
    strengths, weaknesses = rules.strengths_and_weaknesses(topics, DEFAULT)
    # then
    assert (strengths, weaknesses) == ([], ["two"])


def test_thresholds_come_from_the_ruleset():
    # given: strength >= .6, weakness < .3, minAttempts 1
    thresholds = {"strengthAccuracy": 0.6, "weaknessAccuracy": 0.3, "minAttempts": 1}
    custom = ruleset(quizThresholds=thresholds)
    topics = [("a", 1, 6, 10), ("b", 1, 3, 10), ("c", 1, 2, 10)]  # .6, .3, .2
    # when
    strengths, weaknesses = rules.strengths_and_weaknesses(topics, custom)
    # then: .6 >= .6 is a strength; .3 is not < .3; .2 is
    assert (strengths, weaknesses) == (["a"], ["c"])


def test_no_topics_or_topics_without_questions_give_no_strength_or_weakness():
    # when: empty input, and a topic with total 0 (no division by zero)
    empty = rules.strengths_and_weaknesses([], DEFAULT)
    no_questions = rules.strengths_and_weaknesses([("a", 3, 0, 0)], DEFAULT)
    # then
    assert empty == ([], [])
    assert no_questions == ([], [])
