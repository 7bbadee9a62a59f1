"""``/v1/baseimage`` and ``/v1/image`` of an embedded Dispatch over HTTP, with the local
builder for real: pip and npm install into images, and functions on them import what was
installed, inside the sandbox."""

from __future__ import annotations

import base64
import shutil
import uuid

import pytest
import requests

from engine.sources import pack

from .conftest import wait_until

CLI_HEADERS = {"Accept": "application/json", "X-Dispatch-Org": "default", "Cookie": "unset"}
needs_node = pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                                reason="node and npm are not installed")


@pytest.fixture
def api(server):
    session = requests.Session()
    session.headers.update({**CLI_HEADERS, "X-Dispatch-Org": f"org-{uuid.uuid4().hex[:8]}"})
    session.base = f"{server.url}/v1"
    return session


def settled(api, path: str, timeout: float = 120.0) -> dict:
    def done():
        entity = api.get(f"{api.base}/{path}").json()
        return entity if entity.get("status") in ("READY", "ERROR") else None

    return wait_until(done, timeout, interval=0.1, what=f"{path} to settle")


def make_base(api, name="py-base", url="python3", language="python3") -> dict:
    r = api.post(f"{api.base}/baseimage", json={"name": name, "dockerUrl": url,
                                                 "language": language})
    assert r.status_code == 201, r.text
    return r.json()


def make_image(api, name, base="py-base", manifest=None, **extra):
    return api.post(f"{api.base}/image", json={
        "name": name, "baseImageName": base, "runtimeDependencies": {"manifest": manifest},
        **extra})


def make_function(api, tmp_path, name, image, code, filename="fn.py", handler="fn.handle"):
    src = tmp_path / name
    src.mkdir()
    (src / filename).write_text(code)
    body = {"name": name, "image": image, "handler": handler,
            "source": base64.b64encode(pack(str(src))).decode()}
    r = api.post(f"{api.base}/function", json=body)
    assert r.status_code == 201, r.text
    return r.json()


SIX_FUNCTION = "import six\n\ndef handle(ctx, payload):\n    return {'six': six.__version__}\n"


def test_base_image_paths_and_codes(api):
    created = make_base(api)
    assert created["status"] == "INITIALIZED" and created["kind"] == "BaseImage"
    base = settled(api, "baseimage/py-base")
    assert base["status"] == "READY" and base["language"] == "python3"
    assert "config" not in base  # the builder's own
    r = api.post(f"{api.base}/baseimage", json={"name": "py-base", "dockerUrl": "python3",
                                                 "language": "python3"})
    assert r.status_code == 409 and r.json()["message"] == "BaseImage py-base already exists"
    assert [b["name"] for b in api.get(f"{api.base}/baseimage").json()] == ["py-base"]
    r = api.get(f"{api.base}/baseimage/nope")
    assert r.status_code == 404 and r.json()["message"] == "BaseImage nope not found"
    r = api.post(f"{api.base}/baseimage", json={"name": "x", "dockerUrl": "x", "language": "go"})
    assert r.status_code == 400 and "language 'go' is not supported" in r.json()["message"]


def test_base_image_the_builder_cannot_find_ends_in_error(api):
    make_base(api, "gone", url="/nonexistent/bin/python3")
    base = settled(api, "baseimage/gone")
    assert base["status"] == "ERROR"
    assert base["reason"] == ["interpreter /nonexistent/bin/python3 does not exist on this host"]


def test_a_base_image_reference_the_local_builder_cannot_run_ends_in_error(api):
    make_base(api, "missing", url="missing/image:latest")
    base = settled(api, "baseimage/missing")
    assert base["status"] == "ERROR"
    assert base["reason"][0].startswith("base image URL 'missing/image:latest' is neither an "
                                        "interpreter's absolute path nor the language")
    # what is built on it fails too, naming the base image
    assert make_image(api, "on-missing", base="missing").status_code in (200, 201)
    image = settled(api, "image/on-missing")
    assert image["status"] == "ERROR" and "missing" in " ".join(image["reason"])


def test_image_on_an_unknown_base_image_is_refused_naming_it(api):
    r = make_image(api, "py", base="nope")
    assert r.status_code == 400 and r.json()["message"] == "Error fetching base image nope"
    r = api.get(f"{api.base}/image/py")
    assert r.status_code == 404 and r.json()["message"] == "Image py not found"


