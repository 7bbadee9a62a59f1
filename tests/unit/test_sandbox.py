"""What a function inside the local driver's bubblewrap sandbox can and cannot reach."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import textwrap
import uuid

import pytest

from engine.drivers import local, sandbox
from engine.drivers.base import Deployment
from engine.drivers.local import LocalDriver
from engine.errors import Unavailable
from engine.sources import pack

pytestmark = pytest.mark.timeout(60)
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap is not installed")

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


def test_bwrap_command_binds_only_the_version_and_the_server(tmp_path):
    home = tmp_path / "home"
    src, inst = home / "functions" / "o" / "f" / "v" / "src", home / "run" / "abc"
    cmd = sandbox.bwrap_command(bwrap="/usr/bin/bwrap", interpreter="/usr/bin/python3", src_dir=str(src),
                                server_file="/opt/server.py", instance_dir=str(inst))
    assert cmd[0] == "/usr/bin/bwrap"
    assert "--unshare-all" in cmd and "--share-net" not in cmd
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
