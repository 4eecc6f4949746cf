"""`serve --demo`: three weeks of data through the API; a second run adds nothing."""

from __future__ import annotations

import re

import sqlalchemy as sa

from app.demo import FIRST_DAY, FIRST_QUERY, LAST_DAY, describe, seed_demo

KPIS = """
query($date: Date!) {
  kpis(date: $date) {
    activeUsers { value }
    moduleCompletionRate { value numerator denominator }
    quizPassRate { value }
    upsellSuccessRate { value }
  }
}
"""
AUDIT_VERIFY = "{ auditVerify { ok checked } }"
COUNTRY_USERS = '{ users(scope: {countryId: "c_fr"}, first: 100) { nodes { userId scope { teamId } } } }'
SUMMARY = """
query($u: String!) { performanceSummary(userId: $u) { scenario { totalSessions } quiz { totalQuizzes } } }
"""


async def row_counts(db) -> dict[str, int]:
    async with db.session() as session:
        names = await session.run_sync(lambda s: sa.inspect(s.connection()).get_table_names())
        return {
            name: (await session.execute(sa.text(f'SELECT count(*) FROM "{name}"'))).scalar_one()
            for name in sorted(names)
            if name != "alembic_version"
        }


async def test_demo_seeds_weeks_of_data_once_and_the_kpis_answer(settings, db, gql, admin):
    # when
    first = await seed_demo(settings)
    counts = await row_counts(db)
    again = await seed_demo(settings)
    # then: a second run adds nothing
    assert first.seeded and not again.seeded
    assert await row_counts(db) == counts
    assert (first.users, first.days_built) == (24, 21)
    assert first.events > 1000 and first.sessions > 300 and first.interactions > 100 and first.upm_logs > 300
    # and a newcomer sees KPIs, users across the organisation, profiles
    for day in (FIRST_DAY, LAST_DAY):
        body = await gql(KPIS, {"date": day.isoformat()}, as_=admin)
        assert "errors" not in body, body
        assert body["data"]["kpis"]["activeUsers"]["value"] > 0
    french = (await gql(COUNTRY_USERS, as_=admin))["data"]["users"]["nodes"]
    assert {user["scope"]["teamId"] for user in french} == {"t_paris_01_a", "t_paris_01_b"}
    profile = (await gql(SUMMARY, {"u": "u_01"}, as_=admin))["data"]["performanceSummary"]
    assert profile["scenario"]["totalSessions"] > 0 and profile["quiz"]["totalQuizzes"] > 0
    audit = (await gql(AUDIT_VERIFY, as_=admin))["data"]["auditVerify"]
    assert audit["ok"]


async def test_the_start_up_note_has_a_token_and_a_first_query_that_runs(settings, gql):
    # given
    summary = await seed_demo(settings)
    # when
    note = describe(summary, settings)
    # then
    token = re.search(r'"Bearer ([^"]+)"', note)
    assert token is not None and FIRST_QUERY in note
    body = await gql(FIRST_QUERY, as_=token.group(1))
    assert "errors" not in body, body
    assert body["data"]["kpis"]["activeUsers"]["value"] > 0
    assert body["data"]["ranking"] and body["data"]["users"]["nodes"]
