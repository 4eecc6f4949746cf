"""The data layer through REST (this project's paths, rest/data.py): bulk batches by every role,
all-or-nothing and partial batches, idempotent re-sends, the snapshot build, KPIs and aggregates,
and the same figures through both transports."""

from __future__ import annotations

import pytest

from tests import analytics_fixture as fixture
from tests.analytics_fixture import D1, D2
from tests.log_records import FACTORIES
from tests.rest_client import code

ROLES = ("admin", "region", "country", "branch", "engine")
CLAIMS = {
    "admin": {},
    "region": {"region_id": "r_apac"},
    "country": {"country_id": "c_kr"},
    "branch": {"branch_id": "b_seoul"},
    "engine": {},
}
KPIS = "query($date: Date!) { kpis(date: $date) { activeUsers { value } quizPassRate { numerator } } }"


@pytest.fixture
def as_role(token):
    return lambda role: token(role, **CLAIMS[role])


async def _load(rest, admin):
    for kind, records in (
        ("events", fixture.EVENTS),
        ("interactions", fixture.INTERACTIONS),
        ("sessions", fixture.SESSIONS),
    ):
        response = await rest.post(f"/operator/data/{kind}", json={"records": records}, as_=admin)
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(records)


async def _built(rest, admin, *days):
    await _load(rest, admin)
    for day in days:
        response = await rest.post(f"/operator/data/snapshots/{day}/build", as_=admin)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("kind", list(FACTORIES))
@pytest.mark.parametrize("role", ROLES)
async def test_each_batch_path_with_each_role(rest, as_role, kind, role):
    # given
    records = [FACTORIES[kind](1), FACTORIES[kind](2)]
    # when
    response = await rest.post(f"/operator/data/{kind}", json={"records": records}, as_=as_role(role))
    # then: engines and admin send logs; operators may not
    if role in ("admin", "engine"):
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 2
        assert response.json()["statuses"] == ["ACCEPTED", "ACCEPTED"]
    else:
        assert (response.status_code, code(response)) == (403, "FORBIDDEN")


@pytest.mark.parametrize("kind", list(FACTORIES))
async def test_a_batch_without_a_token_is_401(rest, kind):
    # when
    response = await rest.post(f"/operator/data/{kind}", json={"records": [FACTORIES[kind](1)]})
    # then
    assert (response.status_code, code(response)) == (401, "UNAUTHENTICATED")


async def test_a_re_sent_batch_is_duplicates_and_changed_content_is_refused(rest, admin):
    # given
    await rest.post("/operator/data/events", json={"records": [FACTORIES["events"](1)]}, as_=admin)
    # when
    again = await rest.post("/operator/data/events", json={"records": [FACTORIES["events"](1)]}, as_=admin)
    changed = await rest.post(
        "/operator/data/events", json={"records": [FACTORIES["events"](1, eventType="login")]}, as_=admin
    )
    # then
    assert again.json()["duplicates"] == 1 and again.json()["accepted"] == 0
    assert (changed.status_code, code(changed)) == (400, "E_SCHEMA_MISMATCH")


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"version": None}, "E_VERSION_MISSING"),
        ({"scope": None}, "E_SCOPE_MISSING"),
        ({"eventType": "teleport"}, "E_SCHEMA_MISMATCH"),
    ],
)
async def test_a_batch_with_a_bad_record_is_400_and_stores_nothing(rest, admin, bad, expected):
    # given
    records = [FACTORIES["events"](1), FACTORIES["events"](2, **bad)]
    # when
    refused = await rest.post("/operator/data/events", json={"records": records}, as_=admin)
    partial = await rest.post("/operator/data/events", json={"records": records, "partial": True}, as_=admin)
    # then: all or nothing, unless partial
    assert (refused.status_code, code(refused)) == (400, expected)
    result = refused.json()["error"]["details"]["result"]
    assert result["statuses"] == ["SKIPPED", "REJECTED"] and result["accepted"] == 0
    assert partial.status_code == 200
    assert partial.json()["statuses"] == ["ACCEPTED", "REJECTED"]


