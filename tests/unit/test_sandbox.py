"""What a function inside the local driver's sandbox can and cannot reach, and the
limits that contain it: processes, memory, CPU time, network, output size.

The limit tests use the real cgroups of this host (the driver's cgroup v1 path): they
are skipped only where the driver finds none it may write.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
import textwrap
import threading
import time
import uuid

import pytest

from engine.drivers import cgroups, local, sandbox
from engine.drivers.base import Deployment
from engine.drivers.local import LocalDriver
from engine.errors import Unavailable
from engine.sources import pack
from tests.waiting import settles

pytestmark = pytest.mark.timeout(60)
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap is not installed")
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def _cgroups_here() -> bool:
    try:
        cgroups.Cgroups.detect().close()
        return True
    except cgroups.CgroupsUnavailable:
        return False


needs_cgroups = pytest.mark.skipif(not _cgroups_here(), reason="no writable cgroup v1 hierarchies here")

PROBE = """
import os, socket

def handle(ctx, payload):
    kind, arg = payload["kind"], payload.get("arg")
    try:
        if kind == "connect":
            socket.create_connection(("127.0.0.1", arg), timeout=2).close()
        elif kind == "write":
            with open(arg, "w") as f:
                f.write("x")
        elif kind == "read":
            with open(arg) as f:
                return {"ok": True, "data": f.read()}
        elif kind == "exists":
            return {"ok": True, "exists": os.path.exists(arg)}
        elif kind == "run":
            import subprocess
            return {"ok": True, "returncode": subprocess.run(arg, capture_output=True).returncode}
        elif kind == "capabilities":
            with open("/proc/self/status") as f:
                return {"ok": True, "CapEff": [l.split()[1] for l in f if l.startswith("CapEff")][0]}
        return {"ok": True}
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
"""


@pytest.fixture
def home():
    # outside /tmp, so that "cannot read the home" is not merely the private /tmp at work
    path = tempfile.mkdtemp(prefix="dispatch-sandbox-test-", dir="/var/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def probe(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "probe.py").write_text(textwrap.dedent(PROBE))
    archive = pack(str(src))
    return Deployment(org="acme", name="probe", version=uuid.uuid4().hex, handler="probe.handle",
                      language="python3", image="python3", timeout_ms=10_000, source=lambda: archive)


@pytest.fixture
def run(home, probe):
    drivers = {}

    def run(kind, arg=None, *, sandboxed=True):
        if sandboxed not in drivers:
            drivers[sandboxed] = LocalDriver(os.path.join(home, str(sandboxed)), sandbox=sandboxed)
        out = drivers[sandboxed].run(probe, {}, {"kind": kind, "arg": arg})
        assert out.error is None, out.error
        return out.payload

    yield run
    for drv in drivers.values():
        drv.close()


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@needs_bwrap
def test_function_cannot_connect_to_the_host_over_tcp(run, listener):
    assert run("connect", listener, sandboxed=False)["ok"]  # the probe itself works
    result = run("connect", listener)
    assert not result["ok"]
    assert "Connection refused" in result["error"] or "unreachable" in result["error"]


@needs_bwrap
@pytest.mark.parametrize("path", ["/function/new.txt", "/usr/new.txt", "/etc/passwd", "/new.txt"])
def test_function_cannot_write_outside_tmp(run, path):
    result = run("write", path)
    assert not result["ok"]


@needs_bwrap
def test_function_can_write_its_private_tmp(run):
    assert run("write", "/tmp/scratch.txt")["ok"]


@needs_bwrap
def test_function_cannot_read_files_under_the_drivers_home(run, home):
    store = os.path.join(home, "dispatch.db")
    with open(store, "w") as f:
        f.write("secret rows")
    assert run("read", store, sandboxed=False)["ok"]  # the probe itself works
    assert not run("read", store)["ok"]
    assert not run("exists", home)["exists"]


@needs_bwrap
def test_function_cannot_read_the_project_or_host_secrets(run):
    assert not run("read", local.__file__)["ok"]
    assert not run("read", "/etc/shadow")["ok"]
    assert not run("exists", "/root/.ssh")["exists"]
    assert run("read", sandbox.SERVER_FILE)["ok"]  # only the runtime server itself is bound


@needs_bwrap
def test_function_tmp_is_private(run):
    marker = f"/tmp/dispatch-host-{uuid.uuid4().hex}"
    with open(marker, "w") as f:
        f.write("host")
    try:
        assert run("exists", marker, sandboxed=False)["exists"]
        assert not run("exists", marker)["exists"]
    finally:
        os.unlink(marker)


@needs_bwrap
def test_function_runs_without_capabilities(run):
    assert int(run("capabilities")["CapEff"], 16) == 0


@needs_bwrap
@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux's unshare is not installed")
def test_function_cannot_make_a_user_namespace_to_regain_capabilities(run):
    assert run("run", ["unshare", "--user", "true"], sandboxed=False)["returncode"] == 0  # it can here
    assert run("run", ["unshare", "--user", "true"])["returncode"] != 0


def test_bwrap_command_binds_only_the_version_and_the_server(tmp_path):
    home = tmp_path / "home"
    src, inst = home / "functions" / "o" / "f" / "v" / "src", home / "run" / "abc"
    cmd = sandbox.bwrap_command(bwrap="/usr/bin/bwrap", interpreter="/usr/bin/python3", src_dir=str(src),
                                server_file="/opt/server.py", instance_dir=str(inst), tmp_size_mb=64)
    assert cmd[0] == "/usr/bin/bwrap"
    assert "--unshare-all" in cmd and "--share-net" not in cmd
    assert "--disable-userns" in cmd
    assert cmd[cmd.index("--tmpfs") - 2:cmd.index("--tmpfs") + 2] == ["--size", str(64 << 20), "--tmpfs", "/tmp"]
    assert "--share-net" in sandbox.bwrap_command(bwrap="/usr/bin/bwrap", interpreter="/usr/bin/python3",
                                                  src_dir=str(src), server_file="/opt/server.py",
                                                  instance_dir=str(inst), network=True)
    assert ["--cap-drop", "ALL"] == cmd[cmd.index("--cap-drop"):cmd.index("--cap-drop") + 2]
    binds = [(cmd[i], cmd[i + 1], cmd[i + 2]) for i, arg in enumerate(cmd) if arg.endswith("bind")]
    assert ("--ro-bind", str(src), sandbox.FUNCTION_DIR) in binds
    assert ("--bind", str(inst), sandbox.INSTANCE_DIR) in binds
    assert [b for b in binds if b[0] == "--bind"] == [("--bind", str(inst), sandbox.INSTANCE_DIR)]
    assert not any(source in (str(home), "/", "/etc", "/root", "/home") for _, source, _ in binds)


def test_interpreter_roots_cover_a_venv_and_its_base(tmp_path):
    base = tmp_path / "py" / "bin"
    base.mkdir(parents=True)
    (base / "python3.11").write_text("")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(base / "python3.11")
    (venv / "pyvenv.cfg").write_text(f"home = {base}\n")
    assert sandbox.interpreter_roots(str(venv / "bin" / "python")) == [str(tmp_path / "py"), str(venv)]
    assert sandbox.interpreter_roots("/usr/bin/python3") == []


def test_required_sandbox_without_bwrap_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    with pytest.raises(Unavailable, match="bwrap"):
        LocalDriver(str(tmp_path), sandbox=True)


def test_missing_bwrap_falls_back_with_one_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    monkeypatch.setattr(local, "_warned_no_sandbox", False)
    caplog.set_level(logging.WARNING, logger="dispatch.driver.local")
    drivers = [LocalDriver(str(tmp_path / str(i))) for i in range(2)]
    try:
        assert not any(d.sandboxed for d in drivers)
        assert len([r for r in caplog.records if "bwrap" in r.getMessage()]) == 1
    finally:
        for d in drivers:
            d.close()


@needs_bwrap
def test_a_venv_interpreter_below_tmp_runs_in_the_sandbox(tmp_path, home):
    import subprocess
    import sys

    venv = tmp_path / "venv"  # images built by the local builder are venvs
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "where.py").write_text("import sys\ndef handle(ctx, payload):\n    return sys.prefix\n")
    archive = pack(str(src))
    dep = Deployment(org="acme", name="where", version="v1", handler="where.handle", language="python3",
                     image="python3", timeout_ms=0, source=lambda: archive,
                     image_config={"interpreter": str(venv / "bin" / "python")})
    driver = LocalDriver(home, sandbox=True)
    try:
        assert driver.run(dep, {}, None).payload == str(venv)
    finally:
        driver.close()


# -- limits: processes, memory, CPU time, network, output ---------------------------------

SUFFIX = {"python3": ".py", "nodejs": ".js"}
HANDLER = {"python3": "fn.handle", "nodejs": "fn.js"}


@pytest.fixture
def function(tmp_path):
    """A Deployment of ``code`` (in ``language``), a new version each call."""

    def make(code: str, language: str = "python3", **fields) -> Deployment:
        src = tmp_path / f"src-{uuid.uuid4().hex[:8]}"
        src.mkdir()
        (src / f"fn{SUFFIX[language]}").write_text(textwrap.dedent(code))
        archive = pack(str(src))
        fields.setdefault("timeout_ms", 10_000)
        return Deployment(org="acme", name=src.name, version=uuid.uuid4().hex, handler=HANDLER[language],
                          language=language, image=language, source=lambda: archive, **fields)

    return make


@pytest.fixture
def limited(home):
    """A sandboxed driver with small limits, in real cgroups; without stem cells, so that
    every cgroup under its run directory is a function's instance (stem cells get the
    same cgroups and limits: tests/unit/test_stem_cells.py)."""
    driver = LocalDriver(os.path.join(home, "limited"), sandbox=True, cgroups=True, memory_limit_mb=200,
                         stem_cells=0)
    driver.home = os.path.join(home, "limited")
    yield driver
    driver.close()


def instance_cgroups(driver) -> dict[str, str]:
    """``instance id -> its pids cgroup`` of this driver's instances: each has a directory
    under ``<home>/run`` (other drivers on this host share the cgroups' parent)."""
    run_dir = os.path.join(driver.home, "run")
    parent = driver.cgroups.parents["pids"]
    return {iid: os.path.join(parent, iid) for iid in os.listdir(run_dir)}


def processes_in(iid: str) -> list[int]:
    """Host processes in any cgroup of the instance ``iid``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cgroup") as f:
                if f"/{cgroups.PARENT_NAME}/{iid}" in f.read():
                    found.append(int(entry))
        except (OSError, ValueError):
            pass
    return found


def keep_calling(driver, dep, stop: threading.Event, results: list) -> None:
    """Run ``dep`` back to back until ``stop`` is set; collect (started, finished,
    outcome), times by ``time.monotonic``."""
    while not stop.is_set():
        started = time.monotonic()
        out = driver.run(dep, {}, "ping")
        results.append((started, time.monotonic(), out))


def during(answers: list, started: float, finished: float) -> list:
    """The calls that began after ``started`` and ended before ``finished``."""
    return [out for begun, ended, out in answers if begun >= started and ended <= finished]


def overlapping(answers: list, started: float, finished: float) -> list:
    """The calls that were in flight at some moment between ``started`` and ``finished``."""
    return [out for begun, ended, out in answers if begun < finished and ended > started]


ANSWER = {"python3": "def handle(ctx, payload):\n    return payload\n",
          "nodejs": "module.exports = (ctx, payload) => payload;\n"}

FORK_BOMB = {
    # every child runs the same loop: the classic, spinning without a pause
    "python3": """
        import os

        def handle(ctx, payload):
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
    """,
    "nodejs": """
        const { spawn } = require('child_process');

        module.exports = () => {
          spawn('/bin/sh', ['-c', 'b() { b | b & }; b'], { stdio: 'ignore' });
          return new Promise(() => {});
        };
    """,
}


@needs_bwrap
@needs_cgroups
@pytest.mark.parametrize("language", [
    "python3", pytest.param("nodejs", marks=needs_node)])
def test_a_fork_bomb_is_contained_and_reported_while_other_runs_succeed(limited, function, language):
    bomb = function(FORK_BOMB[language], language, timeout_ms=1500)
    other = function(ANSWER["python3"])
    assert limited.run(other, {}, "warm").error is None
    (calm,) = instance_cgroups(limited)
    stop, answers, peaks = threading.Event(), [], {}

    def watch():
        while not stop.is_set():
            for iid, path in instance_cgroups(limited).items():
                try:  # the kernel's own high-water mark where it keeps one
                    name = "pids.peak" if os.path.exists(os.path.join(path, "pids.peak")) else "pids.current"
                    with open(os.path.join(path, name)) as f:
                        peaks[iid] = max(peaks.get(iid, 0), int(f.read()))
                except OSError:
                    pass
            time.sleep(0.02)

    helpers = [threading.Thread(target=keep_calling, args=(limited, other, stop, answers)),
               threading.Thread(target=watch)]
    for t in helpers:
        t.start()
    try:
        while not answers:  # the other function is being called before the bomb goes off
            time.sleep(0.01)
        bomb_started = time.monotonic()
        out = limited.run(bomb, {}, None)
        bomb_finished = time.monotonic()
    finally:
        stop.set()
        for t in helpers:
            t.join()
    assert out.error == {"type": "FunctionError", "message": "function reached its limit of 64 processes",
                         "stacktrace": []}
    (bomb_iid,) = set(peaks) - {calm}
    assert 3 < peaks[bomb_iid] <= 64  # the message says it got to 64 (pids.events); never further
    # the other function kept answering while the bomb ran (a starved call would have
    # timed out, an error)
    assert all(o.error is None and o.payload == "ping" for _, _, o in answers)
    assert overlapping(answers, bomb_started, bomb_finished)
    assert list(instance_cgroups(limited)) == [calm]  # the bomb's instance is gone...
    assert not os.path.exists(os.path.join(limited.cgroups.parents["pids"], bomb_iid))  # ...with its cgroup
    assert processes_in(bomb_iid) == []  # and nothing of it is left on the host


@needs_bwrap
@needs_cgroups
def test_an_instance_that_died_while_idle_is_replaced_without_failing_a_run(limited, function):
    dep = function("""
        import uuid
        INSTANCE = uuid.uuid4().hex
        def handle(ctx, payload):
            return INSTANCE
    """)
    first = limited.run(dep, {}, None)
    assert first.error is None
    (iid,) = instance_cgroups(limited)
    for pid in processes_in(iid):  # killed from outside while it waits for a run
        os.kill(pid, signal.SIGKILL)
    settles(lambda: processes_in(iid) == [], "the instance's processes to be gone")
    second = limited.run(dep, {}, None)
    assert second.error is None and second.payload != first.payload  # a new instance


@needs_cgroups
def test_the_task_limit_is_seen_reached_after_earlier_reads_saw_it_not():
    # the instance's pids.events stays open between runs and is read again from its
    # start: a limit reached after the first read is seen by the next
    groups = cgroups.Cgroups.detect()
    group = groups.create(uuid.uuid4().hex[:12], max_tasks=2, memory_mb=64)
    try:
        assert not group.reached_task_limit()
        assert not group.reached_task_limit()
        gate_r, gate_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # wait to be in the group, then fork past its limit
            os.read(gate_r, 1)
            children = []
            for _ in range(4):
                try:
                    child = os.fork()
                except OSError:
                    break
                if child == 0:
                    time.sleep(1)
                    os._exit(0)
                children.append(child)
            for child in children:
                os.waitpid(child, 0)
            os._exit(0)
        group.add(pid)
        os.write(gate_w, b"x")
        os.waitpid(pid, 0)
        os.close(gate_r)
        os.close(gate_w)
        assert group.reached_task_limit()
    finally:
        assert group.remove()
        assert not group.reached_task_limit()  # removed: nothing to read
        groups.close()


@needs_bwrap
@needs_cgroups
def test_each_instance_runs_in_cgroups_with_its_limits(limited, function):
    limited.run(function(ANSWER["python3"]), {}, None)
    ((iid, path),) = instance_cgroups(limited).items()
    with open(os.path.join(path, "pids.max")) as f:
        assert f.read().strip() == "64"
    memory = os.path.join(limited.cgroups.parents["memory"], iid)
    with open(os.path.join(memory, "memory.limit_in_bytes")) as f:
        assert int(f.read()) == 200 << 20
    with open(os.path.join(path, "cgroup.procs")) as f:
        assert len(f.read().split()) == 3  # bwrap, bwrap's PID 1 and the server
    assert len(processes_in(iid)) == 3
    limited.close()
    assert not os.path.exists(path) and not os.path.exists(memory)


@needs_bwrap
@needs_cgroups
def test_a_python_memory_hog_gets_memory_error_and_a_new_instance(limited, function):
    dep = function("""
        def handle(ctx, payload):
            if payload == "hog":
                chunks = []
                while True:
                    chunks.append(bytearray(16 << 20))  # zero-filled: really used
            return payload
    """)
    assert limited.run(dep, {}, "ok").payload == "ok"
    out = limited.run(dep, {}, "hog")
    assert out.error["type"] == "FunctionError" and out.error["message"] == "MemoryError"
    after = limited.run(dep, {}, "ok")
    assert after.error is None and after.payload == "ok"
    assert after.cold_start_ms is not None  # what it held on to went with its instance


@needs_bwrap
@needs_cgroups
@needs_node
@pytest.mark.parametrize("hog", ["heap", "buffer"])
def test_a_node_memory_hog_is_killed_reported_and_replaced(limited, function, hog):
    dep = function("""
        const INSTANCE = require('crypto').randomUUID();
        module.exports = (ctx, payload) => {
          if (payload === 'heap') { const kept = []; for (;;) kept.push(new Array(100000).fill(1.5)); }
          // outside V8's heap: only the cgroup bounds it
          if (payload === 'buffer') return Buffer.alloc(400 * 1024 * 1024).fill(1).length;
          return INSTANCE;
        };
    """, "nodejs")
    first = limited.run(dep, {}, "ok").payload
    out = limited.run(dep, {}, hog)
    # killed by the memory limit, not ended by its timeout (that error would say so)
    assert out.error["type"] == "FunctionError"
    assert out.error["message"] == "function ran out of memory (limit 200 MB)"
    after = limited.run(dep, {}, "ok")
    assert after.error is None and after.payload != first


SPIN = {"python3": "def handle(ctx, payload):\n    while True:\n        pass\n",
        "nodejs": "module.exports = () => { for (;;) {} };\n"}


@needs_bwrap
@pytest.mark.parametrize("language", ["python3", pytest.param("nodejs", marks=needs_node)])
def test_an_infinite_loop_is_killed_while_other_functions_keep_answering(limited, function, language):
    spin = function(SPIN[language], language, timeout_ms=1000)
    other = function(ANSWER[language], language)
    assert limited.run(other, {}, "warm").error is None
    stop, answers = threading.Event(), []
    caller = threading.Thread(target=keep_calling, args=(limited, other, stop, answers))
    caller.start()
    try:
        spin_started = time.monotonic()
        out = limited.run(spin, {}, None)
        spin_finished = time.monotonic()
    finally:
        stop.set()
        caller.join()
    assert out.error["message"] == "function timed out after 1000 ms"
    assert all(o.error is None and o.payload == "ping" for _, _, o in answers)
    # calls began and ended, one after another, while the loop spun
    assert len(during(answers, spin_started, spin_finished)) >= 2


@needs_bwrap
def test_network_is_reachable_only_when_the_deployment_allows_it(home, function, listener):
    code = """
        import socket
        def handle(ctx, payload):
            try:
                socket.create_connection(("127.0.0.1", payload), timeout=2).close()
                return "connected"
            except OSError as exc:
                return type(exc).__name__
    """
    driver = LocalDriver(os.path.join(home, "net"), sandbox=True)
    try:
        assert driver.run(function(code), {}, listener).payload != "connected"
        assert driver.run(function(code, network=False), {}, listener).payload != "connected"
        assert driver.run(function(code, network=True), {}, listener).payload == "connected"
    finally:
        driver.close()


OUTPUT = {"python3": "def handle(ctx, payload):\n    return 'x' * payload\n",
          "nodejs": "module.exports = (ctx, payload) => 'x'.repeat(payload);\n"}


@needs_bwrap
@pytest.mark.parametrize("language", ["python3", pytest.param("nodejs", marks=needs_node)])
def test_output_over_one_megabyte_is_refused(limited, function, language):
    dep = function(OUTPUT[language], language)
    largest = (1 << 20) - 2  # with its two quotes, exactly 1 MB of JSON
    assert len(limited.run(dep, {}, largest).payload) == largest
    out = limited.run(dep, {}, largest + 1)
    assert out.payload is None
    assert out.error == {"type": "FunctionError", "stacktrace": [],
                         "message": "output is larger than 1048576 bytes: the function returned 1048577 bytes of JSON"}


@needs_bwrap
@needs_node
def test_a_node_function_is_confined_like_a_python_one(limited, function, home, listener):
    secret = os.path.join(home, "dispatch.db")
    with open(secret, "w") as f:
        f.write("secret rows")
    dep = function("""
        const fs = require('fs');
        const net = require('net');
        const attempt = (f) => { try { f(); return 'allowed'; } catch (err) { return err.code; } };
        module.exports = async (ctx, { secret, port }) => ({
          read: attempt(() => fs.readFileSync(secret)),
          shadow: attempt(() => fs.readFileSync('/etc/shadow')),
          write: attempt(() => fs.writeFileSync('/function/new.txt', 'x')),
          tmp: attempt(() => fs.writeFileSync('/tmp/scratch.txt', 'x')),
          connect: await new Promise((resolve) => {
            const sock = net.connect(port, '127.0.0.1', () => { sock.destroy(); resolve('allowed'); });
            sock.on('error', (err) => resolve(err.code));
          }),
        });
    """, "nodejs")
    out = limited.run(dep, {}, {"secret": secret, "port": listener})
    assert out.error is None, out.error
    assert out.payload["tmp"] == "allowed"
    assert out.payload["read"] == "ENOENT" and out.payload["shadow"] == "ENOENT"
    assert out.payload["write"] in ("EROFS", "EACCES")
    assert out.payload["connect"] in ("ECONNREFUSED", "ENETUNREACH")


def test_required_cgroups_that_are_missing_are_refused(tmp_path, monkeypatch):
    def unavailable():
        raise cgroups.CgroupsUnavailable("no cgroup v1 'pids' hierarchy")

    monkeypatch.setattr(cgroups.Cgroups, "detect", staticmethod(unavailable))
    with pytest.raises(Unavailable, match="cgroups"):
        LocalDriver(str(tmp_path), sandbox=False, cgroups=True)


def test_missing_cgroups_fall_back_with_one_warning(tmp_path, monkeypatch, caplog):
    def unavailable():
        raise cgroups.CgroupsUnavailable("no cgroup v1 'pids' hierarchy")

    monkeypatch.setattr(cgroups.Cgroups, "detect", staticmethod(unavailable))
    monkeypatch.setattr(local, "_warned_no_cgroups", False)
    caplog.set_level(logging.WARNING, logger="dispatch.driver.local")
    drivers = [LocalDriver(str(tmp_path / str(i)), sandbox=False) for i in range(2)]
    try:
        assert all(d.cgroups is None for d in drivers)
        assert len([r for r in caplog.records if "cgroups.unavailable" in r.getMessage()]) == 1
    finally:
        for d in drivers:
            d.close()


@needs_bwrap
def test_a_function_that_lifts_its_servers_cap_is_still_refused_by_the_driver(limited, function):
    # the server runs in the function's own process: the driver cannot trust its checks
    dep = function("""
        import __main__

        def handle(ctx, payload):
            __main__.OUTPUT_CAP_BYTES = 1 << 30
            return "x" * (8 << 20)
    """)
    out = limited.run(dep, {}, None)
    assert out.payload is None
    assert out.error["message"].startswith("output is larger than 1048576 bytes: the function's reply was ")


@needs_cgroups
def test_sweeping_removes_only_stale_empty_instance_cgroups():
    # a driver killed with SIGKILL leaves its instances' cgroups behind, empty
    import subprocess

    real = cgroups.Cgroups.detect()
    private = cgroups.Cgroups({c: os.path.join(parent, f"sweep-test-{uuid.uuid4().hex[:8]}")
                               for c, parent in real.parents.items()})  # other drivers' stay untouched
    stale = private.create("0123456789ab", max_tasks=8, memory_mb=64)
    busy = private.create("ba9876543210", max_tasks=8, memory_mb=64)
    other = os.path.join(private.parents["pids"], "not-an-instance")
    os.mkdir(other)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        busy.add(sleeper.pid)
        private.sweep()  # all of them are younger than a minute
        assert all(os.path.isdir(p) for p in [*stale.paths.values(), *busy.paths.values(), other])
        private.sweep(older_than_s=0)
        assert not any(os.path.exists(p) for p in stale.paths.values())
        assert all(os.path.isdir(p) for p in [*busy.paths.values(), other])  # in use; not ours
    finally:
        sleeper.kill()
        sleeper.wait()
        busy.remove()
        os.rmdir(other)
        private.close()
        real.close()
    assert not any(os.path.exists(p) for p in private.parents.values())
