"""The ``local`` builder for real: virtualenvs with pip, node_modules with npm (packages
from the registries this machine reaches), content addressing, and functions importing
what their image installed, inside the local driver's sandbox."""

from __future__ import annotations

import os
import shutil
import sys
import threading

import pytest

from engine.builders.base import BaseImageSpec, BuildError, ImageSpec
from engine.builders.local import LocalBuilder
from engine.drivers.base import Deployment
from engine.drivers.local import LocalDriver
from engine.sources import pack

needs_node = pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                                reason="node and npm are not installed")
PY_BASE = BaseImageSpec(org="acme", name="py-base", url="python3", language="python3")
NODE_BASE = BaseImageSpec(org="acme", name="node-base", url="nodejs", language="nodejs")


@pytest.fixture
def builder(tmp_path):
    return LocalBuilder(str(tmp_path / "home"))


def image(name: str, manifest: str | None, base: BaseImageSpec = PY_BASE, **extra) -> ImageSpec:
    return ImageSpec(org="acme", name=name, id=f"id-{name}", base=base, manifest=manifest, **extra)


def leftovers(builder: LocalBuilder) -> list[str]:
    """Entries of the images directory other than finished images and the lock files."""
    return [e for e in os.listdir(builder.root) if e.startswith(".") and e != ".locks"]


def fake_python(builder: LocalBuilder):
    """An executable called python3 that is no Python."""
    path = os.path.join(os.path.dirname(builder.root), "bin", "python3")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write("#!/bin/sh\necho hello\n")
    os.chmod(path, 0o755)
    return path


def test_python_base_is_the_servers_interpreter_or_an_absolute_path(builder):
    config = builder.check_base(PY_BASE)
    assert config["interpreter"] == sys.executable and config["version"].startswith("3.")
    explicit = BaseImageSpec("acme", "b", sys.executable, "python3")
    assert builder.check_base(explicit)["interpreter"] == sys.executable
    gone = BaseImageSpec("acme", "b", "/nonexistent/bin/python3", "python3")
    with pytest.raises(BuildError, match="interpreter /nonexistent/bin/python3 does not exist"):
        builder.check_base(gone)
    assert builder.base_present(PY_BASE) and not builder.base_present(gone)
    with pytest.raises(BuildError, match="/usr/bin/true is not a python3 interpreter's name"):
        builder.check_base(BaseImageSpec("acme", "b", "/usr/bin/true", "python3"))
    fake = BaseImageSpec("acme", "b", str(fake_python(builder)), "python3")
    with pytest.raises(BuildError, match="is not a usable python3 runtime"):
        builder.check_base(fake)


@pytest.mark.parametrize("url, language", [("python3", "python3"), ("python", "python3"),
                                           ("nodejs", "nodejs"), ("node", "nodejs")])
def test_a_base_url_may_name_the_language_for_the_hosts_runtime(builder, url, language):
    if language == "nodejs" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    assert builder.check_base(BaseImageSpec("acme", "b", url, language))["language"] == language


@pytest.mark.parametrize("url, language", [("missing/image:latest", "python3"),
                                           ("dispatch/nodejs-base:latest", "nodejs"),
                                           ("nodejs", "python3"), ("", "python3")])
def test_a_base_url_that_is_neither_a_path_nor_the_language_is_a_build_error(builder, url,
                                                                            language):
    base = BaseImageSpec("acme", "b", url, language)
    with pytest.raises(BuildError) as caught:
        builder.check_base(base)
    assert caught.value.message.startswith(
        f"base image URL {url!r} is neither an interpreter's absolute path nor the language")
    assert "DISPATCH_BUILDER=docker" in caught.value.message
    assert not builder.base_present(base)


