"""Training loop: seeded, augmented, AdamW + one-cycle schedule, weight EMA, validation-based selection,
then a softmax temperature fitted on the validation images."""

from __future__ import annotations

import copy
import math
import platform
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from training.architectures import ARCHITECTURES, build_model
from training.augment import Augmentation, augment
from training.calibration import fit_temperature
from training.data import Split
from training.model import DigitNet
from training.schedule import Schedule


@dataclass
class TrainConfig:
    arch: str = "classic"
    epochs: int = 20
    batch_size: int = 128
    lr: float = 3e-3  # peak of the one-cycle schedule
    weight_decay: float = 1e-4  # AdamW's, on conv and dense weights only (not biases or batch norm)
    label_smoothing: float = 0.05
    ema_decay: float = 0.999
    val_size: int = 5_000
    seed: int = 1
    device: str = "auto"
    limit: int | None = None  # train on only this many images (for quick runs)
    max_steps: int | None = None  # stop each epoch after this many steps (--dry-run uses 2)
    augment: bool = True
    augmentation: Augmentation = field(default_factory=Augmentation)
    calibrate: bool = True  # fit a softmax temperature on the validation images
    threads: int | None = None
    time_budget_s: float | None = None  # anneal and stop within this many seconds (epochs is then the most)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available; use --device cpu or auto")
    return torch.device(name)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float32 in [0, 1]."""
    return torch.from_numpy(images).unsqueeze(1).float().div_(255.0)


def split_validation(train: Split, val_size: int, seed: int) -> tuple[Split, Split]:
    """Hold out val_size training images (seeded) for model selection; the test set stays untouched."""
    order = np.random.default_rng(seed).permutation(len(train.labels))
    val, fit = order[:val_size], order[val_size:]
    return (
        Split(train.images[fit], train.labels[fit]),
        Split(train.images[val], train.labels[val]),
    )


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (predict_logits(model, x).argmax(1) == y).float().mean().item() if len(y) else 0.0


def ema_with_warmup(decay: float):
    """An AveragedModel update: EMA whose decay grows as min(decay, (1 + t) / (10 + t)) over the t updates so far.

    NOTE: with a fixed 0.999 the average still holds 0.999^t of the random initial weights (42% after two
    epochs): harmless for the classic net, but a batch-norm net's average scored 10% until late in training."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor) -> None:
        t = float(updates)
        weight = 1.0 - min(decay, (1.0 + t) / (10.0 + t))
        if averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, current, weight)
        else:  # batch norm's integer batch counters
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)

    return update


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on conv and dense weights; biases and batch-norm scales are not decayed."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr)


