"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

#: set to host:port to run the etcd tests against an etcd you started yourself
ETCD_ENV = "DISPATCH_TEST_ETCD"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(client_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{client_url}/health", timeout=0.5) as response:
            return b'"true"' in response.read()
    except OSError:
        return False


@pytest.fixture(scope="session")
def etcd_endpoint(tmp_path_factory: pytest.TempPathFactory):
    """``host:port`` of a private, single-node etcd, started once for the session."""
    if os.environ.get(ETCD_ENV):
        yield os.environ[ETCD_ENV]
        return
    binary = shutil.which("etcd")
    if binary is None:
        pytest.fail(
            "etcd is not installed: run deploy/dev-services.sh (or apt-get install "
            f"etcd-server), or set {ETCD_ENV}=host:port to use a running etcd",
            pytrace=False,
        )
    client_port, peer_port = _free_port(), _free_port()
    client_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    data_dir = tmp_path_factory.mktemp("etcd")
    log = open(data_dir / "etcd.log", "wb")
    process = subprocess.Popen(
        [
            binary, "--name", "test", "--data-dir", str(data_dir / "data"),
            "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"test={peer_url}",
            # short raft timers bring etcd's minimum lease TTL down from 2 s to 1 s,
            # which keeps the lock-expiry tests short
            "--heartbeat-interval", "10", "--election-timeout", "100",
            "--log-level", "warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while not _healthy(client_url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"etcd did not become healthy; see {data_dir / 'etcd.log'}", pytrace=False
                )
            time.sleep(0.05)
        yield f"127.0.0.1:{client_port}"
    finally:
        process.kill()
        process.wait()
        log.close()


# -- containers: podman's Docker Engine API, the registry, the base images -------------

#: what deploy/container-services.sh starts; override with the usual variables
DOCKER_HOST_DEFAULT = "unix:///run/podman/podman.sock"
REGISTRY_DEFAULT = "127.0.0.1:5000"
_CONTAINERS_HINT = ("run the tests with `make test`, which first sets up podman's Docker API service, the "
                    "registry on 127.0.0.1:5000 and the base images, or set them up with "
                    "`bash deploy/container-services.sh`")


@pytest.fixture(scope="session")
def docker_host() -> str:
    """The Docker Engine API the docker builder and driver use (``$DOCKER_HOST``, else
    podman's socket); the tests fail, not skip, when it does not answer."""
    import docker

    url = os.environ.get("DOCKER_HOST") or DOCKER_HOST_DEFAULT
    try:
        client = docker.DockerClient(base_url=url, version="1.41", timeout=5)
        client.ping()
        client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means the same: not set up
        pytest.fail(f"the Docker Engine API at {url} does not answer ({exc}): {_CONTAINERS_HINT}", pytrace=False)
    return url


@pytest.fixture(scope="session")
def registry() -> str:
    """``host:port`` of the image registry (``$DISPATCH_REGISTRY``, else 127.0.0.1:5000)."""
    host = os.environ.get("DISPATCH_REGISTRY") or REGISTRY_DEFAULT
    try:
        with urllib.request.urlopen(f"http://{host}/v2/", timeout=5):
            pass
    except OSError as exc:
        pytest.fail(f"the registry at {host} does not answer ({exc}): {_CONTAINERS_HINT}", pytrace=False)
    return host


@pytest.fixture(scope="session")
def base_images(docker_host: str, registry: str) -> dict[str, str]:
    """The base image reference of each language, checked to be in the registry."""
    refs = {}
    for language in ("python3", "nodejs"):
        repo = f"dispatch/{language}-base"
        request = urllib.request.Request(f"http://{registry}/v2/{repo}/manifests/latest", method="HEAD", headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
                      "application/vnd.docker.distribution.manifest.v2+json"})
        try:
            with urllib.request.urlopen(request, timeout=5):
                pass
        except OSError as exc:
            pytest.fail(f"the base image {registry}/{repo}:latest is not in the registry ({exc}): {_CONTAINERS_HINT}",
                        pytrace=False)
        refs[language] = f"{registry}/{repo}:latest"
    return refs
