#!/usr/bin/env python3
"""Writes tests/data/scheduler_reference.json with diffusers' own schedulers.

For each scheduler config and method: the timesteps, the sigmas, the initial
noise sigma, the UNet input scale per step, and a short sampling trajectory
driven by a fixed synthetic "model" (and fixed ancestral noise), which
tests/scheduler.rs replays through the engine.

    python3 -m venv v && v/bin/pip install torch diffusers numpy
    v/bin/python scripts/scheduler_reference.py
"""
import json
import math
import os

import numpy as np
import torch
import diffusers
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
)
import diffusers.schedulers.scheduling_euler_ancestral_discrete as euler_a_module

SD15 = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}
CONFIGS = {
    "sd15": SD15,
    "sd21_v_leading": {**SD15, "_class_name": "DDIMScheduler", "prediction_type": "v_prediction", "timestep_spacing": "leading"},
    "trailing": {**SD15, "timestep_spacing": "trailing"},
    "linspace_linear": {**SD15, "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02, "timestep_spacing": "linspace", "steps_offset": 0},
    "cosine": {**SD15, "beta_schedule": "squaredcos_cap_v2", "timestep_spacing": "leading"},
}
METHODS = {
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "dpm++2m": DPMSolverMultistepScheduler,
}
SHAPE = (1, 2, 2, 2)


def start():
    return torch.tensor([math.sin(1.0 + k) for k in range(8)], dtype=torch.float64).reshape(SHAPE)


def model(x, t):
    """The synthetic denoiser; tests/scheduler.rs has the same formula."""
    k = torch.arange(8, dtype=torch.float64).reshape(SHAPE)
    return 0.3 * x + 0.1 * torch.sin(float(t) / 100.0 + k)


def noise(i):
    k = torch.arange(8, dtype=torch.float64).reshape(SHAPE)
    return torch.cos(k * 0.7 + i)


def run(config, method, steps):
    sched = METHODS[method].from_config(config)
    sched.set_timesteps(steps)
    step_index = {"i": 0}
    euler_a_module.randn_tensor = lambda *a, **kw: noise(step_index["i"]).to(kw.get("dtype") or torch.float64)
    x = start() * float(sched.init_noise_sigma)
    scales = []
    for i, t in enumerate(sched.timesteps):
        step_index["i"] = i
        probe = torch.ones(SHAPE, dtype=torch.float64)
        scales.append(float(sched.scale_model_input(probe, t).flatten()[0]))
        out = model(x, float(t))
        x = sched.step(out, t, x).prev_sample
    entry = {
        "timesteps": [float(t) for t in sched.timesteps],
        "init_noise_sigma": float(sched.init_noise_sigma),
        "input_scales": scales,
        "final": [float(v) for v in x.flatten()],
    }
    if hasattr(sched, "sigmas"):
        entry["sigmas"] = [float(s) for s in sched.sigmas]
    return entry


def main():
    out = {"diffusers": diffusers.__version__, "torch": torch.__version__, "start": [float(v) for v in start().flatten()], "configs": {}}
    for name, config in CONFIGS.items():
        ac = DDIMScheduler.from_config(config).alphas_cumprod
        cases = {}
        for method in METHODS:
            for steps in (1, 4, 25):
                cases[f"{method}/{steps}"] = run(config, method, steps)
        out["configs"][name] = {"config": config, "alphas_cumprod": [float(a) for a in ac], "cases": cases}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "scheduler_reference.json")
    with open(path, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
