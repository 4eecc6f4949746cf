"""Server-made ids: unique within a process and across processes, forked ones included."""

from __future__ import annotations

import os
import uuid

import pytest

from app.ids import request_ids, uuid_ids


def test_ids_of_one_process_are_distinct_and_keep_their_shape():
    # given
    records, requests = uuid_ids(), request_ids()
    # when
    made = [records.next() for _ in range(1000)]
    requested = [requests.next() for _ in range(1000)]
    # then
    assert len(set(made)) == 1000 and len(set(requested)) == 1000
    assert {uuid.UUID(made_id).version for made_id in made} == {4}
    assert all(len(request_id) == 32 and int(request_id, 16) >= 0 for request_id in requested)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_draws_its_own_prefix():
    # given: a parent that has made an id
    records = uuid_ids()
    parent_first = records.next()
    read, write = os.pipe()
    # when: a forked child makes one
    pid = os.fork()
    if pid == 0:  # the child: hand its id back and leave at once
        os.write(write, records.next().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child_first = os.read(read, 100).decode()
    os.close(read)
    # then: the child counts under another prefix; the parent keeps its own
    parent_next = records.next()
    assert child_first[:24] != parent_first[:24]
    assert parent_next[:24] == parent_first[:24]
