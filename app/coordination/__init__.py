"""What the workers of one deployment share: the engine limits and the live-update bus.

- With ``TRAINER_REDIS_URL``, both live in Redis (``redis_store``).
- On PostgreSQL without Redis, both live in PostgreSQL (``postgres_store``).
- On SQLite (one worker) or with ``TRAINER_COORDINATION=memory``, the limits are this
  process's counters and live updates stay in it.

When the shared store cannot be reached, the limits fall back to this process's counters (each
worker then counts alone) and live updates reach only this worker's subscribers; ``health``
says both, and the store is tried again every second. Nothing else depends on it: logs are
accepted and stored as before.
"""

from app.coordination.service import Coordination, CoordinationStatus, build_coordination
from app.coordination.verdicts import Lease

__all__ = ["Coordination", "CoordinationStatus", "Lease", "build_coordination"]
