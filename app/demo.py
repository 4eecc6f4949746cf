"""Demo data for a first look in GraphiQL: three weeks of a small organisation.

24 users in 2 regions, 4 countries, 5 branches and 10 teams; for each of the 21 days from
``FIRST_DAY`` to ``LAST_DAY``: raw events (logins, modules, rewards), quiz and SalesLab sessions
with an interaction each, UPM logs (scenario, quiz, learning, mission) every few days, and the
day's snapshots and aggregates. Everything goes in through the public GraphQL API of an app made
in this process (the services' own write paths, validation and audit included), as an engine
and an admin would send it.

The data is the same on every run (a fixed seed, fixed days, ids derived from their content),
and every write is idempotent: a second run finds the last day built and adds nothing; a run
that was interrupted sends everything again, which stores only what was missing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import orjson
import sqlalchemy as sa

from app.auth import Role, issue_token
from app.main import create_app
from app.services.analytics.tables import BUILDS
from app.settings import Settings
from persistence.db import Database

FIRST_DAY = date(2026, 11, 9)
LAST_DAY = date(2026, 11, 29)
DAYS = [FIRST_DAY + timedelta(days=n) for n in range((LAST_DAY - FIRST_DAY).days + 1)]
SEEDER_SUB = "demo-seed"  # the audit log says this admin made the demo's changes

# (region, country, branch, UTC offset of its working day, teams, users per team)
BRANCHES = [
    ("r_apac", "c_kr", "b_seoul_01", 9, ("t_seoul_01_a", "t_seoul_01_b")),
    ("r_apac", "c_kr", "b_busan_01", 9, ("t_busan_01_a", "t_busan_01_b")),
    ("r_apac", "c_jp", "b_tokyo_01", 9, ("t_tokyo_01_a", "t_tokyo_01_b")),
    ("r_emea", "c_de", "b_berlin_01", 1, ("t_berlin_01_a", "t_berlin_01_b")),
    ("r_emea", "c_fr", "b_paris_01", 1, ("t_paris_01_a", "t_paris_01_b")),
]
NAMES = [
    "Mina Park", "Joon Lee", "Aiko Sato", "Lena Vogel",
    "Seo-yeon Kim", "Hyun Choi", "Ji-ho Jung", "Eun Kang", "Kenji Ito", "Yui Tanaka",
    "Haruto Suzuki", "Jonas Weber", "Mia Schulz", "Felix Wagner", "Emma Becker", "Chloé Martin",
    "Louis Bernard", "Léa Dubois", "Hugo Moreau", "Inès Laurent", "Noah Fischer", "Sofia Richter",
    "Daniel Koch", "Hana Yamamoto",
]  # fmt: skip
VERSIONS = [("m1.0", "s1.0", "p1.0"), ("m1.1", "s1.0", "p1.0"), ("m1.1", "s2.0", "p1.1")]
SCENARIOS = ["sc_001", "sc_002", "sc_007", "sc_012"]
QUIZZES = [("q_55", "oled_basics"), ("q_61", "soundbar_setup"), ("q_70", "warranty_terms")]
MODULES = ["m_onboarding", "m_22", "m_30", "m_41"]
MISSIONS = ["mission_10", "mission_11", "mission_20"]
NAMESPACE = uuid.UUID("7f0c4a52-8d55-4d8e-a7f4-3c1f0c9ad5e1")

REGISTER_USER = "mutation($input: RegisterUserInput!) { registerUser(input: $input) { userId } }"
BATCH_RESULT = "{ accepted duplicates rejected errors { index code message } }"
LOG_EVENTS = f"mutation($r: JSON) {{ logEvents(recordsJson: $r) {BATCH_RESULT} }}"
LOG_SESSIONS = f"mutation($r: JSON) {{ logSessions(recordsJson: $r) {BATCH_RESULT} }}"
LOG_INTERACTIONS = f"mutation($r: JSON) {{ logInteractions(recordsJson: $r) {BATCH_RESULT} }}"
UPM_LOGS = {
    kind: f"mutation($input: {kind}LogInput!) {{ log{kind}(input: $input) {{ duplicate }} }}"
    for kind in ("Scenario", "Quiz", "Learning", "Mission")
}
BUILD = "mutation($date: Date!) { buildSnapshots(date: $date) { snapshots } }"
BATCH_SIZE = 1000
CONCURRENT_LOGS = 32

FIRST_QUERY = f"""query FirstLook {{
  kpis(date: "{LAST_DAY.isoformat()}") {{
    activeUsers {{ value }}
    moduleCompletionRate {{ value numerator denominator }}
    quizPassRate {{ value }}
    upsellSuccessRate {{ value }}
  }}
  ranking(level: BRANCH, date: "{LAST_DAY.isoformat()}", by: AVG_XP_TOTAL) {{ rank scopeId value }}
  users(first: 5) {{ nodes {{ userId name performance {{ scenario {{ totalSessions behaviorScore }} }} }} }}
}}"""


@dataclass(frozen=True)
class DemoUser:
    user_id: str
    name: str
    scope: dict[str, str]
    utc_offset: int


@dataclass
class DemoSummary:
    """What a run did: ``seeded`` False when the demo data was there already."""

    seeded: bool
    users: int
    events: int = 0
    sessions: int = 0
    interactions: int = 0
    upm_logs: int = 0
    days_built: int = 0


def demo_users() -> list[DemoUser]:
    """The first four are the earlier demo's users, where they were; the others go round the teams."""
    teams = [
        ({"regionId": region, "countryId": country, "branchId": branch, "teamId": team}, offset)
        for region, country, branch, offset, branch_teams in BRANCHES
        for team in branch_teams
    ]
    first = [0, 1, 4, 6]  # Mina and Joon in Seoul's two teams, Aiko in Tokyo, Lena in Berlin
    places = first + [n % len(teams) for n in range(len(NAMES) - len(first))]
    return [
        DemoUser(f"u_{n + 1:02d}", name, *teams[place])
        for n, (name, place) in enumerate(zip(NAMES, places, strict=True))
    ]


