"""The Kubernetes manifests: every rendered document of the base and of each overlay
validates against the Kubernetes 1.32 schemas (``kubernetes-validate``, strict: unknown
fields are errors), and the base holds what an operator needs."""

from __future__ import annotations

import glob
import importlib.util
import os
import subprocess

import kubernetes_validate
import pytest
import yaml

from .conftest import KUSTOMIZE, ROOT

K8S_VERSION = "1.32"
DIRECTORIES = ["base"] + sorted(os.path.relpath(os.path.dirname(p), KUSTOMIZE) for p in
                                glob.glob(os.path.join(KUSTOMIZE, "overlays", "*", "kustomization.yaml")))
PROCESSES = ("dispatch-api", "dispatch-worker", "dispatch-scheduler", "dispatch-gateway")


def render(directory: str) -> list[dict]:
    done = subprocess.run(["kubectl", "kustomize", os.path.join(KUSTOMIZE, directory)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return render("base")


def test_there_is_a_podman_overlay():
    assert "overlays/podman" in DIRECTORIES


@pytest.mark.parametrize("directory", DIRECTORIES)
def test_every_rendered_document_validates_against_the_kubernetes_schemas(directory):
    docs = render(directory)
    assert docs
    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {str(exc).splitlines()[0]}")
    assert not problems, problems


def test_a_broken_document_fails_the_validation():
    """The check is not vacuous: a misspelt field is refused."""
    doc = by_kind(render("base"), "Deployment")["redis"]
    doc["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="resource"):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_each_process_is_a_deployment_of_the_image_with_probes_and_resources(base):
    deployments = by_kind(base, "Deployment")
    for name in PROCESSES:
        pod = deployments[name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"].endswith("/dispatch/dispatch:" + _version()), name
        assert container["args"] == [name.removeprefix("dispatch-")]
        assert container["livenessProbe"] and container["readinessProbe"], name
        assert set(container["resources"]) == {"requests", "limits"}, name
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        env = {e["name"] for e in container["env"]}
        assert "DISPATCH_SECRET_KEY" in env


def test_api_and_gateway_have_services_and_are_the_only_ones_let_in(base):
    assert {"dispatch-api", "dispatch-gateway"} <= set(by_kind(base, "Service"))
    policies = by_kind(base, "NetworkPolicy")
    public = policies["dispatch-public"]["spec"]
    (expression,) = public["podSelector"]["matchExpressions"]
    assert sorted(expression["values"]) == ["dispatch-api", "dispatch-gateway"]
    internal = policies["dispatch-internal"]["spec"]
    assert internal["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "dispatch"}}}]}]


def test_etcd_is_a_three_member_statefulset_and_workers_autoscale(base):
    etcd = by_kind(base, "StatefulSet")["etcd"]
    assert etcd["spec"]["replicas"] == 3
    assert "--initial-cluster=etcd-0=http://etcd-0.etcd:2380,etcd-1=http://etcd-1.etcd:2380,etcd-2=http://etcd-2.etcd:2380" \
        in etcd["spec"]["template"]["spec"]["containers"][0]["command"]
    hpa = by_kind(base, "HorizontalPodAutoscaler")["dispatch-worker"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "dispatch-worker"
    assert set(by_kind(base, "PodDisruptionBudget")) >= {*PROCESSES, "etcd"}
    assert {"redis", "registry"} <= set(by_kind(base, "Deployment"))
    assert set(by_kind(base, "ConfigMap")) >= {"dispatch-config"}
    assert set(by_kind(base, "Secret")) == {"dispatch-secrets"}


def test_the_podman_overlay_leaves_out_only_what_podman_cannot_run():
    spec = importlib.util.spec_from_file_location("kube_play", os.path.join(ROOT, "deploy", "kube-play.py"))
    kube_play = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kube_play)
    played, secrets, left_out = kube_play.select(render("overlays/podman"), [], "")
    assert [s["metadata"]["name"] for s in secrets] == ["dispatch-secrets"]
    assert {kind.split("/")[0] for kind in left_out} == {
        "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"}
    deployments = by_kind(played, "Deployment")
    assert set(deployments) == {*PROCESSES, "etcd", "redis", "registry"}
    assert all(d["spec"]["template"]["spec"]["hostNetwork"] for d in deployments.values())
    # a second worker from the same overlay, as on another host
    played, _, _ = kube_play.select(render("overlays/podman"), ["dispatch-worker"], "b")
    assert [d["metadata"]["name"] for d in played if d["kind"] == "Deployment"] == ["dispatch-worker-b"]


def _version() -> str:
    import re

    return re.search(r'version="([^"]+)"', open(os.path.join(ROOT, "setup.py")).read()).group(1)
