#!/usr/bin/env python3
"""Run a kustomize overlay of Dispatch's Kubernetes manifests with ``podman kube play``.

Podman (4.3) runs Pods, Deployments (each replica a pod), PersistentVolumeClaims and
ConfigMaps; it takes Secrets only as podman secrets, holding a JSON object of base64
values; Services, StatefulSets, autoscalers, disruption budgets and network policies it
does not run. So ``up``:

1. renders the overlay (``kubectl kustomize DIR``, offline);
2. makes a podman secret of each Secret (replacing one of the same name);
3. plays what podman runs, and names what it left out;

and ``down`` stops and removes the pods, the secrets and the PVCs' volumes
(``--keep-volumes`` keeps them), even when ``up`` failed half-way.

``--only NAME,…`` plays just those Deployments (with the ConfigMaps and the PVCs they
use), and ``--suffix S`` appends ``-S`` to their names: together, how more workers join an
installation from another host (or the same one) without touching what already runs::

    python3 deploy/kube-play.py up OVERLAY --only dispatch-worker --suffix b
    python3 deploy/kube-play.py down OVERLAY --only dispatch-worker --suffix b

The rendered file is kept under ``--state-dir`` (default ``/run/dispatch-kube``) for
``down``; ``render`` prints it instead of playing it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys

import yaml

PLAYED_KINDS = ("ConfigMap", "PersistentVolumeClaim", "Deployment", "Pod")
DEFAULT_STATE_DIR = "/run/dispatch-kube"


def render(directory: str) -> list[dict]:
    """The overlay's documents, as ``kubectl kustomize`` renders them."""
    done = subprocess.run(["kubectl", "kustomize", directory], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"kubectl kustomize {directory} failed: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def select(docs: list[dict], only: list[str], suffix: str) -> tuple[list[dict], list[dict], list[str]]:
    """``(played documents, secrets, names of documents left out)``."""
    played, secrets, left_out = [], [], []
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind == "Secret":
            secrets.append(doc)
        elif kind in PLAYED_KINDS:
            played.append(doc)
        else:
            left_out.append(f"{kind}/{name}")
    if only:
        workloads = [d for d in played if d["kind"] in ("Deployment", "Pod")
                     and d["metadata"]["name"] in only]
        missing = set(only) - {d["metadata"]["name"] for d in workloads}
        if missing:
            raise SystemExit(f"no Deployment or Pod named {', '.join(sorted(missing))} in the overlay")
        claims = {v["persistentVolumeClaim"]["claimName"] for d in workloads
                  for v in _pod_spec(d).get("volumes") or [] if "persistentVolumeClaim" in v}
        played = [d for d in played if d["kind"] == "ConfigMap"
                  or (d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] in claims)] + workloads
    if suffix:
        for doc in played:
            if doc["kind"] in ("Deployment", "Pod"):
                doc["metadata"]["name"] += f"-{suffix}"
    return played, secrets, left_out


def _pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"] if doc["kind"] == "Deployment" else doc["spec"]


def secret_payload(secret: dict) -> bytes:
    """A Secret as podman's kube play reads a podman secret: ``{key: base64(value)}``."""
    values = dict(secret.get("data") or {})
    for key, value in (secret.get("stringData") or {}).items():
        values[key] = base64.b64encode(str(value).encode()).decode()
    return json.dumps(values).encode()


def podman(*args: str, stdin: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["podman", *args], input=stdin, capture_output=True)
    if check and done.returncode != 0:
        raise SystemExit(f"podman {' '.join(args[:3])} failed: {done.stderr.decode().strip()}")
    return done


def state_file(state_dir: str, directory: str, only: list[str], suffix: str) -> str:
    key = hashlib.sha256(f"{os.path.abspath(directory)} {','.join(only)} {suffix}".encode()).hexdigest()[:16]
    return os.path.join(state_dir, f"{key}.yaml")


