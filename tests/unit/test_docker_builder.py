"""The docker builder against the real thing: podman's Docker Engine API, the registry on
127.0.0.1:5000 and the base images deploy/container-services.sh makes (the fixtures fail,
saying how to set them up, when they are not there).

Each image here is new (a unique name, and a unique line in its manifest), so that every
session really builds; they are removed at the end.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
import time
import urllib.request
import uuid

import docker
import pytest

from engine.builders.base import BaseImageSpec, BuildError, ImageSpec
from engine.builders.docker import DockerBuilder
from engine.drivers.base import Deployment
from engine.drivers.docker import DockerDriver
from engine.errors import BuildError
from engine.sources import pack

pytestmark = pytest.mark.timeout(300)

ORG = "buildtest"


@pytest.fixture(scope="module")
def builder(docker_host, registry, tmp_path_factory):
    b = DockerBuilder(str(tmp_path_factory.mktemp("builder")), docker_host=docker_host, registry=registry)
    yield b
    b.close()


@pytest.fixture(scope="module")
def engine(docker_host):
    client = docker.DockerClient(base_url=docker_host, version="1.41")
    yield client
    client.close()


@pytest.fixture
def driver(docker_host, tmp_path, function):
    # after `function`, so that its containers are gone before the function images go
    d = DockerDriver(str(tmp_path), docker_host=docker_host)
    yield d
    d.close()


@pytest.fixture
def base(base_images):
    """The python3 base image as an entity would name it."""
    return BaseImageSpec(org=ORG, name="python3-base", url=base_images["python3"], language="python3")


@pytest.fixture
def build(builder, base):
    """Builds a unique image (removed at the end): ``build(manifest=…, system_packages=…)``."""
    made = []

    def make(*, base_spec=None, manifest=None, system_packages=()):
        spec_base = base_spec or base
        if manifest is not None:  # a line of its own: this session builds it, no earlier one
            comment = "#" if spec_base.language == "python3" else None
            manifest = f"{manifest}\n{comment} {uuid.uuid4().hex}" if comment else manifest
        image = ImageSpec(org=ORG, name=f"img-{uuid.uuid4().hex[:8]}", id=str(uuid.uuid4()), base=spec_base,
                          manifest=manifest, system_packages=tuple(system_packages))
        built = builder.build_image(image, builder.check_base(spec_base))
        made.append((image, built))
        return image, built

    yield make
    for image, built in made:
        builder.remove_image(image, built)


@pytest.fixture
def function(builder, tmp_path):
    """``function(built, code, language=…, **fields)``: a deployment of ``code`` onto the
    image ``built``, with its function image (removed at the end)."""
    made = []

    def make(built, code: str, *, language="python3", **fields) -> Deployment:
        src = tmp_path / uuid.uuid4().hex
        src.mkdir()
        (src / ("fn.py" if language == "python3" else "fn.js")).write_text(textwrap.dedent(code))
        archive = pack(str(src))
        dep = Deployment(org=ORG, name="fn", version=uuid.uuid4().hex, language=language, image="img",
                         handler="fn.handle" if language == "python3" else "fn.js", timeout_ms=20_000,
                         source=lambda: archive, image_config=built.config, **fields)
        config = builder.build_function(dep)
        made.append(config)
        return dataclasses.replace(dep, image_config=config)

    yield make
    for config in made:
        builder.remove_function(config)


def tags_of(engine, repository: str) -> list[str]:
    return [tag for image in engine.images.list() for tag in image.tags if tag.startswith(repository + ":")]


def test_check_base_finds_the_base_image(builder, base):
    assert builder.check_base(base) == {"language": "python3", "baseImage": base.url}
    assert builder.base_present(base)


def test_a_missing_base_image_is_a_build_error(builder, registry):
    missing = BaseImageSpec(org=ORG, name="nope", url=f"{registry}/dispatch/no-such-base:latest", language="python3")
    with pytest.raises(BuildError, match="base image .*no-such-base:latest cannot be pulled"):
        builder.check_base(missing)
    assert not builder.base_present(missing)


def test_a_base_image_that_goes_away_is_no_longer_present(builder, engine, base):
    repository = f"localhost/dispatch-test/base-{uuid.uuid4().hex[:8]}"
    ref = f"{repository}:latest"
    engine.images.get(base.url).tag(repository, "latest")
    gone = dataclasses.replace(base, url=ref)
    assert builder.check_base(gone)["baseImage"] == ref
    engine.images.remove(ref)
    assert not builder.base_present(gone)


def test_an_image_with_requirements_runs_a_function_importing_them(builder, build, driver, function):
    _, built = build(manifest="six==1.16.0")
    assert built.url.startswith(f"{builder.registry}/dispatch/{ORG}/image-")
    assert built.config["dockerUrl"] == built.url
    dep = function(built, """
        import six

        def handle(ctx, payload):
            return six.__version__
    """)
    assert driver.run(dep, {}, None).payload == "1.16.0"


def test_a_nodejs_image_with_a_package_json_runs_a_function_requiring_it(builder, build, driver, base_images, function):
    node_base = BaseImageSpec(org=ORG, name="nodejs-base", url=base_images["nodejs"], language="nodejs")
    manifest = json.dumps({"name": f"t{uuid.uuid4().hex[:8]}", "dependencies": {"is-number": "7.0.0"}})
    _, built = build(base_spec=node_base, manifest=manifest)
    dep = function(built, "module.exports = (ctx, n) => require('is-number')(n);\n", language="nodejs")
    assert driver.run(dep, {}, 5).payload is True
    assert driver.run(dep, {}, "five").payload is False


def test_a_failing_manifest_is_a_build_error_with_pips_message_and_leaves_no_image(builder, base, engine):
    name = f"img-{uuid.uuid4().hex[:8]}"
    image = ImageSpec(org=ORG, name=name, id=str(uuid.uuid4()), base=base,
                      manifest="dispatch-no-such-package-anywhere==1.0")
    with pytest.raises(BuildError) as caught:
        builder.build_image(image, builder.check_base(base))
    message = caught.value.message
    assert message.startswith(f"image {ORG}/{name} failed to build:")
    assert "No matching distribution found for dispatch-no-such-package-anywhere==1.0" in message
    assert tags_of(engine, f"{builder.registry}/dispatch/{ORG}/image-{name}") == []


def test_building_the_same_image_again_reuses_it(builder, build, monkeypatch):
    image, first = build(manifest="six==1.16.0")
    # found, not built again: a second build would go through _build
    monkeypatch.setattr(builder, "_build", lambda *a, **k: pytest.fail("built it again"))
    again = builder.build_image(image, builder.check_base(image.base))
    assert again == first


def test_system_packages_are_installed_with_apt(builder, build, driver, function):
    _, built = build(system_packages=[{"name": "jq", "version": ""}], manifest="")
    dep = function(built, """
        import subprocess

        def handle(ctx, payload):
            out = subprocess.run(["jq", "-c", ".a"], input=payload, capture_output=True, text=True, check=True)
            return out.stdout.strip()
    """)
    assert driver.run(dep, {}, '{"a": [1, 2]}').payload == "[1,2]"


def test_a_system_package_name_that_is_not_debians_is_refused(builder, base):
    image = ImageSpec(org=ORG, name="bad", id="x", base=base, system_packages=({"name": "jq; rm -rf /"},))
    with pytest.raises(BuildError, match="is not a Debian package name"):
        builder.build_image(image, builder.check_base(base))


def test_a_function_image_serves_dispatchs_protocol_on_port_8080_by_itself(builder, build, engine, function):
    _, built = build()
    dep = function(built, "def handle(ctx, payload):\n    return {'hello': payload}\n")
    container = engine.containers.run(dep.image_config["functionImage"], detach=True, ports={"8080/tcp": None})
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", method="POST",
                                         data=json.dumps({"context": {}, "payload": "you"}).encode())
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as resp:
                    reply = json.load(resp)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert reply["payload"] == {"hello": "you"}
        assert reply["context"]["error"] is None
    finally:
        container.remove(force=True)
    labels = engine.images.get(dep.image_config["functionImage"]).labels
    assert labels["io.dispatchframework.function"] == f"{ORG}/fn"
    assert labels["io.dispatchframework.function-version"] == dep.version


def test_images_are_labelled_with_their_entity(build, engine):
    image, built = build()
    labels = engine.images.get(built.url).labels
    assert labels["io.dispatchframework.image-id"] == image.id
    assert labels["io.dispatchframework.image"] == f"{ORG}/{image.name}"


def test_remove_image_untags_it_and_deletes_it_from_the_registry(builder, base, engine):
    image = ImageSpec(org=ORG, name=f"img-{uuid.uuid4().hex[:8]}", id=str(uuid.uuid4()), base=base,
                      manifest=f"# {uuid.uuid4().hex}")
    built = builder.build_image(image, builder.check_base(base))
    repo, tag = built.url.split("/", 1)[1].rsplit(":", 1)
    manifest_url = f"http://{builder.registry}/v2/{repo}/manifests/{tag}"
    assert _status(manifest_url) == 200
    builder.remove_image(image, built)
    assert tags_of(engine, built.url.rsplit(":", 1)[0]) == []
    assert _status(manifest_url) == 404


def test_the_docker_driver_refuses_a_function_without_a_function_image(driver):
    dep = Deployment(org=ORG, name="fn", version="v1", handler="fn.handle", language="python3", image="python3",
                     timeout_ms=0, source=lambda: b"")
    with pytest.raises(BuildError, match="has no function image"):
        driver.prepare(dep)


def test_containers_have_no_network_unless_the_function_asks(builder, build, driver, function):
    _, built = build()
    code = """
        import socket

        def handle(ctx, payload):
            try:
                socket.create_connection(("deb.debian.org", 80), timeout=5).close()
                return "connected"
            except OSError as exc:
                return type(exc).__name__
    """
    closed = function(built, code)
    assert driver.run(closed, {}, None).payload in ("gaierror", "OSError")
    opened = function(built, code, network=True)
    assert driver.run(opened, {}, None).payload == "connected"


def _status(url: str) -> int:
    request = urllib.request.Request(url, method="HEAD", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
