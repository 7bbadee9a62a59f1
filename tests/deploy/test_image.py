"""Dispatch's container image (deploy/Containerfile through deploy/build-image.py): the
version label, a non-root user, no compilers, the runtimes, one image for every process
chosen by its command, and a rebuild that is a no-op while the sources are unchanged."""

from __future__ import annotations

import re
import subprocess

from .conftest import ROOT, build_images


def podman(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120)


def test_the_image_is_labelled_with_the_package_version_and_runs_as_a_user(dispatch_image):
    version = re.search(r'version="([^"]+)"', open(f"{ROOT}/setup.py").read()).group(1)
    assert dispatch_image.endswith(f"/dispatch/dispatch:{version}")
    done = podman("image", "inspect", dispatch_image, "--format",
                  '{{index .Config.Labels "org.opencontainers.image.version"}} {{.Config.User}}')
    assert done.stdout.split() == [version, "10001:10001"]


def test_the_image_has_the_runtimes_and_no_compilers(dispatch_image):
    script = ("id -u; node --version; python3 -c 'import engine, api, tasks, cli; print(\"package\")'; "
              "for c in gcc cc g++ make; do command -v $c && echo COMPILER $c; done; true")
    done = podman("run", "--rm", "--entrypoint", "/bin/sh", dispatch_image, "-c", script)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert lines[0] == "10001"
    assert lines[1].startswith("v")
    assert "package" in lines
    assert "COMPILER" not in lines


def test_the_command_picks_a_procfile_process_and_names_the_choices(dispatch_image):
    procfile = dict(line.split(":", 1) for line in open(f"{ROOT}/Procfile") if re.match(r"[a-z]+:", line))
    assert set(procfile) == {"api", "worker", "scheduler", "gateway"}
    done = podman("run", "--rm", dispatch_image, "wrker")
    assert done.returncode == 64
    assert "no process or command named 'wrker'" in done.stderr
    assert "api worker scheduler gateway" in done.stderr
    # any other command runs as given
    done = podman("run", "--rm", dispatch_image, "dispatch", "--help")
    assert done.returncode == 0 and "Usage: dispatch" in done.stdout


def test_the_worker_probe_names_an_unreachable_store_and_broker(dispatch_image):
    """``tasks.probe``, the worker's and scheduler's exec probe, fails naming both."""
    done = podman("run", "--rm", "--network", "none", "-e", "DISPATCH_STORE=etcd://127.0.0.1:1",
                  "-e", "DISPATCH_BROKER=redis://127.0.0.1:1/0", dispatch_image,
                  "python3", "-m", "tasks.probe", "--timeout", "2")
    assert done.returncode == 1
    assert "store etcd://127.0.0.1:1 unavailable" in done.stderr
    assert "broker redis://127.0.0.1:1/0 unavailable" in done.stderr


def test_building_again_with_unchanged_sources_builds_nothing(dispatch_image):
    done = build_images("--no-push")
    assert done.returncode == 0, done.stderr
    assert "is up to date" in done.stderr
