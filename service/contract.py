"""What a model takes and gives, read from its card and checked against its graph: the model is data.

The card (written by `python -m training export`) names the input and every output in graph order, each with
its shape and kind. Nothing in service/ names a layer: routes, the data plane, V2 and the page read this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.errors import ModelLoadError

# The one input the service can feed: a preprocessed digit (service/preprocess.py), float32 in [0, 1].
IMAGE_SHAPE = (1, 28, 28)  # per image; the batch dimension is dynamic
DTYPE = "float32"
# Output kinds a card may name (training/model.py KINDS), by how a page or a picture lays them out:
# spatial (C, H, W) as a grid of C maps, vector (K,) as a strip or, for class scores, as bars.
SPATIAL_KINDS = frozenset({"conv", "pool", "block"})
VECTOR_KINDS = frozenset({"flatten", "gap", "dense", "probabilities"})
SCORE_KINDS = frozenset({"dense", "probabilities"})  # drawn as bars when they have one value per class
PROBABILITIES = "probabilities"  # the kind of the output every answer is read from
INPUT_LAYER = "input"  # the preprocessed 28x28 image, shown like a layer: no output may take this name
CLASSES = 10


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One named tensor: its per-image shape (no batch dimension) and, for outputs, its kind."""

    name: str
    shape: tuple[int, ...]
    kind: str

    @property
    def is_scores(self) -> bool:
        """One value per class (logits, probabilities): drawn as bars."""
        return self.kind in SCORE_KINDS and self.shape == (CLASSES,)

    def describe(self) -> dict[str, Any]:
        """As /models and the feature-map answers show it."""
        return {"name": self.name, "kind": self.kind, "shape": list(self.shape)}


@dataclass(frozen=True, slots=True)
class Contract:
    """A model's input and outputs (forward order), from its card; `probabilities` names the answer's output."""

    input: TensorSpec
    outputs: tuple[TensorSpec, ...]
    probabilities: str

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(output.name for output in self.outputs)

    def output(self, name: str) -> TensorSpec | None:
        return next((output for output in self.outputs if output.name == name), None)

    @classmethod
    def from_card(cls, card: Mapping[str, Any], where: str) -> Contract:
        """Read the contract from a card; ModelLoadError (naming `where`, the card file) if it cannot be used."""
        problems: list[str] = []
        image = _tensor(card.get("input"), "input", problems, kind="input")
        if image is not None and image.shape != IMAGE_SHAPE:
            problems.append(f"input '{image.name}' has shape {_shown(image.shape)}; the service feeds (N, 1, 28, 28)")
        outputs_field = card.get("outputs")
        if not isinstance(outputs_field, list) or not outputs_field:
            problems.append("'outputs' must be a non-empty list of {name, shape, kind}")
            outputs_field = []
        outputs = [_tensor(entry, f"outputs[{i}]", problems) for i, entry in enumerate(outputs_field)]
        named = [output for output in outputs if output is not None]
        names = [output.name for output in named]
        if len(set(names)) != len(names):
            problems.append(f"output names repeat: {names}")
        if INPUT_LAYER in names:
            problems.append(f"an output is named '{INPUT_LAYER}', the name the service gives the preprocessed image")
        scores = [output for output in named if output.kind == PROBABILITIES]
        if len(scores) != 1 or scores[0].shape != (CLASSES,):
            problems.append(f"exactly one output of kind '{PROBABILITIES}' with shape (N, {CLASSES}) is needed")
        if problems or image is None:
            reasons = "; ".join(problems)
            raise ModelLoadError(f"model card {where} does not describe a model the service can serve: {reasons}")
        return cls(image, tuple(named), scores[0].name)

    def graph_problems(self, inputs: Sequence[Any], outputs: Sequence[Any]) -> list[str]:
        """How an onnxruntime session's inputs and outputs (NodeArg) differ from this contract."""
        problems: list[str | None] = []
        if [i.name for i in inputs] != [self.input.name]:
            problems.append(f"inputs are {[i.name for i in inputs]}, the card says ['{self.input.name}']")
        else:
            problems.append(_arg_problem(inputs[0], self.input, "input"))
        found = {o.name: o for o in outputs}
        for spec in self.outputs:
            if spec.name not in found:
                problems.append(f"output '{spec.name}' is missing")
            else:
                problems.append(_arg_problem(found[spec.name], spec, "output"))
        return [p for p in problems if p]


def _tensor(entry: object, where: str, problems: list[str], kind: str | None = None) -> TensorSpec | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
        problems.append(f"{where} needs a 'name'")
        return None
    name, shape = entry["name"], entry.get("shape")
    if entry.get("dtype", DTYPE) != DTYPE:
        problems.append(f"{where} '{name}' is {entry.get('dtype')}, the service reads only {DTYPE}")
    if not isinstance(shape, list) or len(shape) < 2 or isinstance(shape[0], int):
        problems.append(f"{where} '{name}' needs a 'shape' with a symbolic batch dimension first, e.g. ['N', 10]")
        return None
    dims = shape[1:]
    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        problems.append(f"{where} '{name}' has shape {shape}: the dimensions after the batch must be positive integers")
        return None
    kind = kind or entry.get("kind")
    if kind != "input" and kind not in SPATIAL_KINDS | VECTOR_KINDS:
        known = ", ".join(sorted(SPATIAL_KINDS | VECTOR_KINDS))
        problems.append(f"{where} '{name}' has kind {kind!r}: choose one of {known}")
        return None
    if (kind in SPATIAL_KINDS and len(dims) != 3) or (kind in VECTOR_KINDS and len(dims) != 1):
        problems.append(f"{where} '{name}' of kind '{kind}' has shape {shape}: {kind} is {_layout(kind)}")
        return None
    return TensorSpec(name, tuple(dims), kind)


def _layout(kind: str) -> str:
    return "(N, C, H, W)" if kind in SPATIAL_KINDS else "(N, K)"


def _shown(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(["N", *map(str, shape)]) + ")"


def _arg_problem(arg: Any, spec: TensorSpec, what: str) -> str | None:
    # The batch dimension must be symbolic (or unset); the rest must match the card exactly.
    if arg.type != "tensor(float)":
        return f"{what} '{spec.name}' is {arg.type} in the graph, the card says {DTYPE}"
    shape = list(arg.shape)
    if len(shape) != len(spec.shape) + 1 or isinstance(shape[0], int) or shape[1:] != list(spec.shape):
        return f"{what} '{spec.name}' has shape {shape} in the graph, the card says {_shown(spec.shape)}"
    return None
