"""The one-cycle schedule, driven by training's progress: the share of its steps done or, given a time budget,
the share of the budget used, whichever is further along.

NOTE: a time budget exists because this project trains on a shared 2-core CPU, where the same run took 9 or
29 minutes depending on what else ran. With a budget, a run anneals and stops on time however loaded the
machine is; it is reproducible only when the budget is never the binding limit (the record says which was).
"""

from __future__ import annotations

import math
import time

import torch

PCT_START = 0.3  # share of the cycle spent warming up, as torch's OneCycleLR
DIV_FACTOR, FINAL_DIV_FACTOR = 25.0, 1e4  # start at peak / 25, end at peak / 25 / 1e4
BETA1 = (0.85, 0.95)  # Adam's beta1 cycles opposite to the learning rate


def _cos(start: float, end: float, t: float) -> float:
    return end + (start - end) / 2 * (math.cos(math.pi * t) + 1)


def one_cycle(progress: float, peak: float) -> tuple[float, float]:
    """(learning rate, beta1) at progress in [0, 1], with torch's OneCycleLR's cosine shape and defaults."""
    low, high = BETA1
    if progress < PCT_START:
        t = progress / PCT_START
        return _cos(peak / DIV_FACTOR, peak, t), _cos(high, low, t)
    t = (progress - PCT_START) / (1 - PCT_START)
    return _cos(peak, peak / DIV_FACTOR / FINAL_DIV_FACTOR, t), _cos(low, high, t)


class Schedule:
    """Sets the optimizer's learning rate and beta1 before each step; done once progress reaches 1."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, peak: float, total_steps: int, time_budget_s: float | None = None
    ) -> None:
        self.optimizer, self.peak, self.total_steps, self.time_budget_s = optimizer, peak, total_steps, time_budget_s
        self.steps = 0
        self.start = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.start

    @property
    def progress(self) -> float:
        done = self.steps / self.total_steps
        if self.time_budget_s:
            done = max(done, self.elapsed_s / self.time_budget_s)
        return min(done, 1.0)

    @property
    def done(self) -> bool:
        return self.progress >= 1.0

    @property
    def stopped_by(self) -> str:
        """What ended training: 'steps' (all epochs ran) or 'time budget'."""
        return "steps" if self.steps >= self.total_steps else "time budget"

    def apply(self) -> None:
        lr, beta1 = one_cycle(self.progress, self.peak)
        for group in self.optimizer.param_groups:
            group["lr"], group["betas"] = lr, (beta1, group["betas"][1])

    def step(self) -> None:
        self.steps += 1
