"""Ids the server makes (request ids, record ids of logs sent without a logId).

A fresh uuid4 costs a system call for randomness these ids do not need: they must be
unique, not unpredictable. Each process draws a random prefix once (again in a forked
child) and counts.
"""

from __future__ import annotations

import itertools
import os
import secrets
import weakref
from collections.abc import Callable

_ALL: weakref.WeakSet[UniqueIds] = weakref.WeakSet()


class UniqueIds:
    def __init__(self, make_prefix: Callable[[], str], width: int) -> None:
        """``next()`` is the prefix and then the counter in ``width`` hex digits."""
        self._make_prefix = make_prefix
        self._width = width
        self._renew()
        _ALL.add(self)

    def _renew(self) -> None:
        self._prefix = self._make_prefix()
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):0{self._width}x}"


def _uuid4_prefix() -> str:
    """The first 20 hex digits of a version-4 UUID, random where the version allows."""
    digits = secrets.token_hex(8)
    variant = "89ab"[secrets.randbelow(4)]
    return f"{digits[:8]}-{digits[8:12]}-4{digits[12:15]}-{variant}{digits[15]}{secrets.token_hex(1)}-"


def request_ids() -> UniqueIds:
    """32 hex digits."""
    return UniqueIds(lambda: secrets.token_hex(8), 16)


def uuid_ids() -> UniqueIds:
    """Strings shaped like version-4 UUIDs: a random prefix and a 48-bit counter."""
    return UniqueIds(_uuid4_prefix, 12)


def _after_fork() -> None:
    for ids in list(_ALL):
        ids._renew()


os.register_at_fork(after_in_child=_after_fork)
