"""The specification's own REST paths under ``/operator/...``: a second transport over the same
service functions the GraphQL resolvers call (see ``rest.app``)."""
