"""`python -m service`: verify the model, then serve it with uvicorn (`--help` lists the flags)."""

from __future__ import annotations

import argparse
import copy
import errno
import socket
import sys
from typing import Any

import uvicorn
from pydantic import ValidationError
from uvicorn.config import LOGGING_CONFIG

from service import control
from service.config import Settings, get_settings
from service.errors import ModelLoadError

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def parse_args(argv: list[str] | None, settings: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description="Serve the MNIST convnet. Other settings come from MNIST_* environment variables "
        "(MNIST_MODEL_REPOSITORY, MNIST_DEFAULT_MODEL, MNIST_MODEL_CONTROL, MNIST_MAX_UPLOAD_BYTES, "
        "MNIST_MAX_BATCH_FILES, MNIST_CORS_ORIGINS ...). SIGHUP re-reads the model repository.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default=settings.host, help="interface to bind (MNIST_HOST)")
    parser.add_argument("--port", type=int, default=settings.port, help="TCP port (MNIST_PORT)")
    parser.add_argument("--workers", type=int, default=settings.workers, help="worker processes (MNIST_WORKERS)")
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default=settings.log_level, help="log level (MNIST_LOG_LEVEL)"
    )
    return parser.parse_args(argv)


def log_config(level: str, line_format: str = "text") -> dict[str, Any]:
    """uvicorn's logging setup, plus our `service` loggers on its default handler and the request ID on every
    line written while a request is served; `json` swaps both formatters for one JSON object per line."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["service"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    config["filters"] = {"request_id": {"()": "service.logs.RequestIdFilter"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["request_id"]
    formatters = config["formatters"]
    if line_format == "json":
        config["formatters"] = {name: {"()": "service.logs.JsonFormatter"} for name in formatters}
    else:
        for formatter in formatters.values():
            formatter["fmt"] += "%(request_suffix)s"
    return config


def check_port_free(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port (None if it can), found by binding as uvicorn will.

    NOTE: checked before the model loads, so a second server on a taken port says so in one line instead of
    loading the model and then dying with uvicorn's raw `[Errno 98]`. A server that takes the port between
    this check and uvicorn's bind still gets uvicorn's message.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use (is another server running?): stop it, "
                    f"or serve on another port with --port {port + 1 if port else 9000} (or MNIST_PORT)"
                )
            return f"cannot listen on {host}:{port}: {err.strerror or err}; check --host and --port"
    return None


def main(argv: list[str] | None = None) -> None:
    """Check the settings, the port and the models first, so a bad one costs one line on stderr, not a traceback."""
    try:
        settings = get_settings()
    except ValidationError as err:
        sys.exit(
            f"mnist-service: refusing to start: bad MNIST_* setting: {err.errors()[0]['loc']}: {err.errors()[0]['msg']}"
        )
    args = parse_args(argv, settings)
    if problem := check_port_free(args.host, args.port):
        sys.exit(f"mnist-service: refusing to start: {problem}")
    try:
        control.verify(settings.model_repository, settings.default_model)
    except ModelLoadError as err:
        sys.exit(f"mnist-service: refusing to start: {err}")
    uvicorn.run(
        "service.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        log_config=log_config(args.log_level, settings.log_format),
        timeout_graceful_shutdown=settings.shutdown_timeout,  # a stalled client cannot hold SIGTERM off
        # NOTE: uvicorn's default of 5 s races clients that keep idle connections as long: a request sent
        # as the server closes the connection fails (a ReadError in the soak test, 502s behind a proxy).
        timeout_keep_alive=settings.keep_alive_timeout,
    )


if __name__ == "__main__":
    main()
