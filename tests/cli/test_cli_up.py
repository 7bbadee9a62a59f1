"""``dispatch up`` on a machine without bubblewrap: it refuses to run functions unconfined
unless told to with ``DISPATCH_SANDBOX=off``, and says how to fix it. The bwrap lookup is
pointed at a missing binary (``DISPATCH_BWRAP``), as on a fresh machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli import config

ROOT = Path(__file__).resolve().parents[2]
MISSING = "/nonexistent/dispatch-test/bwrap"


@pytest.fixture
def served(monkeypatch):
    """What `dispatch up` would serve, instead of serving it."""
    calls = []
    monkeypatch.setattr("api.embedded.serve_embedded", lambda **kw: calls.append(kw))
    return calls


def test_up_refuses_to_run_functions_unconfined_without_bwrap(dispatch, served, monkeypatch,
                                                             tmp_path):
    monkeypatch.setenv("DISPATCH_BWRAP", MISSING)

    result = dispatch("up", "--home", tmp_path / "home", expect=1)

    assert "bubblewrap is not installed" in result.stderr and MISSING in result.stderr
    assert "apt-get install bubblewrap" in result.stderr
    assert "DISPATCH_SANDBOX=off dispatch up" in result.stderr
    assert served == []
    assert config.read_file(os.environ["DISPATCH_CONFIG"]) == {}  # nothing written either


@pytest.mark.parametrize("env", [{"DISPATCH_SANDBOX": "off"}, {"DISPATCH_SANDBOX": "OFF"},
                                 {"DISPATCH_DRIVER": "docker"}])
def test_up_runs_without_bwrap_when_told_so_or_when_functions_run_elsewhere(
        dispatch, served, monkeypatch, tmp_path, env):
    monkeypatch.setenv("DISPATCH_BWRAP", MISSING)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    result = dispatch("up", "--home", tmp_path / "home")

    assert len(served) == 1
    if "DISPATCH_SANDBOX" in env:
        assert "functions run unsandboxed" in result.stderr


def test_up_refuses_a_misspelt_sandbox_setting(dispatch, served, monkeypatch, tmp_path):
    monkeypatch.setenv("DISPATCH_SANDBOX", "of")
    result = dispatch("up", "--home", tmp_path / "home", expect=1)
    assert "DISPATCH_SANDBOX must be one of auto, on, off, not 'of'" in result.stderr
    assert served == []


def test_up_with_bwrap_installed_starts(dispatch, served, tmp_path):
    if subprocess.run(["sh", "-c", "command -v bwrap"], capture_output=True).returncode:
        pytest.fail("bwrap is not installed: run deploy/dev-services.sh", pytrace=False)
    dispatch("up", "--home", tmp_path / "home")
    assert len(served) == 1


def test_the_real_command_exits_at_once_with_the_fix(isolated_env, tmp_path):
    env = {**os.environ, "DISPATCH_BWRAP": MISSING, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "cli.main", "up", "--port", "1",
                           "--home", str(tmp_path / "home")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "apt-get install bubblewrap" in done.stderr
