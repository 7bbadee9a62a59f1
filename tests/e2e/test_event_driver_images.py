"""A custom event driver type given as a container image, run through podman's Docker
Engine API on the host network: its container posts events to the embedded server's
ingest URL with its token; an image that cannot be pulled turns the driver ERROR."""

from __future__ import annotations

import base64
import io
import tarfile
import uuid

import docker
import pytest

from api.embedded import start_embedded
from engine.sources import pack

from .conftest import wait_until
from .test_event_drivers_api import ECHO, Org, pairs

PROGRAM = b'''\
import json, os, sys, time, urllib.request
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
event = {"specversion": "1.0", "id": "from-a-container", "source": "/container",
         "type": "container.hello", "data": {"greeting": args["greeting"],
         "secret": os.environ.get("PASS_WORD")}}
request = urllib.request.Request(os.environ["DISPATCH_INGEST_URL"], json.dumps(event).encode(),
    {"Content-Type": "application/cloudevents+json",
     "Authorization": "Bearer " + os.environ["AUTH_TOKEN"]})
urllib.request.urlopen(request).read()
time.sleep(3600)
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_embedded(str(tmp_path_factory.mktemp("home")), port=0,
                            reconcile_seconds=0.5, stuck_seconds=2, auth="off")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def echo_source(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "echo.py"
    path.write_text(ECHO)
    return base64.b64encode(pack(str(path))).decode()


@pytest.fixture(scope="module")
def driver_image(docker_host, base_images):
    client = docker.DockerClient(base_url=docker_host, version="1.41", timeout=120)
    tag = f"localhost/dispatch-test/event-driver-{uuid.uuid4().hex[:8]}:latest"
    dockerfile = (f"FROM {base_images['python3']}\nCOPY driver.py /driver.py\n"
                  f'ENTRYPOINT ["python3", "/driver.py"]\n').encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile), ("driver.py", PROGRAM)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    yield tag
    client.images.remove(tag, force=True)
    client.close()


@pytest.fixture
def org(server, echo_source):
    o = Org(server.url, "img" + uuid.uuid4().hex[:8])
    o.function("echo", echo_source)
    return o


def test_an_image_driver_posts_events_from_its_container(org, driver_image, docker_host):
    assert org.post("/v1/secret", json={"name": "pw", "secrets": {"pass-word": "s3"}}
                    ).status_code == 201
    r = org.post("/v1/event/drivertypes", json={"name": "boxed", "image": driver_image})
    assert r.status_code == 201, r.text
    org.subscribe("echo", "container.hello")
    org.driver(name="box", type="boxed", config=pairs(greeting="ahoy"), secrets=["pw"])
    [run] = org.runs("echo", 1)
    assert run["output"]["input"] == {"greeting": "ahoy", "secret": "s3"}
    client = docker.DockerClient(base_url=docker_host, version="1.41")
    name = f"dispatch-driver-{org.name}-box"
    container = client.containers.get(name)
    assert container.status == "running", container.logs()
    assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    org.delete("/v1/event/drivers/box")

    def removed():
        try:
            client.containers.get(name)
            return False
        except docker.errors.NotFound:
            return True
        except docker.errors.APIError as exc:  # podman, mid-removal: a 500 "no such container"
            return "no such container" in str(exc)

    wait_until(removed, 30, what="the driver's container removed")
    client.close()


def test_an_image_that_cannot_be_pulled_is_an_error(org):
    r = org.post("/v1/event/drivertypes", json={
        "name": "ghost", "image": "127.0.0.1:5000/dispatch/no-such-driver:latest"})
    assert r.status_code == 201
    org.post("/v1/event/drivers", json={"name": "ghost1", "type": "ghost"})
    driver = org.wait_driver("ghost1", ("ERROR",))
    assert "no-such-driver" in driver["reason"][0]
    org.delete("/v1/event/drivers/ghost1")
