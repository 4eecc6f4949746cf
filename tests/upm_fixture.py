"""The spec's seed payloads (upm §2.1, §3.1, §4.1, §5.1) plus version and scope, and the mutations."""

from __future__ import annotations

from typing import Any

VERSION = {"moduleVersion": "m-1.2", "scenarioVersion": "s-3.0", "promptVersion": None}
SEOUL = {"regionId": "r_apac", "countryId": "c_kr", "branchId": "b_seoul", "teamId": "t_seoul_a"}
BUSAN = {"regionId": "r_apac", "countryId": "c_kr", "branchId": "b_busan", "teamId": "t_busan_a"}

SCENARIO = {
    "userId": "u_01",
    "scenarioId": "sc_001",
    "turns": 13,
    "upsellSuccess": True,
    "objections": 2,
    "behaviorScore": 0.71,
}
QUIZ = {
    "userId": "u_01",
    "quizId": "q_55",
    "correct": 7,
    "total": 10,
    "topic": "oled_basics",
    "difficulty": 2,
}
LEARNING = {"userId": "u_01", "moduleId": "m_22", "durationMinutes": 14, "completed": True}
MISSION = {"userId": "u_01", "missionId": "mission_10", "success": True, "score": 0.83}

RESULT = "{ userId logId recordId duplicate skillDeltas { skillId delta } }"
LOG_SCENARIO = f"mutation($input: ScenarioLogInput!) {{ logScenario(input: $input) {RESULT} }}"
LOG_QUIZ = f"mutation($input: QuizLogInput!) {{ logQuiz(input: $input) {RESULT} }}"
LOG_LEARNING = f"mutation($input: LearningLogInput!) {{ logLearning(input: $input) {RESULT} }}"
LOG_MISSION = f"mutation($input: MissionLogInput!) {{ logMission(input: $input) {RESULT} }}"

PERFORMANCE_FIELDS = """
  userId updatedAt
  scenario { totalSessions avgTurns upsellSuccessRate avgObjections behaviorScore }
  quiz { totalQuizzes avgAccuracy strengths weaknesses }
  learning { completedModules repeatCount engagementScore }
  missions { completed failed active }
  skill { upsell objectionHandling productKnowledge skills { skillId mastery } }
"""
SUMMARY = f"query($userId: String!) {{ performanceSummary(userId: $userId) {{ {PERFORMANCE_FIELDS} }} }}"


def with_context(payload: dict[str, Any], scope: dict[str, str] = SEOUL, **extra: Any) -> dict[str, Any]:
    return {**payload, "version": VERSION, "scope": scope, **extra}
