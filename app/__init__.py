"""trainer-console: the GraphQL API behind a Retail AI Trainer's operator console."""
