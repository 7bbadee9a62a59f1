"""Images as the CLI gathers them: the dependency files ``create image`` reads and the
seed images.

``--system-deps FILE`` holds either a JSON list (``[{"name": "curl", "version":
"7.88.1-10"}]`` or ``["curl"]``) or one package a line, ``name [version]`` (blank lines
and ``#`` comments skipped): what Dispatch's ``system-packages.txt`` held.
"""

from __future__ import annotations

import json
from typing import Any

import click

#: the base images ``create seed-images`` makes, by the server's builder: what the
#: local builder runs (the host's runtimes) and what the docker builder pulls from the
#: server's registry (``{registry}``, from ``/v1/version``)
SEED_BASE_URLS = {
    "local": {"python3": "python3", "nodejs": "nodejs"},
    "docker": {"python3": "{registry}/dispatch/python3-base:latest",
               "nodejs": "{registry}/dispatch/nodejs-base:latest"},
}
DEFAULT_REGISTRY = "127.0.0.1:5000"
SEED_LANGUAGES = ("python3", "nodejs")


def read_manifest(path: str) -> str:
    """The runtime dependencies' manifest (requirements.txt, package.json), verbatim."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not UTF-8 text") from None


def read_system_deps(path: str) -> list[dict[str, Any]]:
    """``[{name, version}]`` from a ``--system-deps`` file (see the module's docstring)."""
    text = read_manifest(path)
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise click.BadParameter(f"{path} is not valid JSON ({exc})") from None
        packages = []
        for item in items:
            if isinstance(item, str):
                item = {"name": item}
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise click.BadParameter(f"{path}: each package must be a name or an object "
                                         "with a name and a version")
            packages.append({"name": item["name"], "version": item.get("version")})
        return packages
    packages = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) > 2:
            raise click.BadParameter(f"{path} line {number}: expected 'name [version]'")
        packages.append({"name": words[0], "version": words[1] if len(words) > 1 else None})
    return packages


def image_body(name: str, base: str, manifest: str | None,
               packages: list[dict[str, Any]]) -> dict[str, Any]:
    """The POST body of image ``name`` on base image ``base``."""
    return {"name": name, "baseImageName": base,
            "runtimeDependencies": {"manifest": manifest},
            "systemDependencies": {"packages": packages}, "tags": []}


def seed_documents(builder: str, base_urls: dict[str, str],
                   registry: str | None = None) -> list[dict[str, Any]]:
    """The seed images as seed-file documents: a base image and an image per language.

    The images are named ``python3`` and ``nodejs``, as Dispatch's were, so that
    functions written for Dispatch (``image: python3``) run on them; in an organization
    that has them, they take the place of the built-in images of those names.
    """
    defaults = {language: url.format(registry=registry or DEFAULT_REGISTRY)
                for language, url in SEED_BASE_URLS.get(builder, {}).items()}
    urls = {**defaults, **base_urls}
    documents = []
    for language in SEED_LANGUAGES:
        if language not in urls:
            raise click.UsageError(f"no base image for {language} with the {builder} builder: "
                                   f"give one with --base-url {language}=URL")
        documents.append({"kind": "BaseImage", "name": f"{language}-base",
                          "dockerUrl": urls[language], "language": language})
    for language in SEED_LANGUAGES:
        documents.append({"kind": "Image", "name": language,
                          "baseImageName": f"{language}-base"})
    return documents
