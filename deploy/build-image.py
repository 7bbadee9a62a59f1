#!/usr/bin/env python3
"""Build Dispatch's container images through the Docker Engine API and push them.

``make image`` runs this. Two images, both FROM the Debian base that
``deploy/container-services.sh`` makes with debootstrap (there is no Docker Hub here):

* ``<registry>/dispatch/dispatch:<version>`` (``deploy/Containerfile``): the package,
  its runtimes, one process per container chosen by the command (``api``, ``worker``,
  ``scheduler``, ``gateway``). The version is setup.py's; the image is labelled
  ``org.opencontainers.image.version`` and ``io.dispatchframework.source``, a hash of
  everything that goes into it (the package's files, the Containerfile, the base image):
  when an image with that hash is there already, nothing is built.
* ``<registry>/dispatch/infra:bookworm`` (``deploy/image/infra.Containerfile``, with
  ``--infra``): Debian's etcd, Redis and docker-registry, standing in for the upstream
  images the Kubernetes base names, on machines that cannot pull them (the podman
  overlay uses it).

Usage: ``python3 deploy/build-image.py [--infra] [--registry HOST:PORT] [--no-push]``;
prints each image's reference on stdout. ``DOCKER_HOST`` names the engine (default:
podman's socket ``unix:///run/podman/podman.sock``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import sys
import tarfile

import docker
import docker.errors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PODMAN_SOCKET = "unix:///run/podman/podman.sock"
DEFAULT_REGISTRY = "127.0.0.1:5000"
#: what the image is built from: the package, the Procfile its entrypoint reads
PACKAGE_DIRS = ("engine", "api", "tasks", "blueprints", "cli")
CONTEXT_FILES = ("setup.py", "Procfile", "deploy/image/entrypoint.sh", "deploy/image/dispatch_nondumpable.py")
CONTAINERFILE = "deploy/Containerfile"
INFRA_CONTAINERFILE = "deploy/image/infra.Containerfile"
INFRA_TAG = "bookworm"
SKIPPED = re.compile(r"(^|/)(__pycache__|node_modules)(/|$)|\.py[co]$")


def package_version() -> str:
    """setup.py's ``version=``."""
    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
        match = re.search(r"""version\s*=\s*["']([^"']+)["']""", f.read())
    if not match:
        raise SystemExit("setup.py names no version")
    return match.group(1)


def context_files() -> list[str]:
    """The repository paths that go into the image's build context, sorted."""
    paths = list(CONTEXT_FILES)
    for top in PACKAGE_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = [d for d in dirnames if not SKIPPED.search(d + "/")]
            for name in filenames:
                rel = os.path.relpath(os.path.join(dirpath, name), ROOT)
                if not SKIPPED.search(rel):
                    paths.append(rel)
    return sorted(paths)


def build_context(paths: list[str], containerfile: str) -> tuple[io.BytesIO, str]:
    """A tar of ``paths`` (normalized: owner, times) plus the Containerfile, and the
    sha256 of its contents."""
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for rel in [*paths, containerfile]:
            with open(os.path.join(ROOT, rel), "rb") as f:
                data = f.read()
            digest.update(rel.encode() + b"\0" + data + b"\0")
            info = tarfile.TarInfo(rel if rel != containerfile else "Containerfile")
            info.size = len(data)
            info.mode = 0o755 if os.access(os.path.join(ROOT, rel), os.X_OK) else 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer, digest.hexdigest()


def image_label(client: docker.DockerClient, ref: str, label: str) -> str | None:
    try:
        return (client.api.inspect_image(ref)["Config"].get("Labels") or {}).get(label)
    except docker.errors.ImageNotFound:
        return None


def build(client: docker.DockerClient, context: io.BytesIO, ref: str, buildargs: dict[str, str],
          verbose: bool) -> None:
    """``POST /build`` with podman's layer cache on (``layers=true``): an unchanged
    setup.py reuses the dependencies' layer. Exits naming the failing step."""
    api = client.api
    params = {"t": ref, "rm": True, "forcerm": True, "pull": False, "layers": True,
              "dockerfile": "Containerfile", "buildargs": __import__("json").dumps(buildargs)}
    response = api._post(api._url("/build"), data=context, params=params, stream=True,
                         headers={"Content-Type": "application/tar"}, timeout=1800)
    api._raise_for_status(response)
    tail: list[str] = []
    for item in api._stream_helper(response, decode=True):
        text = item.get("stream") or ""
        if text and verbose:
            sys.stderr.write(text)
        tail = (tail + [line for line in text.splitlines() if line.strip()])[-30:]
        if "error" in item:
            sys.stderr.write("\n".join(tail) + "\n")
            raise SystemExit(f"building {ref} failed: {item['error'].strip()}")
    try:
        api.inspect_image(ref)
    except docker.errors.ImageNotFound:
        sys.stderr.write("\n".join(tail) + "\n")
        raise SystemExit(f"building {ref} produced no image") from None


def push(client: docker.DockerClient, ref: str) -> None:
    repo, tag = ref.rsplit(":", 1)
    for item in client.api.push(repo, tag=tag, stream=True, decode=True):
        if "error" in item:
            raise SystemExit(f"pushing {ref} failed: {item['error']}")


def ensure_image(client: docker.DockerClient, ref: str, containerfile: str, paths: list[str],
                 base: str, *, version: str, push_it: bool, verbose: bool) -> str:
    """Build ``ref`` unless an image of the same sources and base is there; push it."""
    try:
        base_id = client.api.inspect_image(base)["Id"]
    except docker.errors.ImageNotFound:
        raise SystemExit(f"the base image {base} is missing: run deploy/container-services.sh") from None
    context, digest = build_context(paths, containerfile)
    source = hashlib.sha256(f"{digest} {base_id}".encode()).hexdigest()[:32]
    if image_label(client, ref, "io.dispatchframework.source") == source:
        print(f"[build-image] {ref} is up to date (sources {source[:12]})", file=sys.stderr)
    else:
        print(f"[build-image] building {ref} (sources {source[:12]})", file=sys.stderr)
        build(client, context, ref, {"BASE": base, "VERSION": version, "SOURCE_HASH": source}, verbose)
    if push_it:
        push(client, ref)
    return ref


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", default=os.environ.get("DISPATCH_REGISTRY") or DEFAULT_REGISTRY,
                        help="where the images are tagged and pushed (default %(default)s)")
    parser.add_argument("--infra", action="store_true",
                        help="also build the etcd/Redis/registry image of the podman overlay")
    parser.add_argument("--no-push", action="store_true", help="tag locally only")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the build's output")
    args = parser.parse_args(argv)
    client = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST") or PODMAN_SOCKET,
                                 version="1.41", timeout=1800)
    registry = args.registry.rstrip("/")
    base = f"{registry}/dispatch/python3-base:latest"
    version = package_version()
    refs = [ensure_image(client, f"{registry}/dispatch/dispatch:{version}", CONTAINERFILE,
                         context_files(), base, version=version, push_it=not args.no_push,
                         verbose=args.verbose)]
    if args.infra:
        refs.append(ensure_image(client, f"{registry}/dispatch/infra:{INFRA_TAG}", INFRA_CONTAINERFILE,
                                 [], base, version=INFRA_TAG, push_it=not args.no_push,
                                 verbose=args.verbose))
    for ref in refs:
        print(ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
