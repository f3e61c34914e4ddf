"""Fixtures of the deploy suite: the rendered kustomizations, the KServe InferenceService, and the service's image
built and run in Docker as each manifest's container.

Where kubectl, kubernetes-validate or a Docker engine is missing the tests that need it skip, saying what to
install; in CI (CI=true) tests/conftest.py turns every skip into a failure.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy.containers import Container, build_image, started
from tests.deploy.manifests import (
    INFERENCE_SERVICE,
    KUSTOMIZATIONS,
    Manifest,
    load,
    one,
    pod_spec,
    predictor_pod,
    probes,
    render,
)


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Manifest]]:
    """Every kustomization in deploy/kubernetes, rendered by `kubectl kustomize`, by name."""
    return {name: render(folder) for name, folder in KUSTOMIZATIONS.items()}


@pytest.fixture(scope="session")
def deployment(rendered: dict[str, list[Manifest]]) -> Manifest:
    """The base's Deployment, as kustomize renders it (the image name set by `images:`)."""
    return one(rendered["base"], "Deployment")


@pytest.fixture(scope="session")
def inference_service() -> Manifest:
    return load(INFERENCE_SERVICE)


@pytest.fixture(scope="session")
def kserve_pod(inference_service: Manifest) -> Manifest:
    """The Pod the InferenceService's custom predictor describes."""
    return predictor_pod(inference_service)


@pytest.fixture(scope="session")
def validator() -> object:
    """kubernetes_validate, the module (its validate(data, version, strict))."""
    return pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (the dev extra)")


@pytest.fixture(scope="session")
def image() -> str:
    """The service image, built from this checkout's Dockerfile."""
    return build_image()


def _run_as_pod(image: str, pod: Manifest) -> Iterator[Container]:
    (container,) = pod_spec(pod)["containers"]
    http = probes(container)
    first = http.get("startupProbe", http["readinessProbe"])  # what holds the pod back until it has started
    with started(image, pod_spec(pod), container, first["path"]) as running:
        yield running


@pytest.fixture(scope="module")
def deployment_container(image: str, deployment: Manifest) -> Iterator[Container]:
    """The image run as the Deployment's container; yielded once its startup probe's path answers 200."""
    yield from _run_as_pod(image, deployment)


@pytest.fixture(scope="module")
def kserve_container(image: str, kserve_pod: Manifest) -> Iterator[Container]:
    """The image run as the InferenceService's kserve-container; yielded once its readiness path answers 200."""
    yield from _run_as_pod(image, kserve_pod)
