"""The ``local`` builder (embedded default): images are directories on this host.

A base image names a runtime of this host. Its ``dockerUrl`` is either the absolute
path of an interpreter (``/usr/bin/python3``, ``/opt/node20/bin/node``) or the name of
its language (``python3`` or ``python``; ``nodejs`` or ``node``), which means the host's
default: the server's own Python (``sys.executable``) or ``node`` on ``PATH``. Anything
else (an image reference such as ``dispatch/python3-base:latest``) is refused: the base
image goes ``ERROR`` saying so, as a missing Docker image does with the docker builder.

An image is one directory under ``$DISPATCH_HOME/images/<sha256>``, addressed by its
content (language, interpreter, its version and the manifest):

* ``python3``: a virtualenv (``venv --without-pip``) into which the host's pip installs
  the manifest as a ``requirements.txt`` (``pip --python <venv>/bin/python``);
* ``nodejs``: a directory holding the manifest as ``package.json`` and what
  ``npm install --omit=dev`` puts in its ``node_modules``.

Each is built in a temporary sibling directory and renamed into place, so a failed build
leaves nothing and an address that exists is complete. Building the same content again
finds the directory and reuses it (near-instant); two identical builds at once take a
file lock per address, so the second waits and reuses the first's result.

No package code runs at build time: pip installs wheels only (``--only-binary=:all:``)
and npm skips install scripts (``--ignore-scripts``), because this builder is not
sandboxed and runs as the server, which can read ``$DISPATCH_HOME``. System packages
need a root filesystem of their own: refused here (the ``docker`` builder installs them).

``remove_image`` deletes an image's directory. Several image entities may share one (the
same base and manifest): the image service calls it only once no image entity and no
function version refers to the directory any more (the builder cannot see the store).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Iterator

from ..drivers.base import Deployment
from .base import BaseImageSpec, BuildError, Builder, BuiltImage, ImageSpec

log = logging.getLogger("dispatch.builder.local")

LANGUAGES = ("python3", "nodejs")
#: how many lines of an installer's output an image's ``reason`` keeps
TAIL_LINES = 20
_ADDRESS = re.compile(r"^[0-9a-f]{64}$")
#: what an interpreter named by path may be called: the probe runs it, so not just any
#: executable of the host
_NAMES = {"python3": re.compile(r"^python(3(\.\d+)?)?$"), "nodejs": re.compile(r"^node(js)?$")}
#: what a base image's URL may say instead of a path: "this host's runtime of the language"
RUNTIME_WORDS = {"python3": ("python3", "python"), "nodejs": ("nodejs", "node")}
#: what the version probe of each language's interpreter prints
_VERSION = {"python3": re.compile(r"^3\.\d+\.\d+$"), "nodejs": re.compile(r"^v\d+\.\d+\.\d+")}


class LocalBuilder(Builder):
    """Builds images as virtualenvs and ``node_modules`` directories on this host.

    :param home: ``$DISPATCH_HOME``; images live in its ``images`` directory
    :param install_timeout: seconds pip or npm may take before the build fails
    :param registry: ignored (the local builder pushes nowhere); accepted so that
        every builder opens with the same settings
    """

    def __init__(self, home: str, *, install_timeout: float = 600.0,
                 registry: str | None = None):
        self.root = os.path.join(os.path.abspath(home), "images")
        os.makedirs(self.root, exist_ok=True)
        self.install_timeout = install_timeout

    # -- base images ------------------------------------------------------------------

    def check_base(self, base: BaseImageSpec) -> dict[str, Any]:
        """The base's runtime exists here and runs: ``{language, interpreter, version}``."""
        interpreter = self._interpreter(base)
        if base.language == "python3":
            probe = [interpreter, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3]);"
                     " sys.exit(sys.version_info[0] != 3)"]
        else:
            probe = [interpreter, "--version"]
        try:
            done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            raise BuildError(f"{interpreter} does not run: {exc}") from None
        version = done.stdout.strip()
        if done.returncode != 0 or not _VERSION[base.language].match(version):
            said = _tail(done.stdout + done.stderr, 3) or f"exit {done.returncode}, no version"
            raise BuildError(f"{interpreter} is not a usable {base.language} runtime: {said}")
        return {"language": base.language, "interpreter": interpreter, "version": version}

    def base_present(self, base: BaseImageSpec) -> bool:
        """Whether the base's interpreter is still an executable file here."""
        try:
            self._interpreter(base)
        except BuildError:
            return False
        return True

    def _interpreter(self, base: BaseImageSpec) -> str:
        if base.language not in LANGUAGES:
            raise BuildError(f"the local builder cannot run {base.language} "
                             f"(languages: {', '.join(LANGUAGES)})")
        if os.path.isabs(base.url):
            path = base.url
            if not _NAMES[base.language].match(os.path.basename(path)):
                raise BuildError(f"{path} is not a {base.language} interpreter's name "
                                 f"({'python3 or python3.N' if base.language == 'python3' else 'node'})")
        elif base.url not in RUNTIME_WORDS[base.language]:
            words = " or ".join(repr(w) for w in RUNTIME_WORDS[base.language])
            raise BuildError(
                f"base image URL {base.url!r} is neither an interpreter's absolute path nor "
                f"the language ({words}): the local builder runs this host's runtimes, and "
                "image references need the docker builder (DISPATCH_BUILDER=docker)")
        elif base.language == "python3":
            path = sys.executable
        else:
            path = shutil.which("node") or ""
            if not path:
                raise BuildError("node is not installed on this host (not on PATH)")
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise BuildError(f"interpreter {path} does not exist on this host")
        return path

    # -- images -----------------------------------------------------------------------

    def build_image(self, image: ImageSpec, base_config: dict[str, Any]) -> BuiltImage:
        """The image's directory, built unless one with the same content exists."""
        if image.system_packages:
            names = ", ".join(p.get("name", "?") for p in image.system_packages)
            raise BuildError(f"the local builder cannot install system packages ({names}); "
                             "use DISPATCH_BUILDER=docker")
        language, interpreter = base_config.get("language"), base_config.get("interpreter")
        if language not in LANGUAGES or not interpreter:
            raise BuildError(f"base image {image.base.name} was not checked by the local builder")
        if not os.access(interpreter, os.X_OK):
            raise BuildError(f"interpreter {interpreter} of base image {image.base.name} is gone")
        manifest = image.manifest or ""
        address = hashlib.sha256(json.dumps(
            {"language": language, "interpreter": interpreter,
             "version": base_config.get("version"), "manifest": manifest},
            sort_keys=True).encode()).hexdigest()
        final = os.path.join(self.root, address)
        started = time.monotonic()
        with self._address_lock(address):
            if os.path.isdir(final):
                log.info("image.reused image=%s/%s dir=%s", image.org, image.name, final)
                return self._built(language, interpreter, final)
            tmp = tempfile.mkdtemp(prefix=f".build-{address[:12]}-", dir=self.root)
            try:
                if language == "python3":
                    self._build_venv(interpreter, manifest, tmp, final)
                else:
                    self._build_node_modules(manifest, tmp)
                os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide it from sandboxed users
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        log.info("image.built image=%s/%s dir=%s seconds=%.1f", image.org, image.name, final,
                 time.monotonic() - started)
        return self._built(language, interpreter, final)

    def _built(self, language: str, interpreter: str, directory: str) -> BuiltImage:
        if language == "python3":
            config = {"language": language, "interpreter": os.path.join(directory, "bin", "python"),
                      "paths": [directory]}
        else:
            config = {"language": language, "interpreter": interpreter,
                      "nodePath": os.path.join(directory, "node_modules"), "paths": [directory]}
        return BuiltImage(url=directory, config=config)

    def _build_venv(self, interpreter: str, manifest: str, tmp: str, final: str) -> None:
        host_pip = importlib.util.find_spec("pip") is not None
        # with the host's pip, the venv needs none of its own (ensurepip takes seconds)
        self._run([interpreter, "-m", "venv", *(["--without-pip"] if host_pip else []), tmp],
                  "venv")
        python = os.path.join(tmp, "bin", "python")
        if not manifest.strip():
            return
        requirements = os.path.join(tmp, "requirements.txt")
        with open(requirements, "w", encoding="utf-8") as f:
            f.write(manifest)
        pip = [sys.executable, "-m", "pip", "--python", python] if host_pip else [python, "-m", "pip"]
        self._run(pip + ["install", "--no-input", "--no-compile", "--disable-pip-version-check",
                         "--only-binary=:all:", "-r", requirements], "pip install")
        # compiled now, with the final path in tracebacks (the sandbox cannot write .pyc)
        self._run([python, "-m", "compileall", "-q", "-s", tmp, "-p", final,
                   os.path.join(tmp, "lib")], "compileall")
        _relocate_scripts(os.path.join(tmp, "bin"), tmp, final)

    def _build_node_modules(self, manifest: str, tmp: str) -> None:
        if manifest.strip():
            try:
                package = json.loads(manifest)
            except ValueError as exc:
                raise BuildError(f"the manifest is not a valid package.json: {exc}") from None
            if not isinstance(package, dict):
                raise BuildError("the manifest is not a valid package.json: not an object")
        with open(os.path.join(tmp, "package.json"), "w", encoding="utf-8") as f:
            f.write(manifest if manifest.strip() else '{"private": true}\n')
        if manifest.strip():
            npm = shutil.which("npm")
            if npm is None:
                raise BuildError("npm is not installed on this host (not on PATH)")
            self._run([npm, "install", "--omit=dev", "--no-audit", "--no-fund",
                       "--ignore-scripts", "--no-package-lock"], "npm install", cwd=tmp)
        os.makedirs(os.path.join(tmp, "node_modules"), exist_ok=True)

    def _run(self, command: list[str], what: str, cwd: str | None = None) -> None:
        """Run one build step; BuildError with the tail of its output if it fails."""
        try:
            done = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, errors="replace",
                                  timeout=self.install_timeout, stdin=subprocess.DEVNULL,
                                  env=_build_environment())
        except subprocess.TimeoutExpired:
            raise BuildError(f"{what} did not finish within {self.install_timeout:g} s") from None
        except OSError as exc:
            raise BuildError(f"{what} could not start: {exc}") from None
        if done.returncode != 0:
            raise BuildError(_tail(done.stdout, TAIL_LINES) or f"{what} exited {done.returncode}")

    def remove_image(self, image: ImageSpec, built: BuiltImage) -> None:
        """Delete the image's directory (the caller checked nothing else refers to it)."""
        directory = os.path.abspath(built.url)
        address = os.path.basename(directory)
        if os.path.dirname(directory) != self.root or not _ADDRESS.match(address):
            log.warning("image.not_removed image=%s/%s url=%s reason='not a local image'",
                        image.org, image.name, built.url)
            return
        with self._address_lock(address):
            doomed = os.path.join(self.root, f".removed-{address[:12]}-{os.getpid()}")
            try:
                os.rename(directory, doomed)  # gone at once for a build looking for it
            except FileNotFoundError:
                return
        shutil.rmtree(doomed, ignore_errors=True)
        log.info("image.removed image=%s/%s dir=%s", image.org, image.name, directory)

    # -- functions --------------------------------------------------------------------

    def build_function(self, deployment: Deployment) -> dict[str, Any]:
        """Nothing to build: the local driver runs the source on the image as it is."""
        return dict(deployment.image_config)

    @contextlib.contextmanager
    def _address_lock(self, address: str) -> Iterator[None]:
        """An exclusive lock on one content address, across threads and processes."""
        locks = os.path.join(self.root, ".locks")
        os.makedirs(locks, exist_ok=True)
        with open(os.path.join(locks, address), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def _build_environment() -> dict[str, str]:
    """The server's environment (pip's and npm's settings, proxies…) without Dispatch's
    own variables, which may hold the secrets key."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}


def _tail(output: str, lines: int) -> str:
    return "\n".join(line for line in output.strip().splitlines()[-lines:])


def _relocate_scripts(bindir: str, old: str, new: str) -> None:
    """Point the shebangs of the venv's scripts at the directory it is renamed to."""
    for name in os.listdir(bindir):
        path = os.path.join(bindir, name)
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            head = f.read(2)
            if head != b"#!":
                continue
            data = head + f.read()
        if old.encode() in data:
            with open(path, "wb") as f:
                f.write(data.replace(old.encode(), new.encode()))
