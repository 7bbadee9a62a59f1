"""The whole system on the docker builder and driver: an embedded Dispatch whose images
are built through podman's Docker Engine API into the local registry and whose functions
run as containers — base image, image with a dependency, function, run, over HTTP."""

from __future__ import annotations

import base64
import os

import pytest
import requests

from api.embedded import start_embedded
from engine.sources import pack

from .conftest import wait_until


@pytest.fixture(scope="module")
def docker_server(tmp_path_factory, docker_host, registry):
    os.environ.setdefault("DOCKER_HOST", docker_host)
    server = start_embedded(str(tmp_path_factory.mktemp("home")), port=0, builder="docker",
                            driver="docker", registry=registry, auth="off")
    yield server
    server.stop()


def settled(api, path):
    def check():
        entity = api.get(f"{api.base}{path}").json()
        return entity if entity.get("status") in ("READY", "ERROR") else None

    return wait_until(check, 300, interval=0.2, what=path)


def test_function_on_a_docker_built_image_runs_as_a_container(docker_server, base_images,
                                                               tmp_path):
    api = requests.Session()
    api.headers["X-Dispatch-Org"] = "dockere2e"
    api.base = docker_server.url
    assert api.get(f"{api.base}/v1/version").json()["builder"] == "docker"
    r = api.post(f"{api.base}/v1/baseimage", json={
        "name": "py-base", "dockerUrl": base_images["python3"], "language": "python3"})
    assert r.status_code == 201, r.text
    assert settled(api, "/v1/baseimage/py-base")["status"] == "READY"
    r = api.post(f"{api.base}/v1/image", json={
        "name": "py-six", "baseImageName": "py-base",
        "runtimeDependencies": {"manifest": "six==1.16.0\n"}})
    assert r.status_code == 201, r.text
    image = settled(api, "/v1/image/py-six")
    assert image["status"] == "READY", image
    assert image["dockerUrl"].startswith(f"{docker_server.settings.registry}/dispatch/dockere2e/")
    src = tmp_path / "uses_six.py"
    src.write_text("import six\n\ndef handle(ctx, payload):\n"
                   "    print('in a container')\n    return {'six': six.__version__}\n")
    r = api.post(f"{api.base}/v1/function", json={
        "name": "uses-six", "image": "py-six", "handler": "uses_six.handle",
        "source": base64.b64encode(pack(str(src))).decode()})
    assert r.status_code == 201, r.text
    fn = settled(api, "/v1/function/uses-six")
    assert fn["status"] == "READY", fn
    run = api.post(f"{api.base}/v1/runs?functionName=uses-six", json={"blocking": True}).json()
    assert run["status"] == "READY", run
    assert run["output"] == {"six": "1.16.0"} and run["logs"]["stdout"] == ["in a container"]
    # a function on an image whose manifest cannot install ends in ERROR, saying why
    r = api.post(f"{api.base}/v1/image", json={
        "name": "py-broken", "baseImageName": "py-base",
        "runtimeDependencies": {"manifest": "no-such-package-dispatch-e2e==0.0.1\n"}})
    broken = settled(api, "/v1/image/py-broken")
    assert broken["status"] == "ERROR" and "no-such-package-dispatch-e2e" in broken["reason"][0]


def test_deleting_a_function_removes_its_function_image(docker_server, base_images, tmp_path):
    import docker

    api = requests.Session()
    api.headers["X-Dispatch-Org"] = "dockergone"
    api.base = docker_server.url
    api.post(f"{api.base}/v1/baseimage", json={
        "name": "py-base", "dockerUrl": base_images["python3"], "language": "python3"})
    settled(api, "/v1/baseimage/py-base")
    api.post(f"{api.base}/v1/image", json={"name": "py", "baseImageName": "py-base"})
    assert settled(api, "/v1/image/py")["status"] == "READY"
    src = tmp_path / "hi.py"
    src.write_text("def handle(ctx, payload):\n    return 'hi'\n")
    api.post(f"{api.base}/v1/function", json={
        "name": "hi", "image": "py", "handler": "hi.handle",
        "source": base64.b64encode(pack(str(src))).decode()})
    fn = settled(api, "/v1/function/hi")
    function_image = fn["functionImageURL"]
    client = docker.DockerClient(base_url=os.environ["DOCKER_HOST"], version="1.41")
    assert client.images.list(name=function_image.rsplit(":", 1)[0])
    api.delete(f"{api.base}/v1/function/hi")
    wait_until(lambda: api.get(f"{api.base}/v1/function/hi").status_code == 404, 60)
    tags = [t for i in client.images.list() for t in i.tags]
    assert function_image not in tags
    client.close()
