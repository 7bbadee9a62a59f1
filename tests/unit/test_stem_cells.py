"""Stem cells and the bound on warm instances of the local driver, on real sandboxed
processes: a cold start takes a pre-started server and gives it one version's files and
handler; that server runs nothing else, ever; a broken handler fails as a normal start
does; past ``max_instances`` the least recently used idle instance makes room."""

from __future__ import annotations

import os
import shutil
import threading
import uuid

import pytest

from engine.drivers.base import Deployment
from engine.drivers.local import LocalDriver
from engine.errors import BuildError
from engine.sources import pack

pytestmark = pytest.mark.timeout(120)

PROBE = """
import os, uuid
INSTANCE = uuid.uuid4().hex

def handle(ctx, payload):
    try:
        open("/function/written", "w").close()
        writable = True
    except OSError:
        writable = False
    return {"instance": INSTANCE, "files": sorted(os.listdir("/function")), "cwd": os.getcwd(),
            "writable": writable}
"""


@pytest.fixture
def make_driver(tmp_path):
    if shutil.which("bwrap") is None:
        pytest.skip("bwrap is not installed")
    opened = []

    def make(**opts):
        drv = LocalDriver(str(tmp_path / f"home{len(opened)}"), sandbox=True, **opts)
        opened.append(drv)
        return drv

    yield make
    for drv in opened:
        drv.close()


@pytest.fixture
def deploy(tmp_path):
    """A new version of a new function: ``code`` in module ``fn_<random>`` (``.py``, or
    ``.js`` for nodejs, whose handler is the file)."""
    def make(code: str = PROBE, *, handler: str = "{m}.handle",
             language: str = "python3") -> Deployment:
        module = f"fn_{uuid.uuid4().hex[:8]}"
        src = tmp_path / f"src-{module}"
        src.mkdir()
        if language == "nodejs":
            file, handler = f"{module}.js", f"{module}.js"
        else:
            file, handler = f"{module}.py", handler.format(m=module)
        (src / file).write_text(code)
        archive = pack(str(src))
        return Deployment(org="acme", name=module, version=uuid.uuid4().hex, language=language,
                          handler=handler, image=language, timeout_ms=10_000,
                          source=lambda: archive)

    return make


def ready_cells(driver: LocalDriver, at_least: int = 1) -> list[str]:
    """The instance ids of the driver's waiting stem cells, once ``at_least`` are ready."""
    stems = driver._stems
    changed = threading.Event()
    for _ in range(600):  # the refill thread starts them in the background
        with stems._lock:
            cells = [cell.iid for group in stems._ready.values() for cell in group]
        if len(cells) >= at_least:
            return cells
        changed.wait(0.05)
    raise AssertionError(f"no {at_least} stem cell(s) became ready")


def test_a_cold_start_takes_a_ready_stem_cell_and_gives_it_the_version(make_driver, deploy):
    driver = make_driver(stem_cells=1)
    first, second = deploy(), deploy()
    driver.run(first, {}, None)  # the launch is learnt; a cell is started for the next
    cells = ready_cells(driver)
    out = driver.run(second, {}, None)
    assert out.error is None and out.cold_start_ms is not None
    pool = driver._pools._pools[second.id]
    assert pool.idle[0].iid in cells  # the cell is this version's instance now
    module = second.handler.split(".")[0]
    # only this version's files, read-only, where the handler runs from
    assert out.payload["files"] == [f"{module}.py"]
    assert out.payload["cwd"] == "/function" and out.payload["writable"] is False


def test_a_stem_cell_serves_one_version_only(make_driver, deploy):
    driver = make_driver(stem_cells=1)
    first, second = deploy(), deploy()
    driver.run(first, {}, None)
    taken = ready_cells(driver)
    driver.run(second, {}, None)
    driver.retire(second)
    # the used cell is gone with its version; what waits now is a fresh one
    assert not set(ready_cells(driver)) & set(taken)
    third = deploy()
    out = driver.run(third, {}, None)
    assert out.payload["files"] == [f"{third.handler.split('.')[0]}.py"]


