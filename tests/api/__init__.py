"""API tests: GraphQL over HTTP, through httpx's ASGITransport into the app, on a real database.

Each test gets a freshly migrated database (SQLite by default, PostgreSQL when DATABASE_URL
names one) and an app built in-process (see tests/conftest.py): under a second each, a few
seconds for the largest (a page of 100 users with their history). They speak the contract as a
client does; a few reach into the database with one SQL statement, to set up what the API
cannot (a ruleset slipped past the upload check) or to see that the database refuses an edit.
"""
