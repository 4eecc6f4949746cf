"""Business rules, one module per domain; resolvers and the REST layer call these."""
