"""The GraphQL schema: types per domain, composed in graphql_schema.schema."""
