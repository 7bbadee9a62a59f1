"""Dispatch's Kubernetes manifests run for real: the podman overlay (with generated keys
in an overlay of it, as an operator would give them) played with ``podman kube play``
through deploy/kube-play.py, a second worker joined as from another host, then driven
with the CLI: a function created and run, an event that triggers a subscription, a
gateway route; both worker pods took runs. Everything is torn down, even on failure.

The overlay's ports (18080 api, 18081 gateway, 23790 etcd, 16379 Redis, 15000 registry,
all on 127.0.0.1) are its own: no other test uses them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .conftest import KUSTOMIZE, ROOT

OVERLAY = os.path.join(KUSTOMIZE, "overlays", "podman")
API, GATEWAY = "127.0.0.1:18080", "127.0.0.1:18081"
PORTS = (18080, 18081, 23790, 23800, 16379, 15000)
KUBE_PLAY = os.path.join(ROOT, "deploy", "kube-play.py")
SECOND_WORKER = ("--only", "dispatch-worker", "--suffix", "b")
WORKERS = ("dispatch-worker-pod-0-worker", "dispatch-worker-b-pod-0-worker")
PODS = [f"{name}-pod-0" for name in ("dispatch-api", "dispatch-gateway", "dispatch-worker", "dispatch-worker-b",
                                     "dispatch-scheduler", "etcd", "redis", "registry")]

pytestmark = pytest.mark.timeout(900)


def kube_play(*args: str, state_dir: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, KUBE_PLAY, *args, "--state-dir", state_dir],
                          capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def write_overlay(directory: str) -> None:
    """An overlay of the podman overlay giving the Secret's values from files."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = {
        "admin.pem": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()),
        "DISPATCH_BOOTSTRAP_PUBLIC_KEY": key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "DISPATCH_SECRET_KEY": Fernet.generate_key(),
        "DISPATCH_SESSION_SECRET": os.urandom(24).hex().encode(),
        "DISPATCH_OIDC_CLIENT": b"",
    }
    for name, data in files.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
    os.chmod(os.path.join(directory, "admin.pem"), 0o600)
    with open(os.path.join(directory, "kustomization.yaml"), "w") as f:
        f.write(f"""apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - {os.path.relpath(OVERLAY, directory)}
secretGenerator:
  - name: dispatch-secrets
    behavior: replace
    options: {{disableNameSuffixHash: true}}
    files: [{", ".join(n for n in files if n.startswith("DISPATCH_"))}]
""")


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(what: str, check, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    pytest.fail(f"{what} not up within {timeout:g} s ({last})")


def ready() -> bool:
    """The api's readiness, as the manifests' probe asks it: live is not enough, as the
    api answers /healthz before etcd's pod is reachable (its startup retries meanwhile)."""
    with urllib.request.urlopen(f"http://{API}/readyz", timeout=5) as response:
        return response.status == 200


def logs(container: str) -> str:
    done = subprocess.run(["podman", "logs", container], capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def deployment(dispatch_image, tmp_path_factory):
    """The overlay played (plus a second worker), torn down afterwards whatever happened."""
    overlay = str(tmp_path_factory.mktemp("overlay"))
    state = str(tmp_path_factory.mktemp("state"))
    write_overlay(overlay)
    taken = [p for p in PORTS if port_taken(p)]
    if taken:
        pytest.fail(f"ports {taken} on 127.0.0.1 are in use: the podman overlay needs them "
                    "(a previous run left pods? `podman pod ps`)", pytrace=False)
    try:
        kube_play("up", overlay, state_dir=state)
        kube_play("up", overlay, *SECOND_WORKER, state_dir=state)
        wait_for("the api's readiness", ready, timeout=300)  # image pulls and starts on a loaded machine
        yield overlay
    finally:
        # the processes' logs, for a failure's diagnosis, before they go
        for container in (*WORKERS, "dispatch-api-pod-0-api", "dispatch-gateway-pod-0-gateway", "etcd-pod-0-etcd"):
            print(f"--- {container}\n{logs(container)[-3000:]}")
        kube_play("down", overlay, *SECOND_WORKER, state_dir=state, check=False)
        kube_play("down", overlay, state_dir=state, check=False)
        left = subprocess.run(["podman", "pod", "ps", "--format", "{{.Name}}"], capture_output=True, text=True)
        assert not set(left.stdout.split()) & set(PODS), left.stdout


class Cli:
    """Runs ``dispatch ARGS`` in ``cwd`` with ``env``; its output, or the test fails."""

    def __init__(self, env: dict[str, str], cwd: str):
        self.env, self.cwd = env, cwd

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cli.main", *args]

    def __call__(self, *args: str) -> str:
        done = subprocess.run(self.command(*args), cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"dispatch {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout


@pytest.fixture(scope="module")
def cli(deployment, tmp_path_factory):
    """``dispatch`` with a context of its own, logged in as the bootstrapped admin."""
    env = dict(os.environ, DISPATCH_CONFIG=str(tmp_path_factory.mktemp("cli") / "config.json"),
               PYTHONPATH=ROOT)
    for name in ("DISPATCH_HOST", "DISPATCH_PORT", "DISPATCH_SCHEME", "DISPATCH_ORGANIZATION", "DISPATCH_TOKEN"):
        env.pop(name, None)

    run = Cli(env, deployment)
    host, port = API.split(":")
    run("--host", host, "--port", port, "--scheme", "http",
        "login", "--service-account", "admin", "--jwt-private-key", "admin.pem")
    with open(os.path.join(deployment, "hello.py"), "w") as f:
        f.write("def handle(ctx, payload):\n"
                "    return {'hello': payload.get('name', 'world'), 'event': (ctx.get('event') or {}).get('eventType')}\n")
    return run


def test_a_function_runs_on_the_played_deployment(cli):
    cli("create", "function", "hello", "hello.py", "--image", "python3", "--wait")
    run = json.loads(cli("exec", "hello", "--input", '{"name": "pod"}', "--wait"))
    assert run["status"] == "READY", run
    assert run["output"]["hello"] == "pod"


def test_an_event_triggers_a_subscription(cli):
    cli("create", "subscription", "hello", "--event-type", "user.created", "--name", "on-user")
    wait_for("the subscription", lambda: json.loads(cli("get", "subscriptions", "on-user", "-o", "json"))
             .get("status") == "READY", timeout=180)
    cli("emit", "user.created", "--data", '{"name": "evt"}')

    def delivered() -> bool:
        runs = json.loads(cli("get", "runs", "hello", "-o", "json"))
        return any(r.get("status") == "READY" and (r.get("output") or {}).get("event") == "user.created"
                   for r in runs)
    wait_for("the event's run", delivered, timeout=180)


def test_a_gateway_route_runs_the_function(cli):
    cli("create", "api", "hello-api", "hello", "-m", "POST", "-p", "/hello")

    def answered() -> bool:
        request = urllib.request.Request(f"http://{GATEWAY}/default/hello", data=b'{"name": "gw"}', method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)["hello"] == "gw"
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # the gateway's route table has not seen the API yet
                return False
            raise
    wait_for("the gateway route", answered, timeout=180)


def test_both_worker_pods_take_runs(cli):
    """Runs started until each worker pod has logged at least one (jobs go to whichever
    worker takes them first, so which worker takes which is not fixed)."""
    def taken(container: str) -> int:
        return logs(container).count("run.ready")

    for _ in range(10):
        procs = [subprocess.Popen(cli.command("exec", "hello", "--input", '{"name": "x"}'),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cli.cwd, env=cli.env)
                 for _ in range(8)]
        for proc in procs:
            assert proc.wait(timeout=120) == 0
        time.sleep(1)
        if all(taken(c) for c in WORKERS):
            break
    assert all(taken(c) for c in WORKERS), {c: taken(c) for c in WORKERS}


def test_a_function_cannot_read_the_workers_environment(cli):
    """Functions run unconfined in the worker's pod, but every Python process of the image
    is non-dumpable: the worker's environment (its secret key) stays out of reach."""
    with open(os.path.join(cli.cwd, "peek.py"), "w") as f:
        f.write("import os\n"
                "def handle(ctx, payload):\n"
                "    seen = {}\n"
                "    for pid in sorted({1, os.getppid()}):\n"
                "        try:\n"
                "            seen[str(pid)] = 'DISPATCH_SECRET_KEY' in open(f'/proc/{pid}/environ').read()\n"
                "        except OSError as exc:\n"
                "            seen[str(pid)] = type(exc).__name__\n"
                "    return seen\n")
    cli("create", "function", "peek", "peek.py", "--image", "python3", "--wait")
    run = json.loads(cli("exec", "peek", "--wait"))
    assert run["status"] == "READY", run
    assert len(run["output"]) == 2 and set(run["output"].values()) == {"PermissionError"}, run["output"]


def test_the_worker_probe_is_ready(deployment):
    done = subprocess.run(["podman", "exec", WORKERS[1], "python3", "-m", "tasks.probe"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "ready"), done.stderr


@pytest.mark.parametrize("port, role", [(9191, "worker"), (9192, "scheduler")])
def test_the_worker_and_scheduler_answer_their_readiness_probes(deployment, port, role):
    """What the manifests' HTTP probes ask (the overlay's host network puts the health
    ports of the base's pods on this host)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
                report = json.load(response)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert report["ready"] is True and report["role"] == role, report

