"""The driver contract: every FaaS driver that can run here passes these.

Parametrized by driver: ``local`` (sandboxed with bubblewrap, the real configuration
here), ``local-nosandbox`` (plain processes, what hosts without bwrap get) and ``docker``
(containers through podman's Docker Engine API, each version's function image built by
the docker builder and pushed to the local registry: see deploy/container-services.sh);
and by the function's language: ``python3`` and ``nodejs``. Each test gives its function
in every language it applies to.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import textwrap
import threading
import time
import uuid

import pytest

from engine.builders.base import BaseImageSpec, ImageSpec
from engine.drivers import open_driver
from engine.drivers.base import Deployment
from engine.errors import BuildError
from engine.sources import pack

pytestmark = pytest.mark.timeout(120)

#: parametrization -> (driver, its options)
DRIVERS = {
    "local": ("local", {"sandbox": True}),
    "local-nosandbox": ("local", {"sandbox": False}),
    "docker": ("docker", {}),
}

LANGUAGES = {"python3": ".py", "nodejs": ".js"}

#: a module-level token identifies one process (PIDs repeat across sandboxes)
ECHO_PY = """
import os, uuid
INSTANCE = uuid.uuid4().hex

def handle(ctx, payload):
    return {"payload": payload, "ctx": ctx, "instance": INSTANCE, "pid": os.getpid()}
"""
ECHO_JS = """
const INSTANCE = require('crypto').randomUUID();
const echo = (ctx, payload) => ({ payload, ctx, instance: INSTANCE, pid: process.pid });
module.exports = echo;
"""
ECHO = {"python3": ECHO_PY, "nodejs": ECHO_JS}
#: the echo function, answering after sleeping the given seconds; it says when (by the
#: host's clock, which sandboxes and containers share) it started and finished
SLOW_ECHO = {
    "python3": ECHO_PY + "\nimport time\n_h = handle\ndef handle(ctx, p):\n    started = time.time()\n"
                         "    time.sleep(%s)\n    return dict(_h(ctx, p), started=started, finished=time.time())\n",
    "nodejs": ECHO_JS + "\nmodule.exports = async (ctx, p) => { const started = Date.now() / 1000; "
                        "await new Promise((r) => setTimeout(r, %s * 1000)); "
                        "return { ...echo(ctx, p), started, finished: Date.now() / 1000 }; };\n",
}


@pytest.fixture(params=list(DRIVERS))
def driver_name(request):
    kind, opts = DRIVERS[request.param]
    if opts.get("sandbox") and shutil.which("bwrap") is None:
        pytest.skip("bwrap is not installed")
    if kind == "docker":
        request.getfixturevalue("docker_host")  # fails, with how to set it up, if it is not
    return request.param


@pytest.fixture(scope="session")
def function_images(base_images, docker_host, registry, tmp_path_factory):
    """Gives a deployment its function image, built by the docker builder onto an image
    (without dependencies) of its language; removes the function images at the end."""
    from engine.builders.docker import DockerBuilder

    builder = DockerBuilder(str(tmp_path_factory.mktemp("builder")), docker_host=docker_host, registry=registry)
    image_configs, built = {}, []

    def build(dep: Deployment) -> Deployment:
        if dep.language not in image_configs:
            base = BaseImageSpec(org="contract", name=f"{dep.language}-base", url=base_images[dep.language],
                                 language=dep.language)
            image = ImageSpec(org="contract", name=dep.language, id=f"contract-{dep.language}", base=base)
            image_configs[dep.language] = builder.build_image(image, builder.check_base(base)).config
        config = builder.build_function(dataclasses.replace(dep, image_config=image_configs[dep.language]))
        built.append(config)
        return dataclasses.replace(dep, image_config=config)

    yield build
    for config in built:
        builder.remove_function(config)
    builder.close()


@pytest.fixture(params=list(LANGUAGES))
def language(request):
    if request.param == "nodejs" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    return request.param


@pytest.fixture
def make_driver(request, driver_name, tmp_path):
    """Opens drivers (each with its own home, like separate hosts) and closes them."""
    opened = []
    kind, defaults = DRIVERS[driver_name]
    if kind == "docker":
        defaults = {**defaults, "docker_host": request.getfixturevalue("docker_host")}

    def make(**opts):
        home = tmp_path / f"home{len(opened)}"
        drv = open_driver(kind, str(home), **{**defaults, **opts})
        opened.append(drv)
        return drv

    yield make
    for drv in opened:
        drv.close()


@pytest.fixture
def driver(make_driver):
    return make_driver()


@pytest.fixture
def deploy(request, tmp_path, language, driver_name):
    """Writes a tiny function in the test's language and returns its Deployment (a new
    version each call), with its function image for the docker driver. ``code`` and
    ``files`` map a language to its text; a test with no code for the language does not
    apply to it."""
    build = request.getfixturevalue("function_images") if DRIVERS[driver_name][0] == "docker" else None

    def make(code: dict, *, handler: dict | None = None, timeout_ms: int = 0, files: dict | None = None,
             **fields):
        if language not in code:
            pytest.skip(f"does not apply to {language}")
        module = f"fn_{uuid.uuid4().hex[:8]}"  # unique, so its processes can be found
        src = tmp_path / f"src-{module}"
        src.mkdir()
        (src / f"{module}{LANGUAGES[language]}").write_text(textwrap.dedent(code[language]))
        for name, text in (files or {}).get(language, {}).items():
            (src / name).write_text(textwrap.dedent(text))
        archive = pack(str(src))
        default = {"python3": "{m}.handle", "nodejs": "{m}.js"}[language]
        dep = Deployment(org="acme", name="fn", version=uuid.uuid4().hex, language=language,
                         handler=((handler or {}).get(language) or default).format(m=module), image=language,
                         timeout_ms=timeout_ms, source=lambda: archive, **fields)
        return build(dep) if build else dep

    return make


def processes_of(dep: Deployment) -> list[int]:
    """Host PIDs of processes running this deployment's handler."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if dep.handler.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def version_dir(driver, dep: Deployment) -> str | None:
    """Where a driver keeping files on this host keeps the version's (None if it keeps none)."""
    home = getattr(driver, "_home", None)
    return os.path.join(home, "functions", dep.org, dep.name, dep.version) if home else None


