"""DataLoaders, made per request in get_context, so caching never crosses callers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from app.services import directory
from app.services.directory import UserFields
from app.services.upm import profile
from app.services.upm.profile import ProfileRows
from persistence.db import Database


class UserByIdLoader(DataLoader[str, UserFields | None]):
    def __init__(self, db: Database) -> None:
        async def load(keys: Sequence[str]) -> list[UserFields | None]:
            async with db.session() as session:
                found = await directory.users_by_ids(session, keys)
            return [found.get(key) for key in keys]

        super().__init__(load_fn=load)


class ProfileRowsByUserIdLoader(DataLoader[str, ProfileRows]):
    """A page of users' performance in four statements, whatever the page size."""

    def __init__(self, db: Database) -> None:
        self._prefetched: dict[str, ProfileRows] = {}

        async def load(keys: Sequence[str]) -> list[ProfileRows]:
            async with db.session() as session:
                found = await profile.rows_by_user_ids(session, keys)
            return [found[key] for key in keys]

        super().__init__(load_fn=load)

    async def prefetch(self, session: AsyncSession, user_ids: Sequence[str]) -> None:
        """Read a page's rows now, on the page's own session: no batch task, no future per
        key, no second connection from the pool."""
        self._prefetched.update(await profile.rows_by_user_ids(session, user_ids))

    def ready(self, user_id: str) -> ProfileRows | None:
        """The rows already loaded for ``user_id`` (a prefetched page), without awaiting."""
        found = self._prefetched.get(user_id)
        if found is not None:
            return found
        future = self.cache_map.get(user_id)
        if future is None or not future.done() or future.cancelled() or future.exception():
            return None
        return future.result()


@dataclass
class Loaders:
    user_by_id: UserByIdLoader
    profile_rows_by_user_id: ProfileRowsByUserIdLoader

    @classmethod
    def create(cls, db: Database) -> Loaders:
        return cls(user_by_id=UserByIdLoader(db), profile_rows_by_user_id=ProfileRowsByUserIdLoader(db))
