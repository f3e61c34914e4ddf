"""MLServer custom runtime: the committed ONNX model behind the V2 protocol (MLServer's adaptive batching
stacks the queued requests along the first axis before predict sees them)."""

from __future__ import annotations

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from bench.peers.apps.onnx_digit import INPUT, OUTPUT, load_session, probabilities


class MnistRuntime(MLModel):
    """image (N, 1, 28, 28) FP32 -> probabilities (N, 10) FP32."""

    async def load(self) -> bool:
        self.session = load_session()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        image = NumpyCodec.decode_input(next(tensor for tensor in payload.inputs if tensor.name == INPUT))
        result = probabilities(self.session, image.reshape(-1, 1, 28, 28).astype(np.float32))
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output(OUTPUT, result)])