def wait_for_processes(dep: Deployment, count: int, within: float = 5.0) -> list[int]:
    deadline = time.monotonic() + within
    while True:
        pids = processes_of(dep)
        if len(pids) == count or time.monotonic() > deadline:
            return pids
        time.sleep(0.02)


def test_runs_handler_and_returns_payload(driver, deploy):
    dep = deploy({"python3": "def handle(ctx, payload):\n    return {'hello': payload['name']}\n",
                  "nodejs": "module.exports = (ctx, payload) => ({ hello: payload.name });\n"})
    driver.prepare(dep)
    out = driver.run(dep, {}, {"name": "world"})
    assert out.error is None
    assert out.payload == {"hello": "world"}


def test_a_promise_is_awaited(driver, deploy):
    dep = deploy({"nodejs": """
        module.exports = async (ctx, payload) => {
          await new Promise((resolve) => setTimeout(resolve, 10));
          return { later: payload };
        };
    """})
    assert driver.run(dep, {}, 1).payload == {"later": 1}


def test_context_reaches_the_handler(driver, deploy):
    dep = deploy(ECHO)
    ctx = {"secrets": {"password": "s3cret"}, "deadline": "2030-01-01T00:00:00Z", "event": None}
    out = driver.run(dep, ctx, [1, 2, 3])
    assert out.payload["ctx"] == ctx
    assert out.payload["payload"] == [1, 2, 3]


def test_stdout_and_stderr_lines_are_captured_per_run(driver, deploy):
    dep = deploy({"python3": """
        import os, subprocess, sys

        def handle(ctx, payload):
            print("print", payload)
            os.write(1, b"fd1 " + payload.encode() + b"\\n")
            subprocess.run(["echo", "subprocess", payload], check=True)
            sys.stderr.write("stderr " + payload + "\\n")
            os.write(2, b"fd2 " + payload.encode() + b"\\n")
            return None
    """, "nodejs": """
        const fs = require('fs');
        const { execFileSync } = require('child_process');

        module.exports = (ctx, payload) => {
          console.log('print', payload);
          fs.writeSync(1, `fd1 ${payload}\\n`);
          execFileSync('echo', ['subprocess', payload], { stdio: 'inherit' });
          process.stderr.write(`stderr ${payload}\\n`);
          fs.writeSync(2, `fd2 ${payload}\\n`);
          return null;
        };
    """})
    first = driver.run(dep, {}, "one")
    second = driver.run(dep, {}, "two")
    assert first.logs == {"stdout": ["print one", "fd1 one", "subprocess one"],
                          "stderr": ["stderr one", "fd2 one"]}
    assert second.logs == {"stdout": ["print two", "fd1 two", "subprocess two"],
                           "stderr": ["stderr two", "fd2 two"]}


