#!/usr/bin/env python3
"""Times diffusers on the engine's CPU benchmark (benches/cpu.rs runs this).

Same model as the engine's benchmark: diffusers' unit-test-sized components
with the shared formula weights (scripts/tiny_reference.py). Prints one JSON
line: {"unet_step_s": ..., "image_s": ...}.

    v/bin/python scripts/bench_diffusers.py --threads 2 --latent 32 --steps 10
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_reference import components, host_noise, tokenizer  # noqa: E402
from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--latent", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    unet, vae, text_encoder, scheduler = components()
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer("/tmp/hydrogen-tiny-tokenizer"),
                                   scheduler=DPMSolverMultistepScheduler.from_config(scheduler.config),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    l = a.latent
    x = torch.from_numpy(host_noise(0, 0, 0, 2 * 4 * l * l).reshape(2, 4, l, l))
    ctx = torch.zeros(2, 77, 32)
    with torch.no_grad():
        unet(x, 500, encoder_hidden_states=ctx)
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            unet(x, 500, encoder_hidden_states=ctx)
            times.append(time.perf_counter() - t0)
        step = sorted(times)[len(times) // 2]
        latents = torch.from_numpy(host_noise(0, 0, 0, 4 * l * l).reshape(1, 4, l, l))
        kw = dict(height=pipe.vae_scale_factor * l, width=pipe.vae_scale_factor * l, num_inference_steps=a.steps, guidance_scale=7.5, latents=latents, output_type="np")
        pipe("a photo of an astronaut", **kw)
        times = []
        for _ in range(max(1, a.repeats // 2)):
            t0 = time.perf_counter()
            pipe("a photo of an astronaut", **kw)
            times.append(time.perf_counter() - t0)
        image = sorted(times)[len(times) // 2]
    print(json.dumps({"unet_step_s": step, "image_s": image, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
