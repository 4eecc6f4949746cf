"""GraphQL types, one module per domain; each is built from a row by ``from_row``."""
