"""The ``docker`` builder: images and function images through the Docker Engine API (the
``docker`` package; podman's compatible service here), pushed to a registry
(``DISPATCH_REGISTRY``, default ``127.0.0.1:5000``).

Configs, as they flow from base image to image to function (``Deployment.image_config``):

* ``check_base`` -> ``{"language": L, "baseImage": REF}``: REF is the base image's
  ``dockerUrl`` as given (e.g. ``127.0.0.1:5000/dispatch/python3-base:latest``, or
  ``localhost/dispatch/python3-base`` for one only on this engine), found or pulled.
* ``build_image`` -> ``BuiltImage(url=REF, config={"language", "baseImage", "dockerUrl": REF})``
  with REF ``<registry>/dispatch/<org>/image-<name>:<content hash>``: a generated
  Dockerfile ``FROM`` the base installs the system packages with ``apt-get`` (the bases
  made here are Debian's) and the runtime dependencies with ``pip`` (``requirements.txt``)
  or ``npm`` (``package.json``, into ``/image/node_modules``, linked as ``/node_modules``
  so that ``require`` finds it from ``/function``). The hash covers the base image's id,
  the Dockerfile and the manifest: building the same again reuses the image.
* ``build_function`` -> the image's config plus ``{"functionImage": REF}``, REF
  ``<registry>/dispatch/<org>/func-<name>:<version>``: ``FROM`` the image's ``dockerUrl``
  (or a base's ``baseImage``), the source in ``/function``, the language's server from
  ``engine/runtimes/`` in ``/dispatch``, run on port 8080 by the image's command (the
  ``docker`` driver runs it on a unix socket instead; see :mod:`engine.drivers.container`).

Images are labelled ``io.dispatchframework.*`` with the entity they were built for.
A failed build raises BuildError with the build log's tail and leaves nothing tagged.
``remove_image`` removes the local tag and the registry's manifest (the registry here
allows deletes; its blobs go at its next ``garbage-collect``). The port has no call that
removes a function's image yet: ``remove_function`` does it, for whoever needs it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tarfile
import tempfile
from typing import Any, Iterator

import docker.errors
import requests
import requests.exceptions

from ..drivers.base import Deployment
from ..drivers.container import FUNCTION_DIR, SERVER_DIR, SERVERS, docker_client, server_command
from ..drivers.languages import RUNTIMES
from ..errors import Unavailable
from ..sources import unpack
from .base import BaseImageSpec, BuildError, Builder, BuiltImage, ImageSpec

log = logging.getLogger("dispatch.builder.docker")

DEFAULT_REGISTRY = "127.0.0.1:5000"
#: lines of the build log kept in a BuildError (the entity's ``reason``)
LOG_TAIL_LINES = 15
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]*")
_VERSION = re.compile(r"[A-Za-z0-9.+~:*-]+")
_MANIFESTS = {"python3": "requirements.txt", "nodejs": "package.json"}
_ENGINE_ERRORS = (docker.errors.APIError, requests.exceptions.RequestException)


class DockerBuilder(Builder):
    """Builds images with the Docker Engine API and pushes them to a registry.

    :param home: ``$DISPATCH_HOME`` (unused: everything lives in the engine and registry)
    :param docker_host: the engine's URL; default ``$DOCKER_HOST``, else podman's socket
    :param registry: ``host:port`` images are pushed to (the settings'
        ``DISPATCH_REGISTRY``); default ``127.0.0.1:5000``
    """

    def __init__(self, home: str, *, docker_host: str | None = None, registry: str | None = None):
        self._client = docker_client(docker_host, timeout=900)
        self.registry = (registry or DEFAULT_REGISTRY).rstrip("/")

    # -- base images ------------------------------------------------------------------

    def check_base(self, base: BaseImageSpec) -> dict[str, Any]:
        """Find the base image on the engine or pull it (see the module's docstring)."""
        if base.language not in SERVERS:
            raise BuildError(f"base image {base.name}: the docker builder has no {base.language!r} runtime "
                             f"(known: {', '.join(SERVERS)})")
        ref = base.url.strip()
        if not ref:
            raise BuildError(f"base image {base.name} has no image reference (dockerUrl)")
        self._ensure_local(ref, what="base image")
        return {"language": base.language, "baseImage": ref}

    def base_present(self, base: BaseImageSpec) -> bool:
        try:
            self._client.api.inspect_image(base.url.strip())
            return True
        except docker.errors.ImageNotFound:
            return False
        except _ENGINE_ERRORS as exc:
            raise Unavailable(f"the container engine cannot be reached: {exc}") from None

    # -- images -----------------------------------------------------------------------

    def build_image(self, image: ImageSpec, base_config: dict[str, Any]) -> BuiltImage:
        """Build the image's dependencies onto its base, tag it by content, push it."""
        language = base_config.get("language") or image.base.language
        base_ref = base_config.get("baseImage") or image.base.url
        base_id = self._ensure_local(base_ref, what="base image")
        files, steps = self._dependency_steps(image, language)
        dockerfile = f"FROM {base_ref}\n" + "".join(steps)
        digest = hashlib.sha256(json.dumps([base_id, dockerfile]).encode())
        for name, data in sorted(files.items()):
            digest.update(f"\0{name}\0{len(data)}\0".encode() + data)
        content = digest.hexdigest()[:20]
        ref = f"{self.registry}/dispatch/{_repo_part(image.org)}/image-{_repo_part(image.name)}:{content}"
        config = {"language": language, "baseImage": base_ref, "dockerUrl": ref}
        if self._has_image(ref):
            log.info("image.reused image=%s/%s ref=%s", image.org, image.name, ref)
            self._push(ref)  # a no-op when the registry has it, and it may have lost it
            return BuiltImage(url=ref, config=config)
        labels = {"io.dispatchframework.image-id": image.id,
                  "io.dispatchframework.image": f"{image.org}/{image.name}",
                  "io.dispatchframework.language": language,
                  "io.dispatchframework.base-image": base_ref,
                  "io.dispatchframework.content": content}
        same = self._with_content(content)
        if same:  # another image has these very dependencies: only the labels differ
            log.info("image.reused image=%s/%s from=%s", image.org, image.name, same[:19])
            dockerfile, files = f"FROM {same}\n", {}
        self._build(ref, dockerfile + _label_step(labels), files, what=f"image {image.org}/{image.name}")
        self._push(ref)
        return BuiltImage(url=ref, config=config)

    def remove_image(self, image: ImageSpec, built: BuiltImage) -> None:
        """Remove the local tag and the registry's manifest of ``built``."""
        self._remove(built.url)

    def remove_function(self, config: dict[str, Any]) -> None:
        """Remove a function version's image (``config`` is what ``build_function``
        returned): its local tag and its registry manifest."""
        if config.get("functionImage"):
            self._remove(config["functionImage"])

    def _remove(self, ref: str) -> None:
        try:
            self._client.api.remove_image(ref)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:  # e.g. a container still uses it
            log.warning("image.untag_failed ref=%s error=%r", ref, exc.explanation or str(exc))
        except requests.exceptions.RequestException as exc:
            raise Unavailable(f"the container engine cannot be reached: {exc}") from None
        self._delete_from_registry(ref)

    # -- functions --------------------------------------------------------------------

    def build_function(self, deployment: Deployment) -> dict[str, Any]:
        """An image of the version: its image + the source + the language's server."""
        d = deployment
        config = dict(d.image_config)
        if d.language not in SERVERS:
            raise BuildError(f"the docker builder cannot build {d.language!r} functions (known: {', '.join(SERVERS)})")
        from_ref = config.get("dockerUrl") or config.get("baseImage")
        if not from_ref:
            raise BuildError(f"image {d.image} has no container image: build it with the docker builder")
        ref = f"{self.registry}/dispatch/{_repo_part(d.org)}/func-{_repo_part(d.name)}:{_tag(d.version)}"
        if not self._has_image(ref):  # a version's image never changes: built once
            self._ensure_local(from_ref, what="image")
            server = SERVERS[d.language][1]
            with open(RUNTIMES[d.language].server_file, "rb") as f:
                files = {f"root{SERVER_DIR}/{server}": f.read()}
            labels = {"io.dispatchframework.function": f"{d.org}/{d.name}",
                      "io.dispatchframework.function-version": d.version,
                      "io.dispatchframework.handler": d.handler,
                      "io.dispatchframework.language": d.language,
                      "io.dispatchframework.image": from_ref}
            # one COPY of a prepared tree: each Dockerfile step costs ~0.1 s on podman
            dockerfile = (f"FROM {from_ref}\nCOPY root/ /\n" + _label_step(labels)
                          + f"CMD {json.dumps(server_command(d.language, d.handler))}\n")
            self._build(ref, dockerfile, files, what=f"function {d.org}/{d.name}",
                        source=(f"root{FUNCTION_DIR}", d.source()))
        self._push(ref)
        return {**config, "functionImage": ref}

    def close(self) -> None:
        self._client.close()

    # -- the engine -------------------------------------------------------------------

    def _dependency_steps(self, image: ImageSpec, language: str) -> tuple[dict[str, bytes], list[str]]:
        """The build context's files and the Dockerfile's steps installing dependencies."""
        files: dict[str, bytes] = {}
        steps: list[str] = []
        if image.system_packages:
            wanted = []
            for pkg in image.system_packages:
                name, version = (pkg.get("name") or "").strip(), (pkg.get("version") or "").strip()
                if not _PACKAGE.fullmatch(name):
                    raise BuildError(f"system package name {name!r} is not a Debian package name")
                if version and not _VERSION.fullmatch(version):
                    raise BuildError(f"system package {name}: version {version!r} is not a Debian version")
                wanted.append(f"{name}={version}" if version else name)
            steps.append("RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                         f"--no-install-recommends {' '.join(wanted)} && rm -rf /var/lib/apt/lists/*\n")
        manifest = (image.manifest or "").strip()
        if manifest:
            name = _MANIFESTS.get(language)
            if name is None:
                raise BuildError(f"the docker builder installs no runtime dependencies for {language!r}")
            if language == "nodejs":
                try:
                    if not isinstance(json.loads(manifest), dict):
                        raise ValueError("not a JSON object")
                except ValueError as exc:
                    raise BuildError(f"runtime dependencies of a nodejs image must be a package.json: {exc}") from None
            files[name] = (manifest + "\n").encode()
            steps.append(f"COPY {name} /image/{name}\n")
            if language == "python3":
                steps.append("RUN python3 -m pip install --no-cache-dir --break-system-packages "
                             "--root-user-action=ignore --disable-pip-version-check --progress-bar off "
                             f"-r /image/{name}\n")
            else:
                steps.append("RUN cd /image && npm install --omit=dev --no-audit --no-fund --no-update-notifier "
                             "--loglevel=error && ln -s /image/node_modules /node_modules\n")
        return files, steps

    def _build(self, ref: str, dockerfile: str, files: dict[str, bytes], *, what: str,
               source: tuple[str, bytes] | None = None) -> None:
        """Build and tag ``ref``; BuildError with the log's tail if it fails."""
        context = _context(dockerfile, files, source)
        lines: list[str] = []
        error = None
        try:
            for item in self._build_stream(context, ref):
                if "stream" in item:
                    lines += [line for line in item["stream"].splitlines() if line.strip()]
                if "error" in item:
                    error = (item.get("errorDetail") or {}).get("message") or item["error"]
        except docker.errors.APIError as exc:
            error = exc.explanation or str(exc)
        except requests.exceptions.RequestException as exc:
            raise Unavailable(f"the container engine cannot be reached: {exc}") from None
        if error is None and not self._has_image(ref):
            error = "the build produced no image"
        if error is not None:
            self._untag(ref)  # nothing half-built stays tagged
            error = error.strip()
            tail = "\n".join(lines[-LOG_TAIL_LINES:] + ([error] if error not in lines[-1:] else []))
            log.warning("image.build_failed what=%r ref=%s error=%r", what, ref, error)
            raise BuildError(f"{what} failed to build: {tail}")
        log.info("image.built what=%r ref=%s", what, ref)

    def _build_stream(self, context: io.BytesIO, ref: str) -> Iterator[dict[str, Any]]:
        """``POST /build``, as ``APIClient.build`` does, plus podman's ``layers=false``:
        without it podman keeps an image per step (a build cache this builder does not
        need: it reuses images by content), and a failed build would leave them behind.
        Docker ignores the parameter."""
        api = self._client.api
        params = {"t": ref, "rm": True, "forcerm": True, "pull": False, "layers": False}
        response = api._post(api._url("/build"), data=context, params=params, stream=True,
                             headers={"Content-Type": "application/tar"})
        api._raise_for_status(response)
        return api._stream_helper(response, decode=True)

    def _with_content(self, content: str) -> str | None:
        """The id of an image already built with these contents, if there is one."""
        try:
            found = self._client.api.images(filters={"label": f"io.dispatchframework.content={content}"})
        except _ENGINE_ERRORS:
            return None
        return found[0]["Id"] if found else None

    def _push(self, ref: str) -> None:
        repo, tag = ref.rsplit(":", 1)
        try:
            for item in self._client.api.push(repo, tag=tag, stream=True, decode=True):
                if "error" in item:
                    raise BuildError(f"pushing {ref} failed: {item['error']}")
        except docker.errors.APIError as exc:
            raise BuildError(f"pushing {ref} failed: {exc.explanation or exc}") from None
        except requests.exceptions.RequestException as exc:
            raise Unavailable(f"the container engine cannot be reached: {exc}") from None

    def _ensure_local(self, ref: str, *, what: str) -> str:
        """The image's id, pulled first if the engine does not have it."""
        try:
            return self._client.api.inspect_image(ref)["Id"]
        except docker.errors.ImageNotFound:
            pass
        except _ENGINE_ERRORS as exc:
            raise Unavailable(f"the container engine cannot be reached: {exc}") from None
        try:
            image = self._client.images.pull(ref)
        except docker.errors.APIError as exc:
            raise BuildError(f"{what} {ref} cannot be pulled: {exc.explanation or exc}") from None
        except requests.exceptions.RequestException as exc:
            raise Unavailable(f"the container engine cannot be reached: {exc}") from None
        log.info("image.pulled ref=%s", ref)
        return image.id

    def _has_image(self, ref: str) -> bool:
        try:
            self._client.api.inspect_image(ref)
            return True
        except docker.errors.ImageNotFound:
            return False
        except _ENGINE_ERRORS as exc:
            raise Unavailable(f"the container engine cannot be reached: {exc}") from None

    def _untag(self, ref: str) -> None:
        try:
            self._client.api.remove_image(ref)
        except _ENGINE_ERRORS:
            pass

    def _delete_from_registry(self, ref: str) -> None:
        """DELETE the manifest ``ref`` names (the registry API's only way to delete)."""
        registry, _, rest = ref.partition("/")
        if registry != self.registry:
            return  # not ours to delete
        repo, tag = rest.rsplit(":", 1)
        url = f"http://{registry}/v2/{repo}/manifests"
        accept = ", ".join(["application/vnd.oci.image.manifest.v1+json",
                            "application/vnd.docker.distribution.manifest.v2+json"])
        try:
            head = requests.head(f"{url}/{tag}", headers={"Accept": accept}, timeout=10)
            digest = head.headers.get("Docker-Content-Digest")
            if head.status_code == 404 or not digest:
                return
            resp = requests.delete(f"{url}/{digest}", timeout=10)
            if resp.status_code not in (202, 404):
                log.warning("registry.delete_refused ref=%s status=%d", ref, resp.status_code)
        except requests.exceptions.RequestException as exc:
            log.warning("registry.delete_failed ref=%s error=%r", ref, str(exc))


def _context(dockerfile: str, files: dict[str, bytes], source: tuple[str, bytes] | None) -> io.BytesIO:
    """The build context as a tar: the Dockerfile, ``files``, and ``source`` (where, the
    tar.gz) unpacked; every entry root's and world-readable (functions run as nobody)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in [("Dockerfile", dockerfile.encode()), *files.items()]:
            _add_bytes(tar, name, data)
        if source is not None:
            where, archive = source
            with tempfile.TemporaryDirectory(prefix="dispatch-build-") as tmp:
                try:
                    unpack(archive, tmp)
                except (OSError, EOFError, ValueError, tarfile.TarError) as exc:
                    raise BuildError(f"the function's source cannot be unpacked: {exc}") from None
                tar.add(tmp, arcname=where, filter=_normalized)
    out.seek(0)
    return out


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    parent = os.path.dirname(name)
    if parent and parent not in tar.getnames():  # parents first, world-readable
        _add_bytes_dir(tar, parent)
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_bytes_dir(tar: tarfile.TarFile, name: str) -> None:
    parent = os.path.dirname(name)
    if parent and parent not in tar.getnames():
        _add_bytes_dir(tar, parent)
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)


def _normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    executable = info.isdir() or info.mode & 0o100
    info.mode = 0o755 if executable else 0o644
    return info


def _label_step(labels: dict[str, str]) -> str:
    return "LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in labels.items()) + "\n"


def _repo_part(name: str) -> str:
    """A name as a repository path component: lowercase, [a-z0-9] separated by [._-]."""
    part = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("._-")
    return re.sub(r"[._-]{2,}", "-", part) or "x"


def _tag(version: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", version)[:128] or "latest"


__all__ = ["DEFAULT_REGISTRY", "DockerBuilder"]
