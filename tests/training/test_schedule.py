import time

import pytest
import torch

from training.schedule import DIV_FACTOR, FINAL_DIV_FACTOR, PCT_START, Schedule, one_cycle


def test_one_cycle_warms_up_to_the_peak_then_anneals():
    peak = 3e-3
    assert one_cycle(0.0, peak) == (pytest.approx(peak / DIV_FACTOR), pytest.approx(0.95))
    assert one_cycle(PCT_START, peak) == (pytest.approx(peak), pytest.approx(0.85))
    assert one_cycle(1.0, peak)[0] == pytest.approx(peak / DIV_FACTOR / FINAL_DIV_FACTOR)
    rates = [one_cycle(p / 100, peak)[0] for p in range(101)]
    assert rates[:30] == sorted(rates[:30]) and rates[30:] == sorted(rates[30:], reverse=True)


def test_one_cycle_follows_torch_one_cycle_lr():
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=1e-3)
    torch_schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=1000)
    for step in range(1000):
        assert one_cycle(step / 1000, 1e-3)[0] == pytest.approx(optimizer.param_groups[0]["lr"], rel=0.02, abs=1e-6)
        optimizer.step()
        torch_schedule.step()


def test_schedule_is_done_after_its_steps():
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
    schedule = Schedule(optimizer, 1e-3, total_steps=3)
    for _ in range(3):
        assert not schedule.done
        schedule.apply()
        schedule.step()
    assert schedule.done and schedule.stopped_by == "steps"


def test_schedule_with_a_spent_time_budget_is_done_early():
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
    schedule = Schedule(optimizer, 1e-3, total_steps=1_000, time_budget_s=0.05)
    schedule.apply()
    assert optimizer.param_groups[0]["lr"] < 1e-3 / 10  # warming up
    time.sleep(0.06)
    assert schedule.done and schedule.stopped_by == "time budget"
