"""Prometheus metrics in a registry of the app's own, and a pure-ASGI middleware that times requests."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "<unmatched>"  # every path no route matched shares one label: bounded cardinality
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
QUEUE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """The service's metrics; one instance (and registry) per app, so tests can build many apps."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.in_flight = 0  # HTTP requests in the server now (MetricsMiddleware counts them)
        Gauge(
            "mnist_http_requests_in_flight",
            "HTTP requests being served now (this one, a scrape, included).",
            registry=self.registry,
        ).set_function(lambda: self.in_flight)
        self.requests = Counter(
            "mnist_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mnist_http_request_duration_seconds",
            "Time from request start to the end of the response, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "mnist_inference_batch_size",
            "Images per onnxruntime run, by model and version (each version batches on its own).",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_time = Histogram(
            "mnist_inference_queue_seconds",
            "Time a request's images waited for their model run to start (micro-batching), by model and version.",
            ["model", "version"],
            buckets=QUEUE_BUCKETS,
            registry=self.registry,
        )
        self.inferences = Counter(
            "mnist_inference_requests",
            "Requests (a batch request counts once) whose images a model version ran, by model and version.",
            ["model", "version"],
            registry=self.registry,
        )
        # (method, route, status) -> (counter, histogram) children; bounded like the labels themselves
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.model_info = Gauge(
            "mnist_model_info",
            "Each model version served (value 1), identified by its labels.",
            ["name", "version", "sha256"],
            registry=self.registry,
        )

        self.loads = Counter(
            "mnist_model_loads",
            "Model version loads (start-up, control endpoints, SIGHUP, poll), by model and outcome (success, failure).",
            ["model", "outcome"],
            registry=self.registry,
        )
        self.unloads = Counter(
            "mnist_model_unloads",
            "Model versions stopped and released after their last request, by model and outcome.",
            ["model", "outcome"],
            registry=self.registry,
        )
        self.load_duration = Histogram(
            "mnist_model_load_duration_seconds",
            "Time to read, verify, warm up and start one model version, by model (failures too).",
            ["model"],
            buckets=LOAD_BUCKETS,
            registry=self.registry,
        )

    def loaded(self, model: str, outcome: str, seconds: float) -> None:
        """Count one load of a version of the model and how long it took."""
        self.loads.labels(model, outcome).inc()
        self.load_duration.labels(model).observe(seconds)

    def unloaded(self, model: str, outcome: str) -> None:
        """Count one version stopped and released."""
        self.unloads.labels(model, outcome).inc()

    def forget_model(self, name: str, version: str, sha256: str) -> None:
        """A version no longer served leaves mnist_model_info (its request counts stay: counters never go back)."""
        with suppress(KeyError):
            self.model_info.remove(name, version, sha256)

    def alone(self) -> bool:
        """True while at most one HTTP request is in the server (the caller's own)."""
        return self.in_flight <= 1

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and record how long it took."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:  # NOTE: .labels() costs a lock and a tuple of label values on every call
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def for_model(self, name: str, version: str, sha256: str) -> ModelMetrics:
        """Publish a served model version's identity; the observers its micro-batcher and predictor call."""
        self.model_info.labels(name, version, sha256).set(1)
        return ModelMetrics(
            batch_size=self.batch_size.labels(name, version).observe,
            queued=self.queue_time.labels(name, version).observe,
            request=self.inferences.labels(name, version).inc,
        )

    def render(self) -> bytes:
        """Everything in the Prometheus text exposition format."""
        return generate_latest(self.registry)


@dataclass(frozen=True, slots=True)
class ModelMetrics:
    """One model version's observers, bound to its labels once (a .labels() lookup per run costs a lock)."""

    batch_size: Callable[[float], None]  # images in one onnxruntime run
    queued: Callable[[float], None]  # seconds a request waited for its run
    request: Callable[[], None]  # one request run by this version


class MetricsMiddleware:
    """Times every HTTP request and counts it by route template (e.g. /feature-maps/{layer}.png)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client sees if the app raises before it answers
        self.metrics.in_flight += 1  # NOTE: on the event loop only, so a plain int

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.in_flight -= 1
            # NOTE: the router writes the matched route into this same scope dict on its way down.
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
            self.metrics.observe_request(method, route, status, time.perf_counter() - start)
