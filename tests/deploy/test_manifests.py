"""deploy/: the kustomizations render, every object matches the Kubernetes schemas, and the probes, ports,
environment and paths in the manifests are what the service's image really serves (run in Docker as each manifest's
container). No cluster runs here: what a kubelet, Knative or prometheus-adapter would do is not tested.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from bench.load import DIGIT_PNG
from service.config import Settings
from service.metrics import Metrics
from tests.deploy.containers import Container, image_user
from tests.deploy.manifests import (
    KUSTOMIZATIONS,
    SCHEMA_VERSIONS,
    Manifest,
    adapter_metric_names,
    adapter_series,
    container_port,
    one,
    plain_env,
    pod_spec,
    probes,
)
from tests.reliability.payloads import big_seven

SERVICE_KINDS = {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
# What KServe asks of a V2 predictor besides its probes (the Open Inference Protocol's REST paths).
V2_PATHS = ["/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/mnist_cnn", "/v2/models/mnist_cnn/ready"]
# Each manifest's pod by the name of the fixture that holds it, and its running container's.
PODS = {"deployment": "deployment_container", "kserve_pod": "kserve_container"}


def only_container(pod: Manifest) -> Manifest:
    (container,) = pod_spec(pod)["containers"]
    return container


@pytest.fixture(params=sorted(PODS))
def pod(request: pytest.FixtureRequest) -> Manifest:
    """Each manifest's pod: the Deployment's template and the InferenceService's predictor."""
    return request.getfixturevalue(request.param)


# ---- rendering and schemas -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_kustomization_renders_the_service_objects(rendered: dict[str, list[Manifest]], name: str) -> None:
    assert {item["kind"] for item in rendered[name]} == SERVICE_KINDS


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_rendered_objects_match_the_kubernetes_schemas(
    rendered: dict[str, list[Manifest]], validator: Any, name: str, version: str
) -> None:
    for item in rendered[name]:
        validator.validate(item, version, strict=True)  # raises on an unknown field, a wrong type, a missing one


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_kserve_predictor_pod_matches_the_kubernetes_schemas(
    kserve_pod: Manifest, validator: Any, version: str
) -> None:
    # The InferenceService CRD has no schema here; its custom predictor inlines a core/v1 PodSpec, validated as one.
    validator.validate(kserve_pod, version, strict=True)


def test_schema_validation_rejects_an_unknown_field(deployment: Manifest, validator: Any) -> None:
    broken = copy.deepcopy(deployment)
    only_container(broken)["livenessprobe"] = only_container(broken).pop("livenessProbe")  # a typo's casing
    with pytest.raises(validator.ValidationError):
        validator.validate(broken, SCHEMA_VERSIONS[0], strict=True)


# ---- the manifests against the service's settings and each other ----------------------------------------------


def test_environment_names_are_service_settings(pod: Manifest) -> None:
    names = [entry["name"] for entry in only_container(pod)["env"] if entry["name"].startswith("MNIST_")]
    unknown = [name for name in names if name.removeprefix("MNIST_").lower() not in Settings.model_fields]
    assert not unknown, f"not settings of service/config.py (the service would ignore them): {unknown}"


def test_mnist_port_is_the_only_container_port(pod: Manifest) -> None:
    container = only_container(pod)
    env = {name.removeprefix("MNIST_").lower(): value for name, value in plain_env(container).items()}
    # model_validate reads no environment: these values alone, each checked as the service would check it
    settings = Settings.model_validate({name: value for name, value in env.items() if name in Settings.model_fields})
    assert [entry["containerPort"] for entry in container["ports"]] == [settings.port]


def test_probes_ask_the_container_port(pod: Manifest) -> None:
    container = only_container(pod)
    (port,) = [entry["containerPort"] for entry in container["ports"]]
    assert {container_port(container, probe["port"]) for probe in probes(container).values()} == {port}


def test_containers_are_locked_down(pod: Manifest) -> None:
    context = pod_spec(pod).get("securityContext", {}) | only_container(pod)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {mount["mountPath"] for mount in only_container(pod)["volumeMounts"]}
    assert "/tmp" in mounts  # a writable /tmp on the read-only root, as compose's tmpfs


def test_image_is_the_placeholder_kustomize_sets(pod: Manifest) -> None:
    assert only_container(pod)["image"] == "mnist-service:latest"


def test_termination_grace_outlasts_the_prestop_pause_and_graceful_shutdown(deployment: Manifest) -> None:
    container = only_container(deployment)
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    default = Settings.model_fields["shutdown_timeout"].default
    shutdown = int(plain_env(container).get("MNIST_SHUTDOWN_TIMEOUT", default))
    # 2 s spare: the lifespan's stop took well under 1 s in `docker stop` (docs/kubernetes.md)
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] >= pause + shutdown + 2