def train_epoch(model, ema, x, y, optimizer, schedule, config, epoch, generator) -> dict:
    """One pass over (x, y) in shuffled mini-batches, cut short when the schedule is done; returns mean loss,
    running accuracy and the steps taken."""
    model.train()
    order = torch.randperm(len(y), generator=generator)
    steps = math.ceil(len(y) / config.batch_size)
    if config.max_steps:
        steps = min(steps, config.max_steps)
    total_loss, correct, seen, taken = 0.0, 0, 0, 0
    bar = tqdm(range(steps), desc=f"epoch {epoch}/{config.epochs}", leave=False, dynamic_ncols=True, mininterval=1.0)
    for step in bar:
        if schedule.done:
            break
        schedule.apply()
        idx = order[step * config.batch_size : (step + 1) * config.batch_size]
        xb, yb = x[idx], y[idx]
        if config.augment:
            xb = augment(xb, generator, config.augmentation)
        # NOTE: channels-last runs the depthwise and 1x1 convolutions 2-4x faster on CPU (oneDNN).
        logits = model(xb.contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(logits, yb, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        ema.update_parameters(model)
        taken += 1
        total_loss += loss.item() * len(yb)
        correct += (logits.argmax(1) == yb).sum().item()
        seen += len(yb)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
    return {"loss": total_loss / max(seen, 1), "train_accuracy": correct / max(seen, 1), "steps": taken}


def train(train_split: Split, config: TrainConfig, log=print) -> tuple[DigitNet, dict]:
    """Train config.arch on train_split; returns the selected model (by validation accuracy), calibrated, and a
    record of the recipe."""
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    device = resolve_device(config.device)
    if config.limit:
        train_split = Split(train_split.images[: config.limit], train_split.labels[: config.limit])
    val_size = min(config.val_size, len(train_split.labels) // 5)
    fit, val = split_validation(train_split, val_size, config.seed)
    x, y = to_tensor(fit.images).to(device), torch.from_numpy(fit.labels).to(device)
    xv, yv = to_tensor(val.images).to(device), torch.from_numpy(val.labels).to(device)
    xv = xv.contiguous(memory_format=torch.channels_last)

    model = build_model(config.arch).to(device)
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # a real overload the stubs lack
    # use_buffers: batch norm's running statistics are averaged with the weights they belong to.
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=ema_with_warmup(config.ema_decay), use_buffers=True)
    optimizer = make_optimizer(model, config)
    steps_per_epoch = math.ceil(len(y) / config.batch_size)
    if config.max_steps:
        steps_per_epoch = min(steps_per_epoch, config.max_steps)
    schedule = Schedule(optimizer, config.lr, config.epochs * steps_per_epoch, config.time_budget_s)
    best_state, best_val, history = None, -1.0, []
    for epoch in range(1, config.epochs + 1):
        if schedule.done:
            break
        stats = train_epoch(model, ema, x, y, optimizer, schedule, config, epoch, generator)
        stats.update(epoch=epoch, val_accuracy=accuracy(model, xv, yv), val_accuracy_ema=accuracy(ema, xv, yv))
        stats["elapsed_s"] = round(schedule.elapsed_s, 1)
        history.append(stats)
        log(
            f"epoch {epoch:>2}/{config.epochs}  loss {stats['loss']:.4f}  train acc {stats['train_accuracy']:.4f}"
            f"  val acc {stats['val_accuracy']:.4f}  val acc (EMA) {stats['val_accuracy_ema']:.4f}"
            f"  {stats['elapsed_s']:.0f}s"
        )
        # NOTE: >= so that, on a tie, the later (further annealed) weights win; EMA is checked after the model.
        for source, value in (("model", stats["val_accuracy"]), ("ema", stats["val_accuracy_ema"])):
            if value >= best_val:
                best_val, best_epoch, best_source = value, epoch, source
                chosen = ema.module if source == "ema" else model
                best_state = copy.deepcopy(chosen.state_dict())
    wall = schedule.elapsed_s
    assert best_state is not None  # at least one epoch ran
    selected = build_model(config.arch)
    selected.load_state_dict(best_state)
    selected = selected.cpu().eval()
    calibration = calibrate(selected, xv.cpu(), yv.cpu()) if config.calibrate else {"temperature": 1.0}
    log(f"selected epoch {best_epoch} ({best_source}), temperature {selected.temperature}")
    record = {
        "arch": config.arch,
        "config": asdict(config),
        "optimizer": (
            f"AdamW(lr={config.lr}, weight_decay={config.weight_decay} on conv/dense weights, 0 on biases "
            "and batch norm), one-cycle schedule (OneCycleLR's shape: cosine, 30% warm-up, beta1 0.95-0.85)"
        ),
        "schedule": {
            "total_steps": schedule.total_steps,
            "steps": schedule.steps,
            "epochs_run": len(history),
            "time_budget_s": config.time_budget_s,
            "stopped_by": schedule.stopped_by,
        },
        "loss": f"cross-entropy, label smoothing {config.label_smoothing}",
        "augmentation": config.augmentation.describe() if config.augment else "none",
        "weight_averaging": (
            f"EMA of weights and batch-norm statistics, decay min({config.ema_decay}, (1 + t) / (10 + t)) at update t"
        ),
        "selection": "the epoch and weights (live model or EMA) with the best validation accuracy",
        "train_images": len(y),
        "validation_images": len(yv),
        "selected": {"epoch": best_epoch, "weights": best_source, "val_accuracy": best_val},
        "calibration": calibration,
        "history": history,
        "wall_time_s": round(wall, 1),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
    }
    return selected, record


def calibrate(model: DigitNet, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Fit model.temperature on held-out images (x, y) and set it; returns the fit's figures."""
    figures = fit_temperature(predict_logits(model, x).numpy(), y.numpy())
    model.temperature = figures["temperature"]
    return figures


def default_config(arch: str, **overrides) -> TrainConfig:
    """The architecture's recipe (epochs, learning rate, weight decay), with overrides that are not None."""
    recipe = ARCHITECTURES[arch]
    base = TrainConfig(arch=arch, epochs=recipe.epochs, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def save_checkpoint(model: DigitNet, record: dict, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"arch": model.arch, "state_dict": model.state_dict(), "record": record}, path)
    return path


def load_checkpoint(path: Path) -> tuple[DigitNet, dict]:
    """The model (architecture from the checkpoint; classic for ones written before there was a choice), with
    its fitted temperature, and its training record."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(checkpoint.get("arch", "classic"))
    model.load_state_dict(checkpoint["state_dict"])
    record = checkpoint["record"]
    model.temperature = float(record.get("calibration", {}).get("temperature", 1.0))
    return model.eval(), record