def test_a_broken_handler_fails_in_a_stem_cell_as_at_a_start(make_driver, deploy):
    driver = make_driver(stem_cells=1)
    driver.run(deploy(), {}, None)
    ready_cells(driver)
    with pytest.raises(BuildError, match="handler module 'nope' not found"):
        driver.prepare(deploy(handler="nope.handle"))
    ready_cells(driver)
    with pytest.raises(BuildError, match="ZeroDivisionError while importing"):
        driver.prepare(deploy("x = 1 / 0\n"))
    ready_cells(driver)
    with pytest.raises(BuildError, match="has no attribute 'missing'"):
        driver.prepare(deploy(handler="{m}.missing"))
    # the failed cells are stopped, their directories removed
    run_dir = driver._run_dir
    ready = ready_cells(driver)
    left = {name.split(".")[0] for name in os.listdir(run_dir)}
    alive = set(ready) | {inst.iid for pool in driver._pools._pools.values() for inst in pool.idle}
    assert left <= alive


def test_without_stem_cells_every_start_is_a_plain_start(make_driver, deploy):
    driver = make_driver(stem_cells=0)
    assert driver._stems is None
    out = driver.run(deploy(), {}, None)
    assert out.error is None and out.cold_start_ms is not None


def test_past_max_instances_the_least_recently_used_idle_instance_is_stopped(make_driver, deploy):
    driver = make_driver(max_instances=2, stem_cells=0)
    a, b, c = deploy(), deploy(), deploy()
    first_a = driver.run(a, {}, None)
    driver.run(b, {}, None)
    assert driver.run(a, {}, None).cold_start_ms is None  # a is now more recent than b
    driver.run(c, {}, None)  # a third instance: b, the least recently used, makes room
    assert driver.run(a, {}, None).cold_start_ms is None
    assert driver.run(c, {}, None).cold_start_ms is None
    again_b = driver.run(b, {}, None)
    assert again_b.cold_start_ms is not None  # b started again (and a or c made room)
    pools = driver._pools._pools.values()
    assert sum(pool.count for pool in pools) == 2
    assert first_a.payload["instance"]


def test_a_nodejs_stem_cell_becomes_the_version(make_driver, deploy):
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    driver = make_driver(stem_cells=1)

    def node_deploy(code: str) -> Deployment:
        return deploy(code, language="nodejs")

    listing = ("const fs = require('fs');\n"
               "module.exports = () => ({ files: fs.readdirSync('/function'), cwd: process.cwd() });\n")
    driver.run(node_deploy(listing), {}, None)
    cells = ready_cells(driver)
    second = node_deploy(listing)
    out = driver.run(second, {}, None)
    assert out.error is None
    assert driver._pools._pools[second.id].idle[0].iid in cells
    assert out.payload == {"files": [second.handler], "cwd": "/function"}
    ready_cells(driver)
    with pytest.raises(BuildError, match="not a function"):
        driver.prepare(node_deploy("module.exports = 42;\n"))


def test_a_stem_cell_runs_in_cgroups_of_its_own_with_the_instances_limits(make_driver, deploy):
    driver = make_driver(stem_cells=1, max_processes=40, memory_limit_mb=200)
    if driver.cgroups is None:
        pytest.skip("this host gives no cgroups")
    driver.run(deploy(), {}, None)
    cells = ready_cells(driver)
    second = deploy()
    driver.run(second, {}, None)
    inst = driver._pools._pools[second.id].idle[0]
    assert inst.iid in cells and inst.cgroup is not None
    with open(os.path.join(inst.cgroup.paths["pids"], "pids.max")) as f:
        assert f.read().strip() == "40"
    with open(os.path.join(inst.cgroup.paths["pids"], "cgroup.procs")) as f:
        assert inst.proc.pid in {int(line) for line in f if line.strip()}