def test_function_imports_a_dependency_of_its_image_in_the_sandbox(api, tmp_path, server):
    assert server.system.driver.sandboxed or shutil.which("bwrap") is None
    make_base(api)
    r = make_image(api, "py-six", manifest="six==1.17.0\n")
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "INITIALIZED" and r.json()["language"] == "python3"
    # created before the image is built: the function waits for it
    make_function(api, tmp_path, "uses-six", "py-six", SIX_FUNCTION)
    image = settled(api, "image/py-six")
    assert image["status"] == "READY", image["reason"]
    assert image["dockerUrl"] and "config" not in image
    fn = settled(api, "function/uses-six")
    assert fn["status"] == "READY", fn["reason"]
    run = api.post(f"{api.base}/runs", params={"functionName": "uses-six"},
                   json={"blocking": True, "input": {}}).json()
    assert run["status"] == "READY", run
    assert run["output"] == {"six": "1.17.0"}


def test_bad_manifest_is_an_image_error_with_pips_message_and_its_functions_fail(api, tmp_path):
    make_base(api)
    make_image(api, "broken", manifest="no-such-package-dispatch-e2e==9.9\n")
    image = settled(api, "image/broken")
    assert image["status"] == "ERROR" and image["dockerUrl"] is None
    assert "No matching distribution found for no-such-package-dispatch-e2e==9.9" in \
        image["reason"][0]
    make_function(api, tmp_path, "on-broken", "broken", SIX_FUNCTION)
    fn = settled(api, "function/on-broken")
    assert fn["status"] == "ERROR"
    assert fn["reason"][0].startswith("image broken is in ERROR: ")
    assert "No matching distribution found" in fn["reason"][0]


def test_deletes_are_refused_while_used_and_then_go_through(api, tmp_path):
    make_base(api)
    make_image(api, "py")
    make_function(api, tmp_path, "user-one", "py", SIX_FUNCTION.replace("six", "os"))
    settled(api, "function/user-one")
    r = api.delete(f"{api.base}/image/py")
    assert r.status_code == 409 and r.json()["message"] == "image py is used by functions user-one"
    r = api.delete(f"{api.base}/baseimage/py-base")
    assert r.status_code == 409 and r.json()["message"] == "base image py-base is used by images py"
    assert api.delete(f"{api.base}/function/user-one").status_code == 200
    r = api.delete(f"{api.base}/image/py")
    assert r.status_code == 200 and r.json()["status"] == "DELETING"
    r = api.delete(f"{api.base}/baseimage/py-base")
    assert r.status_code == 200 and r.json()["status"] == "DELETING"
    wait_until(lambda: api.get(f"{api.base}/image/py").status_code == 404, 30,
               what="the image to go")
    wait_until(lambda: api.get(f"{api.base}/baseimage/py-base").status_code == 404, 30,
               what="the base image to go")


def test_image_update_rebuilds_it(api):
    make_base(api)
    make_image(api, "py")
    first = settled(api, "image/py")
    r = api.put(f"{api.base}/image/py", json={"baseImageName": "py-base",
                                              "runtimeDependencies": {"manifest": "idna\n"}})
    assert r.status_code == 200 and r.json()["status"] == "UPDATING"
    image = settled(api, "image/py")
    assert image["status"] == "READY" and image["dockerUrl"] != first["dockerUrl"]
    assert image["runtimeDependencies"] == {"manifest": "idna\n"}


def test_system_packages_are_refused_by_the_local_builder(api):
    make_base(api)
    make_image(api, "sys", systemDependencies={"packages": [{"name": "curl", "version": None}]})
    image = settled(api, "image/sys")
    assert image["status"] == "ERROR"
    assert "cannot install system packages (curl); use DISPATCH_BUILDER=docker" in image["reason"][0]


def test_the_server_says_which_builder_it_has(api):
    assert api.get(f"{api.base}/version").json()["builder"] == "local"


@needs_node
def test_node_function_requires_a_dependency_of_its_image_in_the_sandbox(api, tmp_path):
    make_base(api, "node-base", url="nodejs", language="nodejs")
    make_image(api, "js", base="node-base",
               manifest='{"dependencies": {"is-number": "7.0.0"}}')
    assert settled(api, "image/js")["status"] == "READY"
    make_function(api, tmp_path, "is-num", "js",
                  "const isNumber = require('is-number');\n"
                  "module.exports = (ctx, payload) => ({number: isNumber(payload.n)});\n",
                  filename="fn.js", handler="fn.js")
    assert settled(api, "function/is-num")["status"] == "READY"
    run = api.post(f"{api.base}/runs", params={"functionName": "is-num"},
                   json={"blocking": True, "input": {"n": "42"}}).json()
    assert run["status"] == "READY", run
    assert run["output"] == {"number": True}
