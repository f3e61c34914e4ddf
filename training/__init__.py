"""Training half of the project: builds, trains and exports the MNIST convnet to ONNX."""
