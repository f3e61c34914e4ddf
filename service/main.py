"""The app factory: `create_app(settings)`; `uvicorn service.main:create_app --factory` serves it."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings, get_settings
from service.control import ControlObservers, ModelControl
from service.errors import ModelLoadError
from service.handlers import install_error_handlers
from service.inference import InferenceEngine, Predictor
from service.logs import RequestIds
from service.metrics import Metrics, MetricsMiddleware
from service.repository import ModelRepository, ServedModel
from service.routes import docs, explain, feature_maps, health, metrics, model, predict, repository, v2, web
from service.routing import HotRoutes
from service.runtime import ModelRuntime
from service.security import install_api_keys
from service.v2 import OpenInference
from service.watch import watching

DESCRIPTION = """\
Reads handwritten digits with the MNIST convnets of a model repository (ONNX, onnxruntime) and shows
what each layer sees. Pick a model with `?model=<name>` (and `&version=<v>`; `GET /models` lists them).
Send an image as multipart field `file` (`files` for a batch) or as the raw body with
its image/* Content-Type. Every error is JSON `{"error": "..."}`.
"""


def build_model_control(settings: Settings, metrics: Metrics) -> ModelControl:
    """The repository (empty until started) and its control, building each version with its batcher and predictor."""

    def serve(runtime: ModelRuntime) -> ServedModel:
        # On a worker thread, for every version loaded (at start-up and later): build, warm up, publish.
        runtime.warm_up(settings.max_batch_size)
        observers = metrics.for_model(runtime.name, runtime.version, runtime.sha256)
        engine = InferenceEngine(
            runtime,
            max_batch_size=settings.max_batch_size,
            max_batch_delay_ms=settings.max_batch_delay_ms,
            on_batch=observers.batch_size,
            on_queued=observers.queued,
            on_request=observers.request,
            alone=metrics.alone,
        )
        return ServedModel(runtime, engine, Predictor(engine, max_pixels=settings.max_image_pixels))

    def forget(model: ServedModel) -> None:
        metrics.forget_model(model.name, model.version, model.identity["sha256"])

    repository = ModelRepository(settings.model_repository, settings.default_model)
    observers = ControlObservers(loaded=metrics.loaded, unloaded=metrics.unloaded, forget=forget)
    return ModelControl(repository, serve, observers, settings.intra_op_threads)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load and verify every model, start the micro-batchers and the repository's watchers; on shutdown, drain."""
    state, settings = app.state, app.state.settings
    control = build_model_control(settings, state.metrics)
    try:
        await control.start()
    except ModelLoadError as err:
        state.load_error = str(err)
        raise
    # NOTE: everything alive now (FastAPI, pydantic, onnxruntime, the models) lives as long as the process;
    # frozen, the collector stops re-scanning it, and full collections stop adding ~30 ms to p99 latency.
    gc.collect()
    gc.freeze()
    try:
        async with watching(control, settings.model_control, settings.repository_poll_s):
            state.repository, state.model_control = control.repository, control
            state.open_inference = OpenInference(
                control.repository, max_batch=settings.max_batch_files, max_bytes=settings.max_batch_upload_bytes
            )
            yield
    finally:
        state.repository = state.open_inference = state.model_control = None
        await control.close()


class OneLineStartupFailure:
    """Pure ASGI: when the model cannot load, the server logs our one line instead of a traceback.

    Starlette reports a failed lifespan with the formatted traceback as its message; uvicorn prints it.
    """

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_plain(message: Message) -> None:
            error = getattr(self.state, "load_error", None)
            if message["type"] == "lifespan.startup.failed" and error:
                message = {**message, "message": f"refusing to start: {error}"}
            await send(message)

        await self.app(scope, receive, send_plain)


class App(FastAPI):
    """FastAPI with the request ID outside its whole stack, so that even the 500 handler's answer carries it."""

    def build_middleware_stack(self) -> ASGIApp:
        return RequestIds(super().build_middleware_stack())


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app from settings (default: the environment's); the model loads in the lifespan."""
    settings = settings or get_settings()
    # docs_url and redoc_url off: FastAPI's pages load from a CDN; service/routes/docs.py serves them offline
    app = App(
        title="MNIST convnet",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.repository = None  # until the lifespan has loaded the models: /health/ready says 503
    app.state.open_inference = None  # the V2 data plane on those models, built with them
    app.state.model_control = None  # loads and unloads model versions while serving
    for feature in (predict, feature_maps, explain, model, health, metrics, v2, repository, web, docs):
        app.include_router(feature.router)
    app.include_router(v2.infer_router)
    install_error_handlers(app)
    app.add_middleware(
        HotRoutes, routes=[*predict.router.routes, *v2.infer_router.routes]
    )  # innermost: keys, CORS, metrics apply
    install_api_keys(app, settings)  # inside CORS: preflights need no key, 401s get CORS headers
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)  # times CORS too
    app.add_middleware(OneLineStartupFailure, state=app.state)
    return app
