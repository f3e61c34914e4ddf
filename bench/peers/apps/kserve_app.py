"""KServe's Python model server (kserve.ModelServer) with one custom Model answering the V2 protocol.

python kserve_app.py --http_port 8080 --grpc_port 8081   (kserve reads its own flags from argv)
"""

from __future__ import annotations

import uuid

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from kserve.logging import KSERVE_LOG_CONFIG

from bench.peers.apps.onnx_digit import INPUT, OUTPUT, load_session, probabilities


class MnistModel(Model):
    """The committed ONNX model behind POST /v2/models/mnist_cnn/infer."""

    def __init__(self) -> None:
        super().__init__("mnist_cnn")
        self.session = None

    def load(self) -> bool:
        self.session = load_session()
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers: object = None, response_headers: object = None) -> InferResponse:
        image = next(tensor for tensor in payload.inputs if tensor.name == INPUT).as_numpy()  # (N, 1, 28, 28)
        result = probabilities(self.session, image.reshape(-1, 1, 28, 28).astype(np.float32))  # (N, 10)
        output = InferOutput(name=OUTPUT, shape=list(result.shape), datatype="FP32")
        output.set_data_from_numpy(result, binary_data=False)
        # NOTE: our V2 body has no id, and KServe's response must have one
        response_id = payload.id or uuid.uuid4().hex
        return InferResponse(response_id=response_id, model_name=self.name, infer_outputs=[output])


if __name__ == "__main__":
    # No log line per request (uvicorn's access log, KServe's timing trace), as our service runs with access logs off
    for name in ("uvicorn.access", "kserve.trace"):
        KSERVE_LOG_CONFIG["loggers"][name]["level"] = "WARNING"
    model = MnistModel()
    model.load()
    ModelServer().start([model])
