#!/usr/bin/env python3
"""Writes tests/data/scheduler_reference.json with diffusers' own schedulers.

For each scheduler config and method: the timesteps, the sigmas, the initial
noise sigma, the UNet input scale per step, and a short sampling trajectory
driven by a fixed synthetic "model" (and fixed noise for the samplers that
draw it: Euler ancestral, LCM, SDE-DPM-Solver), which tests/scheduler.rs
replays through the engine. A case named `method/steps label` also has
`args`, the task's `scheduler.args`, passed as `from_config(config, **args)`.

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
    LCMScheduler,
)
import diffusers.schedulers.scheduling_dpmsolver_multistep as dpm_module
import diffusers.schedulers.scheduling_euler_ancestral_discrete as euler_a_module
import diffusers.schedulers.scheduling_lcm as lcm_module

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
# stabilityai/sd-turbo's scheduler_config.json (SD 2.1 architecture, epsilon prediction).
SD_TURBO = {
    "_class_name": "EulerDiscreteScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "trailing",
    "trained_betas": None,
    "use_karras_sigmas": False,
}
CONFIGS = {
    "sd15": SD15,
    "sd21_v_leading": {**SD15, "_class_name": "DDIMScheduler", "prediction_type": "v_prediction", "timestep_spacing": "leading"},
    "trailing": {**SD15, "timestep_spacing": "trailing"},
    "linspace_linear": {**SD15, "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02, "timestep_spacing": "linspace", "steps_offset": 0},
    "cosine": {**SD15, "beta_schedule": "squaredcos_cap_v2", "timestep_spacing": "leading"},
    # The zero-terminal-SNR recipe for SD 2.1-style v-prediction models.
    "sd21_zero_snr": {**SD15, "_class_name": "DDIMScheduler", "prediction_type": "v_prediction", "timestep_spacing": "trailing", "rescale_betas_zero_snr": True},
    "sd_turbo": SD_TURBO,
    # No clip_sample, beta range nor schedule: each class's own defaults apply
    # (DDIM clips x0; LCM's betas are SD's, the others' DDPM's).
    "class_defaults": {"_class_name": "PNDMScheduler", "num_train_timesteps": 1000, "set_alpha_to_one": False, "steps_offset": 1},
}
METHODS = {
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "dpm++2m": DPMSolverMultistepScheduler,
    "lcm": LCMScheduler,
}
KARRAS = {"use_karras_sigmas": True}
# (config, method, steps, label, scheduler.args): cases beyond every method at 1, 4 and 25 steps.
EXTRA = [
    ("sd15", "lcm", 2, "", {}),
    ("sd15", "lcm", 8, "", {}),
    ("sd15", "lcm", 4, "orig20", {"original_inference_steps": 20}),
    ("sd15", "lcm", 6, "orig30", {"original_inference_steps": 30, "timestep_scaling": 5.0}),
    ("sd15", "lcm", 4, "v", {"prediction_type": "v_prediction", "clip_sample": True}),
    ("sd15", "dpm++2m", 4, "karras", KARRAS),
    ("sd15", "dpm++2m", 25, "karras", KARRAS),
    ("sd15", "euler", 4, "karras", KARRAS),
    ("sd15", "euler", 25, "karras", KARRAS),
    # Euler ancestral has no use_karras_sigmas: from_config ignores it.
    ("sd15", "euler_a", 4, "karras", KARRAS),
    ("sd15", "dpm++2m", 25, "order1", {"solver_order": 1}),
    ("sd15", "dpm++2m", 25, "order3", {"solver_order": 3}),
    ("sd15", "dpm++2m", 8, "order3", {"solver_order": 3}),
    ("sd15", "dpm++2m", 25, "heun", {"solver_type": "heun"}),
    ("sd15", "dpm++2m", 25, "sigma_min", {"final_sigmas_type": "sigma_min"}),
    ("sd15", "dpm++2m", 8, "no_lower_final", {"final_sigmas_type": "sigma_min", "lower_order_final": False}),
    ("sd15", "dpm++2m", 20, "euler_at_final", {"final_sigmas_type": "sigma_min", "lower_order_final": False, "euler_at_final": True}),
    ("sd15", "dpm++2m", 25, "dpmsolver", {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min", "solver_order": 3}),
    ("sd15", "dpm++2m", 25, "dpmsolver_heun", {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min", "solver_type": "heun"}),
    # diffusers runs DEIS and UniPC names as DPM-Solver++ and midpoint.
    ("sd15", "dpm++2m", 25, "deis", {"algorithm_type": "deis", "final_sigmas_type": "sigma_min", "solver_type": "bh2"}),
    ("sd15", "dpm++2m", 25, "sde++", {"algorithm_type": "sde-dpmsolver++"}),
    ("sd15", "dpm++2m", 25, "sde++_karras_heun", {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True, "solver_type": "heun"}),
    ("sd15", "dpm++2m", 25, "sde++_order3", {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}),
    ("sd15", "dpm++2m", 25, "sde", {"algorithm_type": "sde-dpmsolver", "final_sigmas_type": "sigma_min"}),
    ("sd15", "dpm++2m", 25, "lu", {"use_lu_lambdas": True}),
    ("sd15", "dpm++2m", 25, "lambda_clip", {"lambda_min_clipped": -2.6}),
    ("sd15", "dpm++2m", 10, "lambda_clip_trailing", {"lambda_min_clipped": -2.6, "timestep_spacing": "trailing"}),
    ("sd15", "euler", 25, "sigma_min", {"final_sigmas_type": "sigma_min"}),
    ("sd15", "euler", 8, "", {}),
    ("sd15", "euler_a", 7, "", {}),
    # Crynux-style SD-Turbo and zero-SNR tasks on a base config.
    ("sd15", "euler_a", 1, "turbo", {"timestep_spacing": "trailing"}),
    ("sd15", "ddim", 4, "zero_snr_v", {"timestep_spacing": "trailing", "rescale_betas_zero_snr": True, "prediction_type": "v_prediction"}),
    ("sd15", "euler", 4, "zero_snr_v", {"timestep_spacing": "trailing", "rescale_betas_zero_snr": True, "prediction_type": "v_prediction"}),
    ("sd21_zero_snr", "dpm++2m", 10, "karras", KARRAS),
    ("sd21_zero_snr", "euler", 25, "karras", KARRAS),
    ("sd_turbo", "euler", 2, "", {}),
    ("sd_turbo", "euler", 3, "", {}),
    ("sd_turbo", "euler_a", 2, "", {}),
    ("sd_turbo", "euler_a", 3, "", {}),
    # Trailing spacing with 61 of 1000 steps: numpy's arange gives 62 timesteps, the last -1.
    ("trailing", "ddim", 61, "", {}),
    ("trailing", "euler", 61, "", {}),
    ("trailing", "dpm++2m", 61, "", {}),
]
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


def run(config, method, steps, args):
    sched = METHODS[method].from_config(config, **args)
    sched.set_timesteps(steps)
    step_index = {"i": 0}
    fixed_noise = lambda *a, **kw: noise(step_index["i"]).to(kw.get("dtype") or torch.float64)
    for module in (euler_a_module, lcm_module, dpm_module):
        module.randn_tensor = fixed_noise
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
    if args:
        entry["args"] = args
    return entry


def main():
    out = {"diffusers": diffusers.__version__, "torch": torch.__version__, "start": [float(v) for v in start().flatten()], "configs": {}}
    for name, config in CONFIGS.items():
        ac = DDIMScheduler.from_config(config).alphas_cumprod
        cases = {}
        for method in METHODS:
            for steps in (1, 4, 25):
                cases[f"{method}/{steps}"] = run(config, method, steps, {})
        for config_name, method, steps, label, args in EXTRA:
            if config_name == name:
                key = f"{method}/{steps}" + (f" {label}" if label else "")
                assert key not in cases, key
                cases[key] = run(config, method, steps, args)
        out["configs"][name] = {"config": config, "alphas_cumprod": [float(a) for a in ac], "cases": cases}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "scheduler_reference.json")
    with open(path, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