@pytest.mark.parametrize("body", [{"records": "all of them"}, {"records": [], "surprise": 1}, {}])
async def test_a_malformed_batch_is_400(rest, admin, body):
    # when
    response = await rest.post("/operator/data/sessions", json=body, as_=admin)
    # then
    assert (response.status_code, code(response)) == (400, "E_SCHEMA_MISMATCH")


@pytest.mark.parametrize("role", ROLES)
async def test_the_snapshot_build_is_admin_only(rest, admin, as_role, role):
    # given
    await _load(rest, admin)
    # when
    response = await rest.post(f"/operator/data/snapshots/{D1}/build", as_=as_role(role))
    # then
    if role == "admin":
        assert response.status_code == 200, response.text
        assert response.json()["date"] == D1 and response.json()["snapshots"] == 5
    else:
        assert (response.status_code, code(response)) == (403, "FORBIDDEN")


async def test_a_second_build_is_409_unless_rebuild(rest, admin):
    # given
    await _built(rest, admin, D1)
    # when
    again = await rest.post(f"/operator/data/snapshots/{D1}/build", as_=admin)
    rebuilt = await rest.post(f"/operator/data/snapshots/{D1}/build?rebuild=true", as_=admin)
    # then
    assert (again.status_code, code(again)) == (409, "E_DUPLICATE_SNAPSHOT")
    assert rebuilt.status_code == 200 and rebuilt.json()["rebuilt"] is True


@pytest.mark.parametrize("role", ROLES)
async def test_kpis_and_aggregates_with_each_role(rest, admin, as_role, role):
    # given
    await _built(rest, admin, D1, D2)
    # when
    kpis = await rest.get(f"/operator/data/kpis?date={D1}", as_=as_role(role))
    aggregates = await rest.get(
        f"/operator/data/aggregates?level=branch&from={D1}&to={D2}", as_=as_role(role)
    )
    # then: operators read their own node; engines read the Insights input instead
    if role == "engine":
        assert (kpis.status_code, code(kpis)) == (403, "FORBIDDEN")
        assert (aggregates.status_code, code(aggregates)) == (403, "FORBIDDEN")
        return
    assert kpis.status_code == 200, kpis.text
    assert kpis.json()["day"] == D1
    assert aggregates.status_code == 200, aggregates.text
    branches = {row["branchId"] for row in aggregates.json()}
    assert (
        branches
        == {
            "admin": {"b_seoul", "b_busan", "b_tokyo", "b_berlin"},
            "region": {"b_seoul", "b_busan", "b_tokyo"},
            "country": {"b_seoul", "b_busan"},
            "branch": {"b_seoul"},
        }[role]
    )


async def test_kpis_read_through_both_transports_agree(rest, gql, admin):
    # given
    await _built(rest, admin, D1)
    # when
    through_rest = (await rest.get(f"/operator/data/kpis?date={D1}", as_=admin)).json()
    through_graphql = (await gql(KPIS, {"date": D1}, as_=admin))["data"]["kpis"]
    # then
    assert through_rest["counters"]["activeUsers"] == through_graphql["activeUsers"]["value"]
    assert through_rest["counters"]["quizPassed"] == through_graphql["quizPassRate"]["numerator"]


async def test_kpis_of_a_day_without_records_are_404_and_a_scope_outside_is_403(rest, admin, token):
    # given: D1 built; no record at all on the first day of 2020 (nothing built, no live counters)
    await _built(rest, admin, D1)
    # when
    unbuilt = await rest.get("/operator/data/kpis?date=2020-01-01", as_=admin)
    outside = await rest.get(
        f"/operator/data/kpis?date={D1}&branchId=b_busan", as_=token("branch", branch_id="b_seoul")
    )
    # then
    assert (unbuilt.status_code, code(unbuilt)) == (404, "NOT_FOUND")
    assert (outside.status_code, code(outside)) == (403, "FORBIDDEN")


async def test_a_bad_date_or_level_is_400(rest, admin):
    # when
    date = await rest.get("/operator/data/kpis?date=yesterday", as_=admin)
    level = await rest.get(f"/operator/data/aggregates?level=planet&from={D1}&to={D1}", as_=admin)
    # then
    assert (date.status_code, code(date)) == (400, "E_SCHEMA_MISMATCH")
    assert (level.status_code, code(level)) == (400, "E_SCHEMA_MISMATCH")
