#!/usr/bin/env python3
"""Times diffusers on a diffusers-layout model (benches/gpu.rs runs this) and
writes the image it makes from the engine's host noise, so the two
implementations can be compared by pHash as well as by speed.

Prints one JSON line: {"unet_step_s", "vae_decode_s", "image_s",
"peak_allocated_bytes", "peak_reserved_bytes", "image", "torch", "device"}.

    python3 scripts/bench_diffusers_model.py --model /tmp/sd15-random --dtype f16 --out /tmp/bench
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_reference import host_noise  # noqa: E402
from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f16")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompt", default="a photograph of an astronaut riding a horse")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if a.dtype == "f16" else torch.float32
    kw = dict(torch_dtype=dtype, safety_checker=None, requires_safety_checker=False)
    if a.dtype == "f16":
        kw["variant"] = "fp16"
    pipe = StableDiffusionPipeline.from_pretrained(a.model, **kw).to(device)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def timed(f):
        f()
        sync()
        times = []
        for _ in range(max(1, a.repeats)):
            t0 = time.perf_counter()
            f()
            sync()
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    l = a.size // pipe.vae_scale_factor
    with torch.no_grad():
        cond, uncond = pipe.encode_prompt(a.prompt, device, 1, True, "")
        ctx = torch.cat([uncond, cond])
        x = torch.from_numpy(host_noise(a.seed, 0, 0, 2 * 4 * l * l).reshape(2, 4, l, l)).to(device, dtype)
        step = timed(lambda: pipe.unet(x, 500, encoder_hidden_states=ctx))
        z = x[:1] / pipe.vae.config.scaling_factor
        decode = timed(lambda: pipe.vae.decode(z))
        latents = torch.from_numpy(host_noise(a.seed, 0, 0, 4 * l * l).reshape(1, 4, l, l)).to(device, dtype)
        run = lambda: pipe(a.prompt, negative_prompt="", height=a.size, width=a.size, num_inference_steps=a.steps,
                           guidance_scale=7.5, latents=latents.clone())
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        image_s = timed(run)
        peak = (torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()) if device == "cuda" else (None, None)
        os.makedirs(a.out, exist_ok=True)
        path = os.path.join(a.out, f"diffusers-{a.dtype}.png")
        run().images[0].save(path)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(json.dumps({"unet_step_s": step, "vae_decode_s": decode, "image_s": image_s,
                      "peak_allocated_bytes": peak[0], "peak_reserved_bytes": peak[1],
                      "image": path, "torch": torch.__version__, "device": name}))


if __name__ == "__main__":
    main()
