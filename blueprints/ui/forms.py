"""Reading form fields: each problem is an InvalidInput naming the field, so that a
page can show it beside that field (:class:`FieldErrors`)."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from typing import Any

from engine.errors import InvalidInput


class FieldError(InvalidInput):
    """Bad input in one form field; ``field`` is the form field's name."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def json_field(form, field: str, label: str, *, required: bool = False,
               default: Any = None) -> Any:
    """The JSON value of ``field``; FieldError saying where the JSON breaks."""
    text = (form.get(field) or "").strip()
    if not text:
        if required:
            raise FieldError(field, f"{label} is required (JSON)")
        return default
    try:
        return json.loads(text)
    except ValueError as exc:
        raise FieldError(field, f"{label} is not valid JSON: {exc}") from None


def int_field(form, field: str, label: str, default: int = 0) -> int:
    text = (form.get(field) or "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise FieldError(field, f"{label} must be a whole number") from None
    if value < 0:
        raise FieldError(field, f"{label} must not be negative")
    return value


def names_field(form, field: str) -> list[str]:
    """A comma- or space-separated list of names."""
    return [n for n in (form.get(field) or "").replace(",", " ").split() if n]


def tags_field(form, field: str = "tags") -> list[dict[str, str]]:
    """``key=value`` pairs, comma-separated, as Dispatch's tags."""
    tags = []
    for item in (form.get(field) or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FieldError(field, f"tag {item!r} must be key=value")
        tags.append({"key": key.strip(), "value": value.strip()})
    return tags


def tags_text(tags: Any) -> str:
    return ", ".join(f"{t['key']}={t.get('value') or ''}" for t in tags or ())


def source_file_name(handler: str, language: str) -> str:
    """The file an editor's code is saved as: ``mod.py`` for the Python handler
    ``mod.fn``; the handler's own file for Node.js (``hello`` → ``hello.js``)."""
    handler = handler.strip()
    if language.startswith("python"):
        module = handler.rpartition(".")[0] or "handler"
        return module.replace(".", "/") + ".py"
    name = handler.removeprefix("./") or "index.js"
    return name if name.endswith(".js") else f"{name}.js"


def pack_text(file_name: str, text: str) -> str:
    """Base64 of a tar.gz holding one file: what the function API takes as ``source``."""
    data = text.encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo(file_name)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(out.getvalue()).decode()


def pack_upload(file_name: str, data: bytes) -> str:
    """An uploaded file as ``source``: a ``.tar.gz``/``.tgz`` as it is, any other file
    packed alone under its own name."""
    if file_name.endswith((".tar.gz", ".tgz")):
        return base64.b64encode(data).decode()
    base = file_name.replace("\\", "/").rsplit("/", 1)[-1] or "handler"
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo(base)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(out.getvalue()).decode()


def single_file(source_b64: str) -> tuple[str, str] | None:
    """``(name, text)`` of a source archive holding one UTF-8 file, else None: what the
    editor can show for an update."""
    try:
        raw = base64.b64decode(source_b64)
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
            files = [m for m in tar.getmembers() if m.isfile()]
            if len(files) != 1:
                return None
            return files[0].name, tar.extractfile(files[0]).read().decode()
    except (OSError, tarfile.TarError, UnicodeDecodeError, ValueError):
        return None
