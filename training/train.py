"""Training loop: seeded, augmented, AdamW + one-cycle schedule, weight EMA, validation-based selection."""

from __future__ import annotations

import copy
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from training.data import Split
from training.model import MnistCNN


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 128
    lr: float = 3e-3  # peak of the one-cycle schedule
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    ema_decay: float = 0.999
    val_size: int = 5_000
    seed: int = 1
    device: str = "auto"
    limit: int | None = None  # train on only this many images (for quick runs)
    max_steps: int | None = None  # stop each epoch after this many steps (--dry-run uses 2)
    augment: bool = True
    threads: int | None = None


AUGMENTATION = "random affine per image: rotation ±12°, scale 0.9–1.1, shear ±8°, translation ±2.5 px"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available; use --device cpu or auto")
    return torch.device(name)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float32 in [0, 1]."""
    return torch.from_numpy(images).unsqueeze(1).float().div_(255.0)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random affine warp of each image in x (N, 1, 28, 28), done as one batched grid_sample."""
    n = x.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    angle = uniform(-12, 12) * math.pi / 180
    shear = uniform(-8, 8) * math.pi / 180
    scale = uniform(0.9, 1.1)
    tx, ty = uniform(-2.5, 2.5) / 14, uniform(-2.5, 2.5) / 14  # grid units: 14 px per 1.0
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos, -sin + torch.tan(shear) * cos, tx], dim=1),
            torch.stack([sin, cos, ty], dim=1),
        ],
        dim=1,
    )  # (N, 2, 3)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def split_validation(train: Split, val_size: int, seed: int) -> tuple[Split, Split]:
    """Hold out val_size training images (seeded) for model selection; the test set stays untouched."""
    order = np.random.default_rng(seed).permutation(len(train.labels))
    val, fit = order[:val_size], order[val_size:]
    return (
        Split(train.images[fit], train.labels[fit]),
        Split(train.images[val], train.labels[val]),
    )


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += (model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum().item()
    return correct / max(len(y), 1)


def train_epoch(model, ema, x, y, optimizer, scheduler, config, epoch, generator) -> dict:
    """One pass over (x, y) in shuffled mini-batches; returns mean loss and running accuracy."""
    model.train()
    order = torch.randperm(len(y), generator=generator)
    steps = math.ceil(len(y) / config.batch_size)
    if config.max_steps:
        steps = min(steps, config.max_steps)
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(range(steps), desc=f"epoch {epoch}/{config.epochs}", leave=False, dynamic_ncols=True, mininterval=1.0)
    for step in bar:
        idx = order[step * config.batch_size : (step + 1) * config.batch_size]
        xb, yb = x[idx], y[idx]
        if config.augment:
            xb = augment(xb, generator)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        ema.update_parameters(model)
        total_loss += loss.item() * len(yb)
        correct += (logits.argmax(1) == yb).sum().item()
        seen += len(yb)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
    return {"loss": total_loss / seen, "train_accuracy": correct / seen, "steps": steps}


def train(train_split: Split, config: TrainConfig, log=print) -> tuple[MnistCNN, dict]:
    """Train MnistCNN on train_split; returns the selected model (by validation accuracy) and a record."""
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

    model = MnistCNN().to(device)
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema_decay)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(y) / config.batch_size)
    if config.max_steps:
        steps_per_epoch = min(steps_per_epoch, config.max_steps)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, epochs=config.epochs, steps_per_epoch=steps_per_epoch
    )
    best_state, best_val, history = None, -1.0, []
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        stats = train_epoch(model, ema, x, y, optimizer, scheduler, config, epoch, generator)
        stats.update(epoch=epoch, val_accuracy=accuracy(model, xv, yv), val_accuracy_ema=accuracy(ema, xv, yv))
        stats["elapsed_s"] = round(time.perf_counter() - start, 1)
        history.append(stats)
        log(
            f"epoch {epoch:>2}/{config.epochs}  loss {stats['loss']:.4f}  train acc {stats['train_accuracy']:.4f}"
            f"  val acc {stats['val_accuracy']:.4f}  val acc (EMA) {stats['val_accuracy_ema']:.4f}"
            f"  {stats['elapsed_s']:.0f}s"
        )
        for source, value in (("ema", stats["val_accuracy_ema"]), ("model", stats["val_accuracy"])):
            if value > best_val:
                best_val, best_epoch, best_source = value, epoch, source
                chosen = ema.module if source == "ema" else model
                best_state = copy.deepcopy(chosen.state_dict())
    wall = time.perf_counter() - start
    assert best_state is not None  # at least one epoch ran
    selected = MnistCNN()
    selected.load_state_dict(best_state)
    record = {
        "config": asdict(config),
        "optimizer": f"AdamW(lr={config.lr}, weight_decay={config.weight_decay}) with OneCycleLR",
        "loss": f"cross-entropy, label smoothing {config.label_smoothing}",
        "augmentation": AUGMENTATION if config.augment else "none",
        "weight_averaging": f"EMA decay {config.ema_decay}",
        "train_images": len(y),
        "validation_images": len(yv),
        "selected": {"epoch": best_epoch, "weights": best_source, "val_accuracy": best_val},
        "history": history,
        "wall_time_s": round(wall, 1),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
    }
    return selected.cpu().eval(), record


def save_checkpoint(model: MnistCNN, record: dict, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "record": record}, path)
    return path


def load_checkpoint(path: Path) -> tuple[MnistCNN, dict]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = MnistCNN()
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), checkpoint["record"]
