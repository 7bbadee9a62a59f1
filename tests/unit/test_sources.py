"""Function sources on the way in: a gzip bomb is refused while it unpacks."""

from __future__ import annotations

import base64
import gzip
import io
import tarfile
import tracemalloc

import pytest

from engine.errors import InvalidInput
from engine.sources import MAX_UNPACKED_BYTES, decode, gunzip


def gzip_bomb(gib: int = 1) -> bytes:
    """About 1 MB of gzip that unpacks to ``gib`` GiB of zeros: 1 MiB of zeros compressed
    once, repeated as gzip members (gzip allows several members one after the other)."""
    member = gzip.compress(b"\0" * (1 << 20), compresslevel=9)
    return member * (1024 * gib)


def test_a_gzip_bomb_is_refused_naming_the_limit_without_unpacking_it():
    bomb = base64.b64encode(gzip_bomb()).decode()
    assert len(bomb) < 2 * 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput) as caught:
            decode(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"more than the limit of {MAX_UNPACKED_BYTES} bytes" in caught.value.message
    # decompression stopped at the limit: never a gibibyte held, at most the limit
    # (plus the input and the decompressor's last chunk)
    assert peak < MAX_UNPACKED_BYTES + 8 * 1024 * 1024, peak


def test_gunzip_stops_one_byte_past_the_limit():
    data = gzip.compress(b"x" * 1000)
    assert gunzip(data, 1000) == b"x" * 1000
    with pytest.raises(InvalidInput, match="more than the limit of 999 bytes"):
        gunzip(data, 999)


def test_several_members_and_trailing_zeros_unpack_as_gzip_does():
    data = gzip.compress(b"ab") + gzip.compress(b"cd") + b"\0" * 8
    assert gunzip(data, 100) == gzip.decompress(gzip.compress(b"ab") + gzip.compress(b"cd"))


@pytest.mark.parametrize("raw, message", [
    (b"not gzip at all", "not gzip data"),
    (gzip.compress(b"x" * 1000)[:-12], "truncated"),
])
def test_broken_gzip_is_refused_naming_the_problem(raw, message):
    with pytest.raises(InvalidInput, match=message):
        gunzip(raw, 10_000)


def test_a_real_source_still_decodes():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo("hello.py")
        body = b"def handle(ctx, payload):\n    return payload\n"
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    packed = decode(base64.b64encode(out.getvalue()).decode())
    with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as tar:
        assert tar.getnames() == ["hello.py"]