def test_requirements_are_installed_into_a_venv(builder):
    built = builder.build_image(image("py", "six==1.17.0\n"), builder.check_base(PY_BASE))
    assert os.path.dirname(built.url) == builder.root
    python = built.config["interpreter"]
    assert python == os.path.join(built.url, "bin", "python")
    assert built.config["paths"] == [built.url] and built.config["language"] == "python3"
    import subprocess

    out = subprocess.run([python, "-c", "import six; print(six.__version__, six.__file__)"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "1.17.0" and out[1].startswith(built.url)
    assert leftovers(builder) == []


def test_a_manifest_that_fails_is_a_build_error_with_pips_message_and_leaves_nothing(builder):
    with pytest.raises(BuildError) as error:
        builder.build_image(image("bad", "no-such-package-dispatch-test==0.0.1\n"),
                            builder.check_base(PY_BASE))
    assert "No matching distribution found for no-such-package-dispatch-test==0.0.1" in \
        error.value.message
    assert len(error.value.message.splitlines()) <= 20
    assert [e for e in os.listdir(builder.root) if e != ".locks"] == []


def test_the_same_content_twice_reuses_the_first_directory(builder, monkeypatch):
    base = builder.check_base(PY_BASE)
    first = builder.build_image(image("one", "six\n"), base)
    with open(os.path.join(first.url, "marker"), "w") as f:
        f.write("first build")

    def no_step(*args, **kwargs):
        raise AssertionError("a build step ran for content that was built already")

    monkeypatch.setattr(builder, "_run", no_step)
    second = builder.build_image(image("two", "six\n"), base)  # another image, same content
    assert second == first and os.path.exists(os.path.join(second.url, "marker"))
    monkeypatch.undo()
    other = builder.build_image(image("three", ""), base)  # other content, another directory
    assert other.url != first.url


def test_two_identical_builds_at_once_share_one_result(builder):
    base = builder.check_base(PY_BASE)
    results = []
    threads = [threading.Thread(target=lambda n=n: results.append(
        builder.build_image(image(f"i{n}", "idna\n"), base))) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 2 and results[0] == results[1]
    assert len([e for e in os.listdir(builder.root) if not e.startswith(".")]) == 1
    assert leftovers(builder) == []


def test_system_packages_are_refused(builder):
    spec = image("sys", None, system_packages=({"name": "curl", "version": None},))
    with pytest.raises(BuildError, match=r"cannot install system packages \(curl\); "
                                         "use DISPATCH_BUILDER=docker"):
        builder.build_image(spec, builder.check_base(PY_BASE))


def test_remove_image_deletes_the_directory(builder):
    built = builder.build_image(image("py", None), builder.check_base(PY_BASE))
    builder.remove_image(image("py", None), built)
    assert not os.path.exists(built.url) and leftovers(builder) == []


@needs_node
def test_package_json_is_installed_into_node_modules(builder):
    base = builder.check_base(NODE_BASE)
    assert base["interpreter"] == shutil.which("node")
    built = builder.build_image(
        image("js", '{"dependencies": {"is-number": "7.0.0"}}', NODE_BASE), base)
    assert built.config["nodePath"] == os.path.join(built.url, "node_modules")
    assert os.path.isfile(os.path.join(built.url, "node_modules", "is-number", "index.js"))
    with pytest.raises(BuildError, match="not a valid package.json"):
        builder.build_image(image("bad", "{nope", NODE_BASE), base)


# -- functions on built images, in the sandbox --------------------------------------------

def deployment(tmp_path, config, language, handler, filename, code) -> Deployment:
    src = tmp_path / f"src-{language}"
    src.mkdir()
    (src / filename).write_text(code)
    archive = pack(str(src))
    return Deployment(org="acme", name=f"fn-{language}", version="v1", handler=handler,
                      language=language, image="img", timeout_ms=30_000,
                      source=lambda: archive, image_config=config)


@pytest.fixture
def driver(tmp_path):
    # the sandbox when this host has bwrap: what the image installed must be visible in it
    driver = LocalDriver(str(tmp_path / "home"), sandbox=None)
    assert driver.sandboxed or shutil.which("bwrap") is None
    yield driver
    driver.close()


def test_a_python_function_imports_what_its_image_installed(builder, driver, tmp_path):
    built = builder.build_image(image("py", "six\n"), builder.check_base(PY_BASE))
    dep = deployment(tmp_path, builder.build_function(Deployment(
        org="acme", name="x", version="v", handler="h.h", language="python3", image="img",
        timeout_ms=0, source=bytes, image_config=built.config)),
        "python3", "fn.handle", "fn.py",
        "import six\ndef handle(ctx, payload):\n    return {'six': six.__version__}\n")
    outcome = driver.run(dep, {}, {})
    assert outcome.error is None, outcome.error
    assert outcome.payload == {"six": "1.17.0"}


@needs_node
def test_a_node_function_requires_what_its_image_installed(builder, driver, tmp_path):
    built = builder.build_image(image("js", '{"dependencies": {"is-number": "7.0.0"}}',
                                      NODE_BASE), builder.check_base(NODE_BASE))
    dep = deployment(tmp_path, built.config, "nodejs", "fn.js", "fn.js",
                     "const isNumber = require('is-number');\n"
                     "module.exports = (ctx, payload) => ({ok: isNumber(payload.n)});\n")
    outcome = driver.run(dep, {}, {"n": 5})
    assert outcome.error is None, outcome.error
    assert outcome.payload == {"ok": True}
