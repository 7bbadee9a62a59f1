"""The ``openwhisk`` driver against the OpenWhisk contract stand-in (not OpenWhisk itself:
see tests/contract/openwhisk_server.py), which runs the actions for real with Dispatch's
function servers: native kinds as processes, blackbox actions as containers (podman).

The shared driver contract (tests/contract/test_driver.py) is run here too, for the
tests that hold for a remote FaaS (imported below: pytest runs them with this module's
fixtures); the ones about this host's processes, memory limits and pools do not apply.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import shutil
import textwrap
import threading
import time
import uuid
import zipfile

import pytest
import requests

from engine.drivers import open_driver
from engine.drivers.base import Deployment
from engine.drivers.openwhisk import OpenWhiskDriver
from engine.errors import BuildError
from engine.sources import pack
from tests.contract.openwhisk_server import ContractOpenWhisk
from tests.contract.test_driver import (  # noqa: F401 - the shared contract, run with these fixtures
    ECHO, LANGUAGES, function_images, test_a_promise_is_awaited, test_context_reaches_the_handler,
    test_exception_becomes_function_error_with_stacktrace, test_function_files_beside_the_handler_are_importable_and_readable,
    test_log_output_is_capped, test_non_json_output_is_a_function_error, test_stdout_and_stderr_lines_are_captured_per_run, test_runs_handler_and_returns_payload,
    test_unprepared_version_is_prepared_on_first_run, test_warm_instance_is_reused)

pytestmark = pytest.mark.timeout(180)

AUTH = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
OTHER_AUTH = "11111111-2222-3333-4444-555555555555:otherkey"


@pytest.fixture(scope="module")
def whisk(request):
    docker_host = request.getfixturevalue("docker_host")
    server = ContractOpenWhisk({AUTH: "guest", OTHER_AUTH: "other"}, docker_host=docker_host).start()
    yield server
    server.stop()


@pytest.fixture(params=["native", "blackbox"])
def packaging(request):
    return request.param


@pytest.fixture(params=list(LANGUAGES))
def language(request):
    if request.param == "nodejs" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    return request.param


@pytest.fixture
def make_driver(whisk):
    opened = []

    def make(**opts):
        drv = open_driver("openwhisk", "", **{"api_host": whisk.api_host, "auth": AUTH, **opts})
        opened.append(drv)
        return drv

    yield make
    for drv in opened:
        drv.close()


@pytest.fixture
def driver(make_driver):
    return make_driver()


@pytest.fixture
def deploy(request, tmp_path, language, packaging):
    """A new version of a tiny function (see tests/contract/test_driver.py's ``deploy``);
    for ``blackbox``, with its function image built by the docker builder."""
    build = request.getfixturevalue("function_images") if packaging == "blackbox" else None

    def make(code: dict, *, handler: dict | None = None, timeout_ms: int = 0, files: dict | None = None,
             name: str = "fn", **fields):
        if language not in code:
            pytest.skip(f"does not apply to {language}")
        module = f"fn_{uuid.uuid4().hex[:8]}"
        src = tmp_path / f"src-{module}"
        src.mkdir()
        (src / f"{module}{LANGUAGES[language]}").write_text(textwrap.dedent(code[language]))
        for fname, text in (files or {}).get(language, {}).items():
            (src / fname).write_text(textwrap.dedent(text))
        archive = pack(str(src))
        default = {"python3": "{m}.handle", "nodejs": "{m}.js"}[language]
        dep = Deployment(org="acme", name=name, version=uuid.uuid4().hex, language=language,
                         handler=((handler or {}).get(language) or default).format(m=module), image=language,
                         timeout_ms=timeout_ms, source=lambda: archive, **fields)
        return build(dep) if build else dep

    return make


def action_of(whisk, dep):
    return whisk.actions.get(("guest", f"{dep.org}.{dep.name}.{dep.version}"))


# -- deploy ---------------------------------------------------------------------------


def test_prepare_puts_an_action_per_version(whisk, driver, deploy, packaging, language):
    dep = deploy(ECHO, timeout_ms=2000)
    driver.prepare(dep)
    action = action_of(whisk, dep)
    assert action is not None
    if packaging == "blackbox":
        assert action["exec"] == {"kind": "blackbox", "image": dep.image_config["functionImage"]}
    else:
        assert action["exec"]["kind"] == {"python3": "python:3", "nodejs": "nodejs:20"}[language]
        assert action["exec"]["binary"] is True and action["exec"]["main"] == "main"
        names = zipfile.ZipFile(io.BytesIO(base64.b64decode(action["exec"]["code"]))).namelist()
        assert ("__main__.py" if language == "python3" else "package.json") in names
    assert action["limits"]["timeout"] == 2000 and action["limits"]["memory"] == 256
    assert {"key": "dispatch-function", "value": "acme/fn"} in action["annotations"]
    puts = [r for r in whisk.requests if r[0] == "PUT"]
    driver.prepare(dep)  # idempotent: no second upload from this driver
    assert [r for r in whisk.requests if r[0] == "PUT"] == puts


@pytest.mark.parametrize("packaging", ["native"], indirect=True)
def test_limits_are_clamped_into_openwhisks_ranges(whisk, make_driver, deploy, caplog):
    dep = deploy(ECHO, timeout_ms=600_000)
    make_driver(memory_mb=2048).prepare(dep)
    assert action_of(whisk, dep)["limits"] == {**action_of(whisk, dep)["limits"], "timeout": 300_000, "memory": 512}
    assert "timeout 600000 ms is outside OpenWhisk's range 100-300000 ms" in caplog.text
    assert "memory 2048 MB is outside OpenWhisk's range 128-512 MB" in caplog.text


@pytest.mark.parametrize("packaging", ["native"], indirect=True)
def test_an_action_name_over_openwhisks_limit_is_a_clear_error(whisk, driver, deploy):
    dep = deploy(ECHO, name="f" * 250)
    with pytest.raises(BuildError, match="at most 256"):
        driver.prepare(dep)
    out = driver.run(dep, {}, None)
    assert out.error["type"] == "FunctionError" and "at most 256" in out.error["message"]
    assert not [r for r in whisk.requests if "f" * 250 in r[1]]  # nothing was sent


@pytest.mark.parametrize("packaging", ["native"], indirect=True)
def test_wrong_credentials_fail_deploy_and_run_clearly(whisk, make_driver, deploy):
    driver = make_driver(auth="nobody:wrong")
    dep = deploy(ECHO)
    with pytest.raises(BuildError, match=r"credentials were refused \(401.*DISPATCH_OPENWHISK_AUTH"):
        driver.prepare(dep)
    out = driver.run(dep, {}, None)  # not the function's fault
    assert out.error["type"] == "SystemError" and "credentials were refused (401" in out.error["message"]


@pytest.mark.parametrize("packaging", ["native"], indirect=True)
def test_a_namespace_the_key_may_not_use_is_a_clear_error(whisk, make_driver, deploy):
    dep = deploy(ECHO)
    with pytest.raises(BuildError, match=r"may not use namespace 'nowhere' \(403.*NAMESPACE"):
        make_driver(namespace="nowhere").prepare(dep)
    make_driver(namespace="guest").prepare(dep)  # its own namespace by name works too
    assert action_of(whisk, dep) is not None


@pytest.mark.parametrize("packaging", ["native"], indirect=True)
def test_update_deploys_the_new_version_and_retire_deletes_the_old(whisk, driver, deploy):
    old = deploy({"python3": "def handle(ctx, p):\n    return 'old'\n", "nodejs": "module.exports = () => 'old';\n"})
    driver.prepare(old)
    assert driver.run(old, {}, None).payload == "old"
    new = deploy({"python3": "def handle(ctx, p):\n    return 'new'\n", "nodejs": "module.exports = () => 'new';\n"})
    driver.prepare(new)
    assert action_of(whisk, old) and action_of(whisk, new)  # both, until the old is retired
    driver.retire(old)
    assert action_of(whisk, old) is None
    assert driver.run(new, {}, None).payload == "new"
    driver.retire(old)  # already gone: fine


@pytest.mark.parametrize("packaging", ["native"], indirect=True)
def test_a_failed_update_keeps_the_old_version_serving(whisk, driver, deploy):
    old = deploy(ECHO)
    driver.prepare(old)
    new = deploy(ECHO)
    whisk.put_error = (500, "the database is down")
    try:
        with pytest.raises(BuildError, match="HTTP 500: the database is down"):
            driver.prepare(new)
    finally:
        whisk.put_error = None
    assert action_of(whisk, new) is None
    assert driver.run(old, {}, "still").payload["payload"] == "still"


# -- run ------------------------------------------------------------------------------


def test_a_run_records_the_activation(whisk, driver, deploy):
    dep = deploy({"python3": "def handle(ctx, p):\n    print('hello', p)\n    return {'got': p}\n",
                  "nodejs": "module.exports = (ctx, p) => { console.log('hello', p); return { got: p }; };\n"})
    cold = driver.run(dep, {}, "x")
    assert cold.error is None and cold.payload == {"got": "x"}
    assert cold.logs == {"stdout": ["hello x"], "stderr": []}
    record = whisk.activations[cold.extra["activationId"]]
    assert record["response"]["statusCode"] == 0
    assert cold.extra["activationDurationMs"] == record["duration"]
    assert cold.cold_start_ms == cold.extra["initTimeMs"] > 0 and "waitTimeMs" in cold.extra
    warm = driver.run(dep, {}, "y")
    assert warm.payload == {"got": "y"} and warm.cold_start_ms is None and "initTimeMs" not in warm.extra
    assert warm.extra["activationId"] != cold.extra["activationId"]


def test_the_action_sees_openwhisks_activation_environment(whisk, driver, deploy):
    dep = deploy({"python3": "import os\ndef handle(ctx, p):\n    return {k: v for k, v in os.environ.items() if k.startswith('__OW_')}\n",
                  "nodejs": "module.exports = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('__OW_')));\n"})
    out = driver.run(dep, {}, None)
    env = out.payload
    assert env["__OW_ACTIVATION_ID"] == out.extra["activationId"]
    assert env["__OW_NAMESPACE"] == "guest"
    assert env["__OW_ACTION_NAME"] == f"/guest/{dep.org}.{dep.name}.{dep.version}"
    assert env["__OW_DEADLINE"].isdigit() and env["__OW_TRANSACTION_ID"]


@pytest.mark.parametrize("packaging", ["native"], indirect=True)
def test_a_timeout_is_a_function_error_and_the_next_run_is_cold(whisk, driver, deploy):
    dep = deploy({"python3": "import time\ndef handle(ctx, p):\n    print('started', flush=True)\n    time.sleep(p)\n    return p\n",
                  "nodejs": "module.exports = async (ctx, p) => { console.log('started'); await new Promise((r) => setTimeout(r, p * 1000)); return p; };\n"},
                 timeout_ms=500)
    assert driver.run(dep, {}, 0).payload == 0
    out = driver.run(dep, {}, 30)
    assert out.error["type"] == "FunctionError"
    assert out.error["message"] == ("The action exceeded its time limits of 500 milliseconds. "
                                    "(OpenWhisk: action developer error)")
    after = driver.run(dep, {}, 0)
    assert after.error is None and after.cold_start_ms is not None


@pytest.mark.parametrize("packaging", ["native"], indirect=True)
def test_a_handler_that_cannot_load_fails_the_run_with_the_reason(whisk, driver, deploy, language):
    dep = deploy({"python3": "def handle(ctx, p):\n    return 1\n", "nodejs": "module.exports = () => 1;\n"},
                 handler={"python3": "nowhere.handle", "nodejs": "nowhere.js"})
    driver.prepare(dep)  # OpenWhisk loads the code at the first activation, not at deploy
    out = driver.run(dep, {}, None)
    assert out.error["type"] == "FunctionError"
    assert "nowhere" in out.error["message"] and "action developer error" in out.error["message"]


def test_a_whisk_internal_error_is_a_system_error(whisk, driver, deploy):
    dep = deploy(ECHO)
    whisk.fail_next_invokes = 1
    out = driver.run(dep, {}, None)
    assert out.error["type"] == "SystemError"
    assert "whisk internal error" in out.error["message"] and "Failed to run container" in out.error["message"]
    assert driver.run(dep, {}, "ok").payload["payload"] == "ok"


@pytest.mark.parametrize("packaging", ["native"], indirect=True)
def test_a_blocking_call_past_the_cap_is_followed_by_polling(whisk, deploy, make_driver):
    dep = deploy({"python3": "import time\ndef handle(ctx, p):\n    time.sleep(p)\n    return 'late'\n",
                  "nodejs": "module.exports = async (ctx, p) => { await new Promise((r) => setTimeout(r, p * 1000)); return 'late'; };\n"},
                 timeout_ms=10_000)
    driver = make_driver(poll_seconds=0.1)
    driver.run(dep, {}, 0)  # warm
    whisk.blocking_cap_s = 0.5
    try:
        out = driver.run(dep, {}, 1.5)
    finally:
        whisk.blocking_cap_s = 60.0
    assert out.error is None and out.payload == "late"
    assert any(m == "GET" and p.endswith(f"/activations/{out.extra['activationId']}") and s == 404
               for m, p, s in whisk.requests)  # polled while it ran


@pytest.mark.parametrize("packaging", ["native"], indirect=True)
def test_rate_limited_invokes_are_retried_within_the_deadline(whisk, driver, deploy):
    dep = deploy(ECHO)
    driver.prepare(dep)
    whisk.rate_limit_per_minute, whisk.invocations = 1, type(whisk.invocations)()
    blocker = threading.Timer(1.0, lambda: setattr(whisk, "rate_limit_per_minute", None))
    try:
        assert driver.run(dep, {}, 1).payload["payload"] == 1
        blocker.start()  # the second is refused with 429 until the limit is lifted
        out = driver.run(dep, {}, 2)
    finally:
        blocker.cancel()
        whisk.rate_limit_per_minute = None
    assert out.error is None and out.payload["payload"] == 2
    assert any(s == 429 for _, _, s in whisk.requests)


@pytest.mark.parametrize("packaging", ["native"], indirect=True)
def test_parameters_over_one_megabyte_are_refused_before_sending(whisk, driver, deploy):
    dep = deploy(ECHO)
    driver.prepare(dep)
    before = len(whisk.requests)
    out = driver.run(dep, {}, "x" * (1024 * 1024))
    assert out.error["type"] == "InputError"
    assert "over OpenWhisk's 1048576 byte limit on an activation's parameters" in out.error["message"]
    assert len(whisk.requests) == before


@pytest.mark.parametrize("packaging", ["native"], indirect=True)
def test_an_action_deleted_behind_dispatchs_back_is_deployed_again(whisk, driver, deploy):
    dep = deploy(ECHO)
    driver.prepare(dep)
    del whisk.actions[("guest", f"{dep.org}.{dep.name}.{dep.version}")]
    assert driver.run(dep, {}, "back").payload["payload"] == "back"


def test_transport_failure_is_a_system_error(deploy, packaging):
    if packaging != "native":
        pytest.skip("one packaging is enough")
    driver = OpenWhiskDriver(api_host="http://127.0.0.1:9", auth=AUTH)
    dep = deploy(ECHO)
    with pytest.raises(BuildError, match="cannot be reached"):
        driver.prepare(dep)
    driver.close()


def test_the_key_is_never_in_the_drivers_repr(make_driver):
    assert AUTH.split(":")[1] not in repr(make_driver())


@pytest.mark.parametrize("packaging", ["native"], indirect=True)
def test_image_dependencies_travel_in_the_zip(whisk, driver, deploy, language, tmp_path):
    """A local-builder image's virtualenv / node_modules goes into the action's zip."""
    deps = tmp_path / "image"
    if language == "python3":
        site = deps / "lib" / "python3.99" / "site-packages" / "shouty"
        site.mkdir(parents=True)
        (site / "__init__.py").write_text("def shout(s):\n    return s.upper()\n")
        config = {"language": "python3", "paths": [str(deps)]}
    else:
        mod = deps / "node_modules" / "shouty"
        mod.mkdir(parents=True)
        (mod / "index.js").write_text("exports.shout = (s) => s.toUpperCase();\n")
        config = {"language": "nodejs", "nodePath": str(deps / "node_modules"), "paths": [str(deps)]}
    dep = deploy({"python3": "import shouty\ndef handle(ctx, p):\n    return shouty.shout(p)\n",
                  "nodejs": "const shouty = require('shouty');\nmodule.exports = (ctx, p) => shouty.shout(p);\n"})
    dep = dataclasses.replace(dep, image_config=config)
    assert driver.run(dep, {}, "quiet").payload == "QUIET"
    names = zipfile.ZipFile(io.BytesIO(base64.b64decode(action_of(whisk, dep)["exec"]["code"]))).namelist()
    if language == "python3":
        assert "virtualenv/bin/activate_this.py" in names
        assert "virtualenv/lib/python3.99/site-packages/shouty/__init__.py" in names
    else:
        assert "node_modules/shouty/index.js" in names


def test_concurrent_runs_each_get_their_activation(whisk, driver, deploy):
    dep = deploy(ECHO)
    results = [None] * 3

    def call(i):
        results[i] = driver.run(dep, {}, i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.payload["payload"] for r in results] == [0, 1, 2]
    assert len({r.extra["activationId"] for r in results}) == 3


# -- the stand-in's own contract (what the driver relies on it to answer as OpenWhisk does) --


@pytest.mark.parametrize("packaging", ["native"], indirect=True)
def test_the_stand_in_answers_as_openwhisks_rest_api_documents(whisk, driver, deploy):
    dep = deploy(ECHO)
    driver.prepare(dep)
    url = f"{whisk.api_host}/api/v1/namespaces/_/actions/{dep.org}.{dep.name}.{dep.version}"
    ow = requests.Session()
    ow.auth = tuple(AUTH.split(":", 1))
    action = ow.get(url).json()
    assert action["exec"]["kind"] == ("python:3" if dep.language == "python3" else "nodejs:20")
    again = {"exec": {"kind": "blackbox", "image": "x"}}
    assert ow.put(url, json=again).status_code == 409  # no overwrite
    result = ow.post(url, params={"blocking": "true", "result": "true"},
                     json={"context": {}, "payload": "r"})
    assert result.status_code == 200 and result.json()["payload"]["payload"] == "r"
    queued = ow.post(url, json={"context": {}, "payload": "nb"})
    assert queued.status_code == 202
    activation = f"{whisk.api_host}/api/v1/namespaces/_/activations/{queued.json()['activationId']}"
    record = wait_until_ok(ow, activation)
    assert record["response"]["result"]["payload"]["payload"] == "nb"
    assert requests.get(url, auth=("nobody", "x")).status_code == 401
    assert ow.get(url.replace("/_/", "/other/")).status_code == 403
    assert ow.delete(url).status_code == 200 and ow.get(url).status_code == 404


def wait_until_ok(session, url):
    deadline = time.monotonic() + 30
    while True:
        resp = session.get(url)
        if resp.status_code == 200 or time.monotonic() > deadline:
            return resp.json()
        time.sleep(0.1)


@pytest.mark.parametrize("packaging", ["native"], indirect=True)
def test_native_kinds_are_configurable(whisk, make_driver, deploy, language):
    dep = deploy(ECHO)
    driver = make_driver(kinds="python3=python:3.11,nodejs=nodejs:22")
    assert driver.run(dep, {}, "k").payload["payload"] == "k"
    assert action_of(whisk, dep)["exec"]["kind"] == {"python3": "python:3.11", "nodejs": "nodejs:22"}[language]


def test_settings_read_the_openwhisk_configuration_and_never_show_the_key():
    from engine.settings import Settings

    settings = Settings.from_env({"DISPATCH_DRIVER": "openwhisk", "DISPATCH_OPENWHISK_API_HOST": "https://ow:443",
                                  "DISPATCH_OPENWHISK_AUTH": AUTH, "DISPATCH_OPENWHISK_NAMESPACE": "team",
                                  "DISPATCH_OPENWHISK_INSECURE": "1", "DISPATCH_OPENWHISK_MEMORY_MB": "512"},
                                 home="/tmp/dispatch-ow-settings")
    assert (settings.openwhisk_api_host, settings.openwhisk_auth, settings.openwhisk_namespace) == (
        "https://ow:443", AUTH, "team")
    assert settings.openwhisk_insecure is True and settings.openwhisk_memory_mb == 512
    assert AUTH.split(":")[1] not in repr(settings)
    with pytest.raises(ValueError, match="DISPATCH_OPENWHISK_AUTH"):
        open_driver("openwhisk", "", api_host="https://ow:443", auth=None)
