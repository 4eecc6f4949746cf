"""GraphQL resolvers, one module per domain: authorise, call one service, map to a type."""