def _id(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(map(str, parts))))


def _version(version: tuple[str, str, str]) -> dict[str, str]:
    return {"moduleVersion": version[0], "scenarioVersion": version[1], "promptVersion": version[2]}


class _Plan:
    """Every record of the demo, drawn once from a fixed seed."""

    def __init__(self, users: list[DemoUser]) -> None:
        self.events: list[dict[str, Any]] = []
        self.sessions: list[dict[str, Any]] = []
        self.interactions: list[dict[str, Any]] = []
        self.upm: list[tuple[str, dict[str, Any]]] = []
        rng = random.Random(18)
        for user in users:
            skill = rng.uniform(0.45, 0.95)  # how good this user is: drives every outcome
            for day_number, day in enumerate(DAYS):
                version = VERSIONS[min(day_number // 8, len(VERSIONS) - 1)]
                if rng.random() < 0.72:
                    self._day(rng, user, day, skill, version)
                if (day_number + int(user.user_id[2:])) % 3 == 0:
                    self._upm(rng, user, day, skill, version)

    def _at(self, user: DemoUser, day: date, hour: float) -> datetime:
        """``hour`` hours after midnight UTC of ``day``, written in the branch's local time."""
        at = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hour)
        return at.astimezone(timezone(timedelta(hours=user.utc_offset))).replace(microsecond=0)

    def _event(
        self, user: DemoUser, at: datetime, kind: str, version: tuple[str, str, str], **context: Any
    ) -> None:
        full = {"moduleId": None, "quizId": None, "scenarioId": None, "turnIndex": None, "action": None}
        self.events.append(
            {
                "eventId": _id("event", user.user_id, at.isoformat(), kind),
                "timestamp": at.isoformat(),
                "userId": user.user_id,
                "eventType": kind,
                "context": full | context,
                "version": _version(version),
                "scope": user.scope,
            }
        )

    def _session(
        self, user: DemoUser, engine: str, end: datetime, version: tuple[str, str, str], **summary: Any
    ) -> str:
        session_id = _id("session", user.user_id, end.isoformat(), engine)
        self.sessions.append(
            {
                "sessionId": session_id,
                "userId": user.user_id,
                "engine": engine,
                "startTime": (end - timedelta(minutes=12)).isoformat(),
                "endTime": end.isoformat(),
                "durationSec": 720.0,
                "outcome": "success",
                "summary": {"correctAnswers": None, "upsellAttempts": None, "upsellSuccess": None} | summary,
                "version": _version(version),
                "scope": user.scope,
            }
        )
        return session_id

    def _day(
        self, rng: random.Random, user: DemoUser, day: date, skill: float, v: tuple[str, str, str]
    ) -> None:
        start = rng.uniform(1.0, 4.0)  # hours after midnight UTC: a working morning everywhere
        self._event(user, self._at(user, day, start), "login", v)
        module = rng.choice(MODULES)
        self._event(user, self._at(user, day, start + 0.1), "module_start", v, moduleId=module)
        if rng.random() < skill:
            self._event(user, self._at(user, day, start + 0.6), "module_complete", v, moduleId=module)
            self._event(
                user,
                self._at(user, day, start + 0.61),
                "reward_claim",
                v,
                action=f"xp:{rng.choice((20, 50, 100))}",
            )
        if rng.random() < 0.05:
            self._event(
                user,
                self._at(user, day, start + 0.62),
                "reward_claim",
                v,
                action=f"badge:streak_{day.isoformat()}",
            )
        if rng.random() < 0.6:
            turns = 10
            correct = sum(rng.random() < skill for _ in range(turns))
            self._session(
                user, "quiz", self._at(user, day, start + 1.0), v, turnCount=turns, correctAnswers=correct
            )
        if rng.random() < 0.5:
            attempts = rng.randint(0, 3)
            success = None if attempts == 0 else rng.random() < skill
            end = self._at(user, day, start + 1.5)
            session_id = self._session(
                user,
                "saleslab",
                end,
                v,
                turnCount=rng.randint(4, 14),
                upsellAttempts=attempts,
                upsellSuccess=success,
            )
            self.interactions.append(
                {
                    "interactionId": _id("interaction", session_id),
                    "sessionId": session_id,
                    "timestamp": (end - timedelta(minutes=5)).isoformat(),
                    "userId": user.user_id,
                    "engine": "saleslab",
                    "input": "Would you like the extended warranty with that?",
                    "output": "Yes, if it covers the panel.",
                    "metadata": {
                        "difficultyLevel": float(rng.randint(1, 3)),
                        "personaId": rng.choice(("p_bargain_hunter", "p_tech_enthusiast", "p_rushed_parent")),
                        "traitActivation": ["price_sensitive"],
                        "upsellTriggered": attempts > 0,
                    },
                    "version": _version(v),
                    "scope": user.scope,
                }
            )
        self._event(user, self._at(user, day, start + 2.0), "logout", v)

    def _upm(
        self, rng: random.Random, user: DemoUser, day: date, skill: float, v: tuple[str, str, str]
    ) -> None:
        context = {"version": _version(v), "scope": user.scope}
        key = (user.user_id, day.isoformat())
        quiz_id, topic = rng.choice(QUIZZES)
        total = 10
        self.upm += [
            (
                "Scenario",
                {
                    "logId": _id("scenario", *key),
                    "userId": user.user_id,
                    "scenarioId": rng.choice(SCENARIOS),
                    "turns": rng.randint(6, 16),
                    "upsellSuccess": rng.random() < skill,
                    "objections": rng.randint(0, 4),
                    "behaviorScore": round(min(1.0, skill + rng.uniform(-0.2, 0.1)), 2),
                }
                | context,
            ),
            (
                "Quiz",
                {
                    "logId": _id("quiz", *key),
                    "userId": user.user_id,
                    "quizId": quiz_id,
                    "correct": sum(rng.random() < skill for _ in range(total)),
                    "total": total,
                    "topic": topic,
                    "difficulty": rng.randint(1, 3),
                }
                | context,
            ),
        ]
        if rng.random() < 0.6:
            self.upm.append(
                (
                    "Learning",
                    {
                        "logId": _id("learning", *key),
                        "userId": user.user_id,
                        "moduleId": rng.choice(MODULES),
                        "durationMinutes": rng.randint(8, 30),
                        "completed": rng.random() < skill,
                    }
                    | context,
                )
            )
        if rng.random() < 0.4:
            self.upm.append(
                (
                    "Mission",
                    {
                        "logId": _id("mission", *key),
                        "userId": user.user_id,
                        "missionId": rng.choice(MISSIONS),
                        "success": rng.random() < skill,
                        "score": round(min(1.0, skill + rng.uniform(-0.25, 0.1)), 2),
                    }
                    | context,
                )
            )


class _Caller:
    """POST /graphql to an app in this process (ASGI, no sockets)."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.admin = issue_token(settings, sub=SEEDER_SUB, role=Role.ADMIN, ttl_seconds=3600)

    async def __call__(self, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
        body = orjson.dumps({"query": query, "variables": variables})
        headers = [
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer " + token.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/graphql",
            "query_string": b"",
            "headers": headers,
        }
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        answer: dict[str, Any] = orjson.loads(b"".join(chunks))
        return answer

    async def must(self, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
        answer = await self(query, variables, token)
        if answer.get("errors"):
            raise RuntimeError(f"demo seeding failed: {answer['errors']}")
        data: dict[str, Any] = answer["data"]
        return data


async def _built(db: Database, day: date) -> bool:
    """Whether buildSnapshots ran for the day (a KPI answer would not say: live analytics answer
    for days not built yet)."""
    async with db.session() as session:
        return await session.scalar(sa.select(BUILDS.c.day).where(BUILDS.c.day == day)) is not None


async def _batches(call: _Caller, mutation: str, field: str, records: list[dict[str, Any]]) -> int:
    stored = 0
    for start in range(0, len(records), BATCH_SIZE):
        result = (await call.must(mutation, {"r": records[start : start + BATCH_SIZE]}, call.admin))[field]
        if result["rejected"]:
            raise RuntimeError(f"demo seeding: {field} rejected records: {result['errors'][:3]}")
        stored += result["accepted"]
    return stored


async def seed_demo(settings: Settings) -> DemoSummary:
    """Seed the demo through the API unless its last day is built already; idempotent."""
    app = create_app(settings)
    # a line per seeding request and per built day would drown the start-up
    quieted = [logging.getLogger(name) for name in ("trainer_console.requests", "trainer_console.analytics")]
    levels = [logger.level for logger in quieted]
    for logger in quieted:
        logger.setLevel(logging.WARNING)
    try:
        return await _seed(_Caller(app, settings))
    finally:
        for logger, level in zip(quieted, levels, strict=True):
            logger.setLevel(level)
        await app.state.db.dispose()


async def _seed(call: _Caller) -> DemoSummary:
    users = demo_users()
    if await _built(call.app.state.db, LAST_DAY):  # the last step of a run: the demo is there
        return DemoSummary(seeded=False, users=len(users))
    for user in users:
        await call.must(
            REGISTER_USER,
            {"input": {"userId": user.user_id, "name": user.name, "scope": user.scope}},
            call.admin,
        )
    plan = _Plan(users)
    summary = DemoSummary(seeded=True, users=len(users))
    summary.events = await _batches(call, LOG_EVENTS, "logEvents", plan.events)
    summary.sessions = await _batches(call, LOG_SESSIONS, "logSessions", plan.sessions)
    summary.interactions = await _batches(call, LOG_INTERACTIONS, "logInteractions", plan.interactions)
    for start in range(0, len(plan.upm), CONCURRENT_LOGS):  # together: they share group commits
        chunk = plan.upm[start : start + CONCURRENT_LOGS]
        answers = await asyncio.gather(
            *(call.must(UPM_LOGS[kind], {"input": payload}, call.admin) for kind, payload in chunk)
        )
        summary.upm_logs += sum(
            0 if answer[f"log{kind}"]["duplicate"] else 1
            for (kind, _), answer in zip(chunk, answers, strict=True)
        )
    for day in DAYS:
        answer = await call(BUILD, {"date": day.isoformat()}, call.admin)
        codes = [error["extensions"]["code"] for error in answer.get("errors", [])]
        if codes == ["E_DUPLICATE_SNAPSHOT"]:  # built by a run that was interrupted later
            continue
        if codes:
            raise RuntimeError(f"demo seeding: buildSnapshots {day}: {answer['errors']}")
        summary.days_built += 1
    return summary


def describe(summary: DemoSummary, settings: Settings) -> str:
    """What `serve --demo` prints: what is there, a ready token, a first query."""
    if summary.seeded:
        what = (
            f"demo data seeded: {summary.users} users in 2 regions, 4 countries, 5 branches, 10 teams; "
            f"{FIRST_DAY}..{LAST_DAY}: {summary.events} events, {summary.sessions} sessions, "
            f"{summary.interactions} interactions, {summary.upm_logs} UPM logs, "
            f"{summary.days_built} days of snapshots"
        )
    else:
        what = f"demo data is there ({summary.users} users, {FIRST_DAY}..{LAST_DAY}, snapshots built)"
    token = issue_token(settings, sub="demo-admin", role=Role.ADMIN, ttl_seconds=8 * 3600)
    return "\n".join(
        [
            f"trainer-console: {what}",
            "A ready admin token (8 hours), for GraphiQL's headers:",
            f'  {{"Authorization": "Bearer {token}"}}',
            "A first query to paste into GraphiQL:",
            FIRST_QUERY,
        ]
    )