def up(directory: str, only: list[str], suffix: str, state_dir: str) -> None:
    played, secrets, left_out = select(render(directory), only, suffix)
    if left_out:
        print(f"[kube-play] podman does not run {', '.join(left_out)}: left out", file=sys.stderr)
    path = state_file(state_dir, directory, only, suffix)
    os.makedirs(state_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(played, f, sort_keys=False)
        f.write("---\n")
        yaml.safe_dump_all(secrets, f, sort_keys=False)  # for `down` to remove them
    for secret in secrets:
        name = secret["metadata"]["name"]
        podman("secret", "rm", name, check=False)
        podman("secret", "create", name, "-", stdin=secret_payload(secret))
    with open(path + ".play", "w", encoding="utf-8") as f:
        yaml.safe_dump_all(played, f, sort_keys=False)
    done = podman("kube", "play", path + ".play", check=False)
    if done.returncode != 0:
        raise SystemExit(f"podman kube play failed: {done.stderr.decode().strip()}")
    print(f"[kube-play] played {path} ({len(played)} documents)", file=sys.stderr)


def down(directory: str, only: list[str], suffix: str, state_dir: str, keep_volumes: bool) -> None:
    path = state_file(state_dir, directory, only, suffix)
    if os.path.exists(path + ".play"):
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        played = [d for d in docs if d["kind"] != "Secret"]
        secrets = [d for d in docs if d["kind"] == "Secret"]
    else:  # nothing recorded (up failed before writing it): what the overlay would play
        played, secrets, _ = select(render(directory), only, suffix)
        os.makedirs(state_dir, exist_ok=True)
        with open(path + ".play", "w", encoding="utf-8") as f:
            yaml.safe_dump_all(played, f, sort_keys=False)
    # `kube down` stops at the first pod it cannot find; remove each pod it names itself
    podman("kube", "down", path + ".play", check=False)
    for doc in played:
        if doc["kind"] == "Deployment":
            for i in range(doc["spec"].get("replicas", 1) or 1):
                podman("pod", "rm", "-f", f"{doc['metadata']['name']}-pod-{i}", check=False)
        elif doc["kind"] == "Pod":
            podman("pod", "rm", "-f", doc["metadata"]["name"], check=False)
    for secret in secrets:
        podman("secret", "rm", secret["metadata"]["name"], check=False)
    # podman keeps a ConfigMap volume as a named volume of the ConfigMap's name: removed,
    # so that the next `up` writes the ConfigMap's current contents
    volumes = {v["configMap"]["name"] for d in played if d["kind"] in ("Deployment", "Pod")
               for v in _pod_spec(d).get("volumes") or [] if "configMap" in v}
    if not keep_volumes:
        volumes |= {d["metadata"]["name"] for d in played if d["kind"] == "PersistentVolumeClaim"}
    for volume in sorted(volumes):
        podman("volume", "rm", "-f", volume, check=False)
    for leftover in (path, path + ".play"):
        if os.path.exists(leftover):
            os.unlink(leftover)
    print(f"[kube-play] down: {directory}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "down", "render"))
    parser.add_argument("directory", help="a kustomize directory (an overlay)")
    parser.add_argument("--only", default="", help="play only these Deployments (comma-separated)")
    parser.add_argument("--suffix", default="", help="append -SUFFIX to the played Deployments' names")
    parser.add_argument("--state-dir", default=DEFAULT_STATE_DIR)
    parser.add_argument("--keep-volumes", action="store_true", help="down: keep the PVCs' volumes")
    args = parser.parse_args(argv)
    only = [name for name in args.only.split(",") if name]
    if args.action == "render":
        played, secrets, _ = select(render(args.directory), only, args.suffix)
        yaml.safe_dump_all(played, sys.stdout, sort_keys=False)
    elif args.action == "up":
        up(args.directory, only, args.suffix, args.state_dir)
    else:
        down(args.directory, only, args.suffix, args.state_dir, args.keep_volumes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