def test_log_output_is_capped(driver, deploy):
    dep = deploy({"python3": "def handle(ctx, payload):\n    for _ in range(200):\n        print('y' * 999)\n",
                  "nodejs": "module.exports = () => { for (let i = 0; i < 200; i++) console.log('y'.repeat(999)); };\n"})
    out = driver.run(dep, {}, None)
    assert out.error is None
    assert out.logs["stdout"][-1] == "... [truncated]"
    assert sum(len(line) + 1 for line in out.logs["stdout"]) < 70 * 1024


def test_exception_becomes_function_error_with_stacktrace(driver, deploy, language):
    dep = deploy({"python3": """
        def handle(ctx, payload):
            print("before the failure")
            return helper()

        def helper():
            raise ValueError("bad input")
    """, "nodejs": """
        module.exports = function (ctx, payload) {
          console.log('before the failure');
          return helper();
        };

        function helper() {
          throw new Error('bad input');
        }
    """})
    out = driver.run(dep, {}, None)
    assert out.payload is None
    assert out.error["type"] == "FunctionError"
    trace = out.error["stacktrace"]
    if language == "python3":
        assert out.error["message"] == "ValueError: bad input"
        assert trace[0].startswith("Traceback")
        assert any("in helper" in line for line in trace)
        assert trace[-1] == "ValueError: bad input"
    else:
        assert out.error["message"] == "Error: bad input"
        assert trace[0] == "Error: bad input"
        assert any("at helper" in line for line in trace)
    assert not any("server." in line for line in trace)  # the runtime's frames are hidden
    assert out.logs["stdout"] == ["before the failure"]


def test_non_json_output_is_a_function_error(driver, deploy):
    dep = deploy({"python3": "def handle(ctx, payload):\n    return {'when': object()} if payload else 1\n",
                  "nodejs": "module.exports = (ctx, payload) => (payload ? { when: 10n } : 1);\n"})
    out = driver.run(dep, {}, True)
    assert out.error["type"] == "FunctionError"
    assert "not JSON-serializable" in out.error["message"]
    assert out.payload is None
    assert driver.run(dep, {}, False).payload == 1  # the instance survives


def test_timeout_kills_the_process_and_next_run_gets_a_fresh_one(driver, deploy):
    dep = deploy({"python3": ECHO_PY + """
import time
_handle = handle
def handle(ctx, payload):
    if payload == "slow":
        print("started", flush=True)
        time.sleep(30)
    return _handle(ctx, payload)
""", "nodejs": ECHO_JS + """
module.exports = async (ctx, payload) => {
  if (payload === 'slow') {
    console.log('started');
    await new Promise((resolve) => setTimeout(resolve, 30000));
  }
  return echo(ctx, payload);
};
"""}, timeout_ms=500)
    first = driver.run(dep, {}, "fast")
    out = driver.run(dep, {}, "slow")
    # the timeout ended it (a run that slept its 30 s out would have no error)
    assert out.error == {"type": "FunctionError", "message": "function timed out after 500 ms",
                         "stacktrace": []}
    assert out.logs["stdout"] == ["started"]
    assert wait_for_processes(dep, 0) == []
    after = driver.run(dep, {}, "fast")
    assert after.error is None
    assert after.cold_start_ms is not None
    assert after.payload["instance"] != first.payload["instance"]


def test_crashed_process_is_replaced(driver, deploy):
    dep = deploy({"python3": ECHO_PY + """
_handle = handle
def handle(ctx, payload):
    if payload == "crash":
        os.write(2, b"last words\\n")
        os._exit(7)
    return _handle(ctx, payload)
""", "nodejs": ECHO_JS + """
module.exports = (ctx, payload) => {
  if (payload === 'crash') {
    process.stderr.write('last words\\n');
    process.exit(7);
  }
  return echo(ctx, payload);
};
"""})
    first = driver.run(dep, {}, "ok")
    out = driver.run(dep, {}, "crash")
    assert out.error["type"] == "FunctionError"
    assert out.error["message"] == "function process exited with code 7"
    assert out.logs["stderr"] == ["last words"]
    after = driver.run(dep, {}, "ok")
    assert after.error is None
    assert after.payload["instance"] != first.payload["instance"]


