"""The deploy/ manifests as data: kustomize renders, the objects in them, and what the service's container gets.

NOTE: nothing here talks to a cluster: `kubectl kustomize` renders offline, and kubernetes-validate checks objects
against the JSON schemas of Kubernetes' OpenAPI documents that it ships.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.paths import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
# Every kustomization a user is told to apply (docs/kubernetes.md), by the name the tests use.
KUSTOMIZATIONS = {
    "base": DEPLOY / "kubernetes",
    "queue-time": DEPLOY / "kubernetes" / "overlays" / "queue-time",
}
INFERENCE_SERVICE = DEPLOY / "kserve" / "inferenceservice.yaml"
ADAPTER_VALUES = DEPLOY / "kubernetes" / "components" / "queue-time-autoscaling" / "prometheus-adapter-values.yaml"
# The oldest Kubernetes the manifests target (lifecycle.preStop.sleep is on by default from 1.30) and the newest
# whose schemas kubernetes-validate ships.
SCHEMA_VERSIONS = ("1.30.0", "1.37.0")
# ComponentExtensionSpec (KServe's pkg/apis/serving/v1beta1/component.go): a predictor's fields besides the
# inlined core/v1 PodSpec of a custom predictor.
PREDICTOR_EXTENSION_FIELDS = frozenset(
    {
        "minReplicas",
        "maxReplicas",
        "scaleTarget",
        "scaleMetric",
        "containerConcurrency",
        "timeout",
        "canaryTrafficPercent",
        "logger",
        "batcher",
        "labels",
        "annotations",
        "deploymentStrategy",
    }
)
Manifest = dict[str, Any]


def kubectl() -> str:
    """The kubectl binary (its built-in kustomize renders), with the calling test skipped where there is none."""
    found = shutil.which("kubectl")
    if not found:
        pytest.skip("kubectl is not installed: its built-in kustomize renders deploy/kubernetes")
    return found


def render(kustomization: Path) -> list[Manifest]:
    """The objects `kubectl kustomize` makes of a kustomization folder."""
    result = subprocess.run([kubectl(), "kustomize", str(kustomization)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {kustomization} failed:\n{result.stderr}"
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def load(path: Path) -> Manifest:
    """The one object in a YAML file."""
    return yaml.safe_load(path.read_text())


def one(objects: list[Manifest], kind: str) -> Manifest:
    """The only object of a kind."""
    found = [item for item in objects if item["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def predictor_pod(inference_service: Manifest) -> Manifest:
    """The Pod a custom predictor describes: its fields minus KServe's own, as a core/v1 Pod."""
    predictor = inference_service["spec"]["predictor"]
    spec = {key: value for key, value in predictor.items() if key not in PREDICTOR_EXTENSION_FIELDS}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": dict(inference_service["metadata"]), "spec": spec}


def pod_spec(workload: Manifest) -> Manifest:
    """A Deployment's pod template spec, or the pod spec of a Pod."""
    return workload["spec"]["template"]["spec"] if workload["kind"] == "Deployment" else workload["spec"]


def plain_env(container: Manifest) -> dict[str, str]:
    """The container's environment given by value (entries from Secrets or fields left out)."""
    return {entry["name"]: entry["value"] for entry in container.get("env", []) if "value" in entry}


def container_port(container: Manifest, port: int | str) -> int:
    """A probe's port, by number or by the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    named = {entry["name"]: entry["containerPort"] for entry in container.get("ports", []) if "name" in entry}
    assert port in named, f"port {port!r} names none of the container's ports {sorted(named)}"
    return named[port]


def probes(container: Manifest) -> dict[str, Manifest]:
    """The container's HTTP probes by kind (startupProbe, readinessProbe, livenessProbe)."""
    kinds = ("startupProbe", "readinessProbe", "livenessProbe")
    return {kind: container[kind]["httpGet"] for kind in kinds if kind in container}


def adapter_series() -> set[str]:
    """The Prometheus metric names the prometheus-adapter rules read."""
    rules = load(ADAPTER_VALUES)["rules"]["custom"]
    text = " ".join(rule["seriesQuery"] + " " + rule["metricsQuery"] for rule in rules)
    return set(re.findall(r"\bmnist_[a-z_]+", text))


def adapter_metric_names() -> set[str]:
    """The names the prometheus-adapter rules publish in the custom metrics API."""
    return {rule["name"]["as"] for rule in load(ADAPTER_VALUES)["rules"]["custom"]}
