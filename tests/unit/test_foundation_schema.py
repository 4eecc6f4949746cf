"""The checked-in SDL is the schema the server serves."""

from __future__ import annotations

from graphql_schema.schema import SDL_PATH, export_sdl


def test_checked_in_sdl_matches_the_schema():
    checked_in = SDL_PATH.read_text(encoding="utf-8")
    assert checked_in == export_sdl(), (
        "graphql_schema/schema.graphql is stale: run `trainer-console export-schema` and commit it"
    )
