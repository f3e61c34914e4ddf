"""Real model servers ("peers") beside our service, each serving the committed classic model.

    .venv/bin/python -m bench.peers [--peers triton,torchserve,kserve,mlserver,litserve,bentoml]
                                    [--seconds 10] [--rounds 3] [--markdown FILE]

Each peer is one module here (its pinned requirements, its batching settings, how its config is laid out in a
work folder) and its server-side code is in apps/ (a PyTriton script, a TorchServe handler, a KServe model,
an MLServer runtime, a LitAPI, a BentoML service). A peer's venv is made on first use from PyPI under
~/.cache/mnist-bench/peers/<peer>-<version>/ (never in .venv) and reused; its processes get the checkout on
PYTHONPATH, so every peer runs bench/peers/apps/onnx_digit.py: the committed ONNX file in onnxruntime with one
thread, and for the image peers our own service.preprocess (grayscale, MNIST crop and centre).

Requests are those of bench/load.py: image peers (TorchServe, LitServe, BentoML) get the multipart PNG of
our `POST /predict`, V2 peers (Triton, KServe, MLServer) the V2 JSON body of our
`POST /v2/models/mnist_cnn/infer`. Every peer has its own batching on (KServe has none outside Kubernetes)
and one model instance. Nothing in tests/ or CI uses this package.
"""
