"""``engine.sources.unpack`` on a Python without tarfile's extraction filters (before
3.11.4, as Debian 12's 3.11.2 in the container image): the same refusals by hand."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from engine.errors import InvalidInput
from engine.sources import unpack


def archive(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


@pytest.fixture
def no_filters(monkeypatch):
    monkeypatch.delattr(tarfile, "data_filter")


def test_files_are_extracted_without_special_mode_bits(no_filters, tmp_path):
    info = tarfile.TarInfo("pkg/hello.py")
    info.mode = 0o4777
    unpack(archive((info, b"def handle(ctx, p): return 1\n")), str(tmp_path))
    path = tmp_path / "pkg" / "hello.py"
    assert path.read_text().startswith("def handle")
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o7022 == 0


@pytest.mark.parametrize("name,kind", [("../escape.py", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)])
def test_escaping_members_and_links_are_refused(no_filters, tmp_path, name, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
    with pytest.raises(InvalidInput):
        unpack(archive((info, b"x" if kind == tarfile.REGTYPE else None)), str(tmp_path / "dest"))
    assert not (tmp_path / "escape.py").exists()
    assert not (tmp_path / "dest" / "link").exists()
