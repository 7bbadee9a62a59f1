"""Function sources: base64 tar.gz archives, checked on the way in, unpacked safely."""

from __future__ import annotations

import base64
import binascii
import io
import os
import tarfile
import zlib

from .errors import InvalidInput

#: the decoded size above which a source is refused (etcd's request limit is 1.5 MB)
MAX_SOURCE_BYTES = 1024 * 1024
#: the unpacked (uncompressed tar) size above which a source is refused: decompression
#: stops there, so a gzip bomb never takes more memory than this
MAX_UNPACKED_BYTES = 32 * 1024 * 1024


def decode(source_b64: str) -> bytes:
    """Check a base64 tar.gz source and return it re-packed as a complete archive.

    The original Dispatch CLI sends archives with no end-of-archive blocks; they are
    accepted and normalised here. Raises InvalidInput naming what is wrong.
    """
    if not isinstance(source_b64, str) or not source_b64:
        raise InvalidInput("source must be a base64-encoded tar.gz archive")
    try:
        raw = base64.b64decode(source_b64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("source is not valid base64") from None
    tar_bytes = gunzip(raw, MAX_UNPACKED_BYTES)
    # pad an unterminated archive to a block boundary plus two zero blocks
    tar_bytes += b"\0" * (-len(tar_bytes) % 512) + b"\0" * 1024
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            members = tar.getmembers()
            out = io.BytesIO()
            with tarfile.open(fileobj=out, mode="w:gz") as clean:
                for member in members:
                    _check_member(member)
                    data = tar.extractfile(member) if member.isfile() else None
                    clean.addfile(member, data)
    except tarfile.TarError as exc:
        raise InvalidInput(f"source is not a valid tar.gz archive: {exc}") from None
    if not any(m.isfile() for m in members):
        raise InvalidInput("source archive contains no files")
    packed = out.getvalue()
    if len(packed) > MAX_SOURCE_BYTES:
        raise InvalidInput(f"source is larger than {MAX_SOURCE_BYTES} bytes")
    return packed


def gunzip(raw: bytes, limit: int) -> bytes:
    """``raw``'s gzip members decompressed, holding at most ``limit`` + 1 bytes of output:
    :class:`InvalidInput` naming the limit as soon as the output passes it."""
    out = bytearray()
    rest = raw
    try:
        while rest.strip(b"\0"):  # members follow each other; zero padding may end them
            member = zlib.decompressobj(wbits=31)  # gzip framing
            pending = rest
            while not member.eof:
                out += member.decompress(pending, limit + 1 - len(out))
                if len(out) > limit:
                    raise InvalidInput(f"source unpacks to more than the limit of {limit} "
                                       "bytes")
                pending = member.unconsumed_tail
                if not pending and not member.eof:
                    raise InvalidInput("source is not a valid tar.gz archive: the gzip data "
                                       "is truncated")
            rest = member.unused_data
    except zlib.error:
        raise InvalidInput("source is not a valid tar.gz archive: not gzip data") from None
    return bytes(out)


def _check_member(member: tarfile.TarInfo) -> None:
    name = os.path.normpath(member.name.lstrip("/"))
    if name == ".." or name.startswith("../"):
        raise InvalidInput(f"source archive member {member.name!r} escapes the archive")
    if not (member.isfile() or member.isdir()):
        raise InvalidInput(f"source archive member {member.name!r} is not a file or directory")


def pack(path: str) -> bytes:
    """A tar.gz of ``path`` (a file, or a directory's contents) as Dispatch's CLI makes it."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        if os.path.isdir(path):
            for entry in sorted(os.listdir(path)):
                tar.add(os.path.join(path, entry), arcname=entry)
        else:
            tar.add(path, arcname=os.path.basename(path))
    return out.getvalue()


def unpack(data: bytes, dest: str) -> None:
    """Extract a source archive into ``dest`` (no links, nothing outside ``dest``)."""
    os.makedirs(dest, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
            return
        # Python before 3.11.4 (Debian 12's 3.11.2, the container image's) has no extraction
        # filters: the same checks by hand (only files and directories inside ``dest``,
        # no special mode bits)
        members = tar.getmembers()
        for member in members:
            _check_member(member)
            member.mode &= 0o755
        tar.extractall(dest, members=members)
