"""Entity ids and run names (engine.entities.new_uuid): version 4 UUIDs from the kernel's
random bytes, taken a few kilobytes at a time per thread — never the same one twice,
across threads and in a forked child."""

from __future__ import annotations

import os
import threading
import uuid

from engine import entities


def test_ids_are_version_4_uuids_and_never_repeat_across_threads():
    made: list[list[str]] = []

    def make() -> None:
        made.append([entities.new_uuid() for _ in range(2000)])  # several refills each

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for batch in made for i in batch]
    assert len(set(ids)) == len(ids) == 16000
    for i in ids[:100] + ids[-100:]:
        parsed = uuid.UUID(i)
        assert str(parsed) == i and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_forked_child_does_not_make_its_parents_next_ids():
    entities.new_uuid()  # this thread has bytes left over that a child would inherit
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, "\n".join(entities.new_uuid() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        child = f.read().split("\n")
    os.waitpid(pid, 0)
    parent = [entities.new_uuid() for _ in range(10)]
    assert len(child) == 10 and not set(child) & set(parent)


def test_an_id_is_what_uuid_makes_of_the_same_bytes():
    data = bytes((i * 7 + i // 256) % 256 for i in range(4096))  # 256 ids of varied bytes
    entities._random.__dict__.update(data=data, at=0)
    for at in range(0, len(data), 16):
        assert entities.new_uuid() == str(uuid.UUID(bytes=data[at:at + 16], version=4))
