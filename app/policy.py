"""Who may call what: the one table of roles, read by the GraphQL permissions, the
resolvers, ``app.scope`` and ``app.services.ops.policy``.

Each name is a set of roles for one kind of operation. A role missing from a set is
FORBIDDEN; what a permitted role then sees or writes is narrowed by its scope
(``app.scope``) and, for ops, by the partial rules of ``app.services.ops.policy``.
A leaf module (it imports only ``app.auth``), so every floor may read it.
"""

from __future__ import annotations

from app.auth import Role

Roles = frozenset[Role]

ANYONE: Roles = frozenset(Role)
ADMIN: Roles = frozenset({Role.ADMIN})
# user data (users, logs, profiles, analytics), each operator within its scope
OPERATORS: Roles = frozenset({Role.ADMIN, Role.REGION, Role.COUNTRY, Role.BRANCH})
INSIGHTS_READERS: Roles = OPERATORS | {Role.ENGINE}
# raw logs (data-layer §3) and UPM logs: engines send them, an admin may too
LOG_WRITERS: Roles = frozenset({Role.ENGINE, Role.ADMIN})

# the ops §8 matrix (drawn in app.services.ops.policy)
MODEL_CONFIG_READERS: Roles = frozenset({Role.ADMIN, Role.ENGINE})
FEATURE_READERS: Roles = frozenset({Role.ADMIN, Role.REGION, Role.ENGINE})
FEATURE_WRITERS: Roles = frozenset({Role.ADMIN, Role.REGION})
LIMITS_READERS: Roles = frozenset({Role.ADMIN, Role.ENGINE})
RULESET_READERS: Roles = frozenset({Role.ADMIN, Role.REGION, Role.COUNTRY, Role.ENGINE})
HOT_RELOADERS: Roles = frozenset({Role.ADMIN, Role.REGION, Role.COUNTRY})
HEALTH_STATUS: Roles = OPERATORS
HEALTH_ENGINES: Roles = frozenset({Role.ADMIN, Role.REGION, Role.COUNTRY})
HEALTH_DETAILS: Roles = ADMIN
HEARTBEAT_SENDERS: Roles = frozenset({Role.ENGINE, Role.ADMIN})
