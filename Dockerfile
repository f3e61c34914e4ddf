# The MNIST service image: onnxruntime, the service and the committed model; no torch, no compilers,
# no pip, no build caches.
#
#   docker build -t mnist-service .                    # the service (the last stage, `service`)
#   docker build --target train -t mnist-train .       # torch, to train and export into /app/models
#
# PYTHON_IMAGE swaps the base; it must put `python` (with venv) on the PATH. Both stages that run
# must use the same base, because the venv is copied from one into the other.
ARG PYTHON_IMAGE=python:3.12-slim

# ---- builder: a venv with the project and its `serve` extra, then trimmed -----------------------
FROM ${PYTHON_IMAGE} AS builder
# Plain PyPI, whatever pip config the base or the build host might carry; override for a mirror.
ARG PIP_INDEX_URL=https://pypi.org/simple
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service/ service/
COPY training/ training/
# Non-editable install, so the venv stands alone. Then drop what the service never runs: pip and
# setuptools (nothing installs at run time) and the packages' own test suites.
# NOTE: bytecode is compiled here with unchecked hashes: COPY --from does not keep the sources'
# mtimes exactly, so mtime-stamped .pyc files read as stale, and a read-only root cannot rewrite them.
RUN /opt/venv/bin/pip install --no-cache-dir --no-compile '.[serve]' \
 && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools \
 && find /opt/venv -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} + \
 && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv/lib

# ---- train: torch (CPU), to train and export a model into a mounted /app/models ----------------
# Not built in CI (scripts/container-check): torch comes from PyTorch's CPU index (TORCH_INDEX_URL), which CI
# cannot reach; docs/container.md says how it was built and run without it.
FROM ${PYTHON_IMAGE} AS train
ARG PIP_INDEX_URL=https://pypi.org/simple
# NOTE: PyPI's own torch wheel for Linux is the CUDA build (527 MB, and it requires cuda-toolkit, cuDNN,
# NCCL and triton); PyTorch's CPU index has the same release as 2.13.0+cpu, which satisfies torch==2.13.0.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    ORT_DISABLE_TELEMETRY=1 \
    MNIST_DATA_DIR=/data
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" torch==2.13.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY training/ training/
RUN pip install --no-cache-dir '.[train]' \
 && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app \
 && mkdir -p /app/models /app/artifacts /data \
 && chown app:app /app/models /app/artifacts /data
WORKDIR /app
USER app
# Mount the data at /data (the IDX files; downloaded there when missing) and a folder at /app/models.
# No VOLUME line: it would leave an anonymous volume behind every `docker compose run`.
# Writes a checkpoint under artifacts/, then models/<name>/<version>/model.onnx + card.json (relative to /app).
# NOTE: --force replaces models/mnist_cnn/1 (as the single-file export once overwrote models/mnist_cnn.onnx);
# for a new version instead: ... run --rm train sh -c "python -m training train && python -m training export --version 2"
CMD ["sh", "-c", "python -m training train && python -m training export --force"]

# ---- service: the default target ---------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS service
# NOTE: onnxruntime on Linux sets up usage telemetry and keeps a device id under
# ~/.cache/Microsoft/DeveloperTools; ORT_DISABLE_TELEMETRY=1 turns both off (its Privacy.md; checked on 1.32).
# MALLOC_ARENA_MAX=2: glibc keeps an arena per decoding thread; with two, a burst of big images
# peaked at +582 MiB and fell back to +116 MiB, against +1,216 and +822 MiB (2026-11-25, docs/reliability.md).
ENV PATH=/opt/venv/bin:$PATH \
    MALLOC_ARENA_MAX=2 \
    ORT_DISABLE_TELEMETRY=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MNIST_MODEL_REPOSITORY=/app/models \
    MNIST_HOST=0.0.0.0 \
    MNIST_PORT=8000
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY models/ models/
USER app
EXPOSE 8000
# python's urllib, so the image needs no curl. urlopen raises on a refused connection (uvicorn listens only
# once the models are loaded) and on an error status, so either is unhealthy.
# NOTE: the first probe runs one interval after the start; --start-interval, which would probe faster only
# while starting, needs Docker Engine 25 (API 1.44) and is refused by 20.10's parser: 5 s, as in compose.
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('MNIST_PORT', '8000')}/health/ready\", timeout=4)"]
# The README's command (scripts/serve runs the same); flags such as --workers 2 may follow.
CMD ["python", "-m", "service"]
