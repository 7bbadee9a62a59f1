"""Fixtures of the deployment tests: Dispatch's image, built once per session."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KUSTOMIZE = os.path.join(ROOT, "deploy", "kubernetes")


def build_images(*args: str) -> subprocess.CompletedProcess:
    """``deploy/build-image.py ARGS`` (a no-op when the sources did not change)."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "deploy", "build-image.py"), *args],
                          capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="session")
def dispatch_image(docker_host: str, base_images: dict[str, str]) -> str:
    """The reference of Dispatch's image, built (or found up to date) and pushed."""
    done = build_images("--infra")
    if done.returncode != 0:
        pytest.fail(f"deploy/build-image.py failed:\n{done.stderr[-3000:]}", pytrace=False)
    return done.stdout.split()[0]