BROKEN = {
    "missing module": {
        "python3": ("nowhere.handle", "def handle(ctx, payload):\n    pass\n", "handler module 'nowhere' not found"),
        "nodejs": ("nowhere.js", "module.exports = () => 1;\n", "handler module 'nowhere.js' not found"),
    },
    "syntax error": {
        "python3": (None, "x = 1\n\ndef handle(ctx, payload)\n    return 1\n",
                    r"SyntaxError in fn_\w+\.py line 3: expected ':'"),
        "nodejs": (None, "const x = 1;\n\nmodule.exports = function (ctx, payload) {\n  return {\n}}}\n",
                   r"SyntaxError in fn_\w+\.js line 5: Unexpected token '}'"),
    },
    "missing attribute": {
        "python3": (None, "def other(ctx, payload):\n    pass\n", r"module 'fn_\w+' has no attribute 'handle'"),
        "nodejs": ("{m}.handle", "exports.other = () => 1;\n", r"module 'fn_\w+' has no export 'handle'"),
    },
    "not a function": {
        "nodejs": (None, "exports.other = () => 1;\n",
                   r"handler 'fn_\w+\.js' is not a function: module.exports is an object"),
    },
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_handler_fails_prepare_with_reason(driver, deploy, language, case):
    if language not in BROKEN[case]:
        pytest.skip(f"does not apply to {language}")
    handler, code, reason = BROKEN[case][language]
    dep = deploy({language: code}, handler={language: handler})
    with pytest.raises(BuildError, match=reason):
        driver.prepare(dep)
    # a run does not raise for the function's own fault: it is the outcome's error
    out = driver.run(dep, {}, None)
    assert out.error["type"] == "FunctionError"
    assert re.fullmatch(reason, out.error["message"])


def test_warm_instance_is_reused(driver, deploy):
    dep = deploy(ECHO)
    first = driver.run(dep, {}, 1)
    second = driver.run(dep, {}, 2)
    third = driver.run(dep, {}, 3)
    assert first.cold_start_ms is not None and first.cold_start_ms > 0
    assert second.cold_start_ms is None and third.cold_start_ms is None
    assert first.payload["instance"] == second.payload["instance"] == third.payload["instance"]
    assert first.payload["pid"] == second.payload["pid"]


def test_first_run_after_prepare_is_warm(driver, deploy):
    dep = deploy(ECHO)
    driver.prepare(dep)
    driver.prepare(dep)  # idempotent
    assert driver.run(dep, {}, None).cold_start_ms is None
    assert len(processes_of(dep)) >= 1


def run_at_once(driver, dep, payloads):
    """Run ``driver.run(dep, {}, p)`` for each payload in its own thread; the outcomes in order."""
    results = [None] * len(payloads)

    def call(i):
        results[i] = driver.run(dep, {}, payloads[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_runs_use_separate_instances(driver, deploy):
    dep = deploy({lang: code % 2 for lang, code in SLOW_ECHO.items()})
    # three warm instances first: a cold start can take seconds on a loaded machine, and
    # what is shown below is that runs overlap, not how fast instances start
    for _ in range(5):
        warm = run_at_once(driver, dep, ["warm"] * 3)
        if len({r.payload["instance"] for r in warm}) == 3:
            break
    results = run_at_once(driver, dep, [0, 1, 2])
    assert [r.payload["payload"] for r in results] == [0, 1, 2]
    # not one after the other: every run started before any of them finished
    assert max(r.payload["started"] for r in results) < min(r.payload["finished"] for r in results)
    assert len({r.payload["instance"] for r in results}) == 3


def test_runs_beyond_the_instance_limit_wait_for_a_free_one(make_driver, deploy):
    driver = make_driver(max_instances_per_version=1)
    dep = deploy({lang: code % 0.3 for lang, code in SLOW_ECHO.items()})
    results = run_at_once(driver, dep, [None] * 3)
    assert all(r.error is None for r in results)
    assert len({r.payload["instance"] for r in results}) == 1


def test_a_deployments_concurrency_overrides_the_drivers_default(make_driver, deploy):
    driver = make_driver(max_instances_per_version=1)
    dep = deploy({lang: code % 0.3 for lang, code in SLOW_ECHO.items()}, concurrency=2)
    results = run_at_once(driver, dep, [None] * 4)
    assert all(r.error is None for r in results)
    assert len({r.payload["instance"] for r in results}) == 2

    serial = dataclasses.replace(dep, version=uuid.uuid4().hex, concurrency=1)
    wide = make_driver(max_instances_per_version=4)
    results = run_at_once(wide, serial, [None] * 3)
    assert len({r.payload["instance"] for r in results}) == 1


def test_retire_stops_instances(driver, deploy):
    dep = deploy(ECHO)
    driver.run(dep, {}, None)
    assert len(processes_of(dep)) >= 1
    driver.retire(dep)
    assert wait_for_processes(dep, 0) == []
    if version_dir(driver, dep):
        assert not os.path.exists(version_dir(driver, dep))


def test_close_stops_every_instance(make_driver, deploy):
    driver = make_driver()
    deps = [deploy(ECHO), deploy(ECHO)]
    for dep in deps:
        driver.run(dep, {}, None)
    driver.close()
    for dep in deps:
        assert wait_for_processes(dep, 0) == []


def test_unprepared_version_is_prepared_on_first_run(make_driver, deploy):
    preparer, other_host = make_driver(), make_driver()
    dep = deploy(ECHO)
    preparer.prepare(dep)
    out = other_host.run(dep, {}, "x")
    assert out.error is None and out.payload["payload"] == "x"
    assert out.cold_start_ms is not None
    if version_dir(other_host, dep):
        assert os.path.isdir(os.path.join(version_dir(other_host, dep), "src"))


def test_function_files_beside_the_handler_are_importable_and_readable(driver, deploy):
    dep = deploy({"python3": """
        import helper

        def handle(ctx, payload):
            with open("data.txt") as f:
                return helper.shout(f.read().strip())
    """, "nodejs": """
        const fs = require('fs');
        const helper = require('./helper');

        module.exports = () => helper.shout(fs.readFileSync('data.txt', 'utf8').trim());
    """}, files={
        "python3": {"helper.py": "def shout(s):\n    return s.upper()\n", "data.txt": "quiet\n"},
        "nodejs": {"helper.js": "exports.shout = (s) => s.toUpperCase();\n", "data.txt": "quiet\n"},
    })
    assert driver.run(dep, {}, None).payload == "QUIET"


def test_function_does_not_see_the_drivers_environment(driver, deploy, monkeypatch, language):
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "do-not-leak")
    dep = deploy({"python3": "import os\ndef handle(ctx, payload):\n    return dict(os.environ)\n",
                  "nodejs": "module.exports = () => ({ ...process.env });\n"})
    env = driver.run(dep, {}, None).payload
    assert "DISPATCH_SECRET_KEY" not in env
    assert env["HOME"] == "/tmp"
    allowed = {"PATH", "HOME", "LANG", "PWD"}
    if language == "python3":
        allowed |= {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}
    assert set(env) <= allowed


def test_memory_limit_turns_into_a_function_error_and_a_new_instance(make_driver, deploy, language):
    driver = make_driver(memory_limit_mb=200)
    dep = deploy({"python3": ECHO_PY + """
_handle = handle
def handle(ctx, payload):
    if payload == "hog":
        return len(bytearray(400 * 1024 * 1024))
    return _handle(ctx, payload)
""", "nodejs": ECHO_JS + """
module.exports = (ctx, payload) => {
  if (payload === 'hog') {
    const kept = [];
    for (;;) kept.push(new Array(100000).fill(1.5));
  }
  return echo(ctx, payload);
};
"""})
    first = driver.run(dep, {}, "ok")
    out = driver.run(dep, {}, "hog")
    assert out.error["type"] == "FunctionError"
    expected = {"python3": "MemoryError", "nodejs": "function ran out of memory (limit 200 MB)"}
    assert out.error["message"] == expected[language]
    after = driver.run(dep, {}, "ok")
    assert after.error is None
    assert after.payload["instance"] != first.payload["instance"]


def test_idle_instances_are_stopped(make_driver, deploy):
    driver = make_driver(idle_seconds=0.2)
    dep = deploy(ECHO)
    first = driver.run(dep, {}, None)
    assert wait_for_processes(dep, 0, within=5) == []
    second = driver.run(dep, {}, None)
    assert second.cold_start_ms is not None
    assert second.payload["instance"] != first.payload["instance"]


def test_a_newer_version_stops_idle_instances_of_older_ones(driver, deploy):
    old, new = deploy(ECHO), deploy(ECHO)
    old, new = dataclasses.replace(old, name="same"), dataclasses.replace(new, name="same")
    driver.run(old, {}, None)
    driver.run(new, {}, None)
    assert wait_for_processes(old, 0) == []
    assert processes_of(new)
    assert driver.run(old, {}, None).error is None  # an older version still runs on demand