def test_service_and_budget_select_the_deployment_pods(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["base"]
    deployment, service = one(objects, "Deployment"), one(objects, "Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert container_port(only_container(deployment), port["targetPort"])  # names a port of the container


def test_autoscaler_owns_the_replica_count(rendered: dict[str, list[Manifest]]) -> None:
    deployment, autoscaler = one(rendered["base"], "Deployment"), one(rendered["base"], "HorizontalPodAutoscaler")
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"]  # else every `kubectl apply` resets what the autoscaler chose


def test_queue_time_autoscaler_asks_for_the_adapter_metric(rendered: dict[str, list[Manifest]]) -> None:
    metrics = one(rendered["queue-time"], "HorizontalPodAutoscaler")["spec"]["metrics"]
    pods = [metric["pods"]["metric"]["name"] for metric in metrics if metric["type"] == "Pods"]
    assert pods and set(pods) <= adapter_metric_names()


def test_adapter_rule_reads_series_the_service_exports() -> None:
    metrics = Metrics()
    metrics.for_model("mnist_cnn", "1", "0" * 64)  # a served version's series exist from its load on
    exported = {sample.name for family in metrics.registry.collect() for sample in family.samples}
    assert adapter_series() <= exported


def test_kserve_predictor_is_one_v2_container_on_one_port(inference_service: Manifest, kserve_pod: Manifest) -> None:
    container = only_container(kserve_pod)
    assert container["name"] == "kserve-container"
    assert len(container["ports"]) == 1  # Knative routes to exactly one
    env = plain_env(container)
    assert env["PROTOCOL"] == "v2"
    model = env.get("MNIST_DEFAULT_MODEL", Settings.model_fields["default_model"].default)
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v2/models/{model}/ready"
    assert inference_service["spec"]["predictor"]["scaleMetric"] in {"concurrency", "rps"}  # Knative's KPA metrics


# ---- the real image, run as each manifest's container ---------------------------------------------------------


def test_image_user_is_the_manifest_user(image: str, pod: Manifest) -> None:
    context = pod_spec(pod).get("securityContext", {}) | only_container(pod)["securityContext"]
    assert image_user(image) == (context["runAsUser"], context["runAsGroup"])


@pytest.mark.parametrize(
    ("pod_name", "kind"),
    [
        ("deployment", "startupProbe"),
        ("deployment", "readinessProbe"),
        ("deployment", "livenessProbe"),
        ("kserve_pod", "readinessProbe"),
        ("kserve_pod", "livenessProbe"),
    ],
)
def test_probe_path_answers_200(request: pytest.FixtureRequest, pod_name: str, kind: str) -> None:
    container = only_container(request.getfixturevalue(pod_name))
    running: Container = request.getfixturevalue(PODS[pod_name])
    probe = probes(container)[kind]
    # The one container port is what is published (a probe of another port would fail here, as in the pod).
    assert container_port(container, probe["port"]) == container["ports"][0]["containerPort"]
    assert httpx.get(running.url + probe["path"], timeout=5).status_code == 200


@pytest.mark.parametrize("path", V2_PATHS)
def test_kserve_v2_path_answers_200(kserve_container: Container, path: str) -> None:
    assert httpx.get(kserve_container.url + path, timeout=5).status_code == 200


def test_kserve_v2_infer_answers_probabilities(kserve_container: Container) -> None:
    pixels = np.asarray(Image.open(DIGIT_PNG).convert("L"), np.uint8)  # (28, 28), a 7
    request = {
        "inputs": [{"name": "image", "shape": [1, 784], "datatype": "UINT8", "data": pixels.ravel().tolist()}],
        "outputs": [{"name": "probabilities"}],
    }
    answer = httpx.post(kserve_container.url + "/v2/models/mnist_cnn/infer", json=request, timeout=10)
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]
    assert (output["name"], output["shape"]) == ("probabilities", [1, 10])
    assert int(np.argmax(output["data"])) == 7


def test_prometheus_annotations_point_at_the_adapter_series(
    deployment: Manifest, deployment_container: Container
) -> None:
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == only_container(deployment)["ports"][0]["containerPort"]
    answer = httpx.get(deployment_container.url + annotations["prometheus.io/path"], timeout=5)
    assert answer.status_code == 200
    exported = {line.split("{")[0].split(" ")[0] for line in answer.text.splitlines() if not line.startswith("#")}
    assert adapter_series() <= exported


def test_memory_limit_holds_a_burst_of_the_largest_images(deployment_container: Container) -> None:
    # Eight 4096x4096 16-bit PNGs at once (the largest the default limits let in) peaked at 606-634 MiB on
    # 2026-12-02, under the Deployment's 1 GiB limit, which the container runs under here.
    image = big_seven(4096, "I;16")
    with httpx.Client(base_url=deployment_container.url, timeout=120) as client, ThreadPoolExecutor(8) as pool:
        statuses = set(
            pool.map(lambda _: client.post("/predict", files={"file": ("big.png", image)}).status_code, range(8))
        )
    assert statuses == {200}
    assert deployment_container.running()
    assert deployment_container.inspect("{{.State.OOMKilled}}") == "false"
