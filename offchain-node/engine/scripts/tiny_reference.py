#!/usr/bin/env python3
"""Reference data for the engine's tests, made with diffusers itself.

1. Builds diffusers' unit-test-sized Stable Diffusion components (the sizes of
   `get_dummy_components` in diffusers' tests), fills every weight from a
   formula the Rust tests share (`formula_weights`), and records each
   component's config and its exact safetensors key names and shapes.
2. Runs the diffusers pipeline on them from the engine's host noise
   (ChaCha20 + Box-Muller, re-implemented here from the spec in src/noise.rs)
   and records the images.

Output: tests/data/tiny_reference.json. With --save DIR it also writes the
pipeline with `save_pretrained` (the real diffusers layout) for manual checks.

    python3 -m venv v && v/bin/pip install torch diffusers transformers numpy
    v/bin/python scripts/tiny_reference.py
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))

# A small CLIP-format vocabulary: byte symbols, a few merges, the two specials.
MERGES = ["i n", "t h", "a n", "r e", "a r", "e r", "th e</w>", "in g</w>", "o u", "o n", "s t", "o r",
          "e n", "o n</w>", "a l", "a t", "e r</w>", "i t", "i n</w>", "t o</w>"]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def tiny_vocab():
    base = bytes_to_unicode()
    tokens = base + [c + "</w>" for c in base] + [m.replace(" ", "") for m in MERGES] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}


def formula_weights(model):
    """Deterministic weights shared with tests/common/mod.rs::formula."""
    with torch.no_grad():
        for name, p in model.state_dict().items():
            p.copy_(torch.from_numpy(formula(name, tuple(p.shape))).to(p.dtype))


def formula(name, shape):
    n = int(np.prod(shape)) if shape else 1
    k = np.arange(n, dtype=np.float64)
    phase = (sum(name.encode()) % 1000) * 0.01
    wave = np.sin(0.3 * k + phase)
    if len(shape) == 1 and name.endswith(".weight"):
        v = 1.0 + 0.1 * wave
    elif len(shape) == 1:
        v = 0.02 * wave
    else:
        v = wave * 1.5 / math.sqrt(n / shape[0])
    return v.astype(np.float32).reshape(shape)


def rotl(x, n):
    return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF


def chacha20_block(key_words, counter):
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574] + key_words + [counter & 0xFFFFFFFF, counter >> 32, 0, 0]
    x = s[:]

    def qr(a, b, c, d):
        x[a] = (x[a] + x[b]) & 0xFFFFFFFF; x[d] = rotl(x[d] ^ x[a], 16)
        x[c] = (x[c] + x[d]) & 0xFFFFFFFF; x[b] = rotl(x[b] ^ x[c], 12)
        x[a] = (x[a] + x[b]) & 0xFFFFFFFF; x[d] = rotl(x[d] ^ x[a], 8)
        x[c] = (x[c] + x[d]) & 0xFFFFFFFF; x[b] = rotl(x[b] ^ x[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return [(a + b) & 0xFFFFFFFF for a, b in zip(x, s)]


def host_noise(seed, image, stream, n):
    """src/noise.rs, from its written spec."""
    key = struct.pack("<QQQQ", seed, image, stream, 0)
    key_words = list(struct.unpack("<8I", key))
    words = []
    counter = 0
    out = []
    while len(out) < n:
        while len(words) < 4:
            block = chacha20_block(key_words, counter)
            counter += 1
            words += [block[i] | (block[i + 1] << 32) for i in range(0, 16, 2)]
        u1 = ((words.pop(0) >> 11) + 0.5) * 2.0 ** -53
        u2 = ((words.pop(0) >> 11) + 0.5) * 2.0 ** -53
        r = math.sqrt(-2.0 * math.log(u1))
        out += [r * math.cos(2 * math.pi * u2), r * math.sin(2 * math.pi * u2)]
    return np.array(out[:n], dtype=np.float32)


def components():
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32)
    vae = AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"], up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
        num_attention_heads=4, num_hidden_layers=5, pad_token_id=1, vocab_size=1000))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False)
    for m in (unet, vae, text_encoder):
        formula_weights(m)
        m.eval()
    return unet, vae, text_encoder, scheduler


def tokenizer(tmp):
    os.makedirs(tmp, exist_ok=True)
    with open(os.path.join(tmp, "vocab.json"), "w") as f:
        json.dump(tiny_vocab(), f)
    with open(os.path.join(tmp, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    return CLIPTokenizer(os.path.join(tmp, "vocab.json"), os.path.join(tmp, "merges.txt"), model_max_length=77)


def manifest(model):
    from safetensors.torch import save
    return [[k, list(v.shape)] for k, v in sorted(model.state_dict().items())]


CASES = [
    # (scheduler, steps, guidance, seed, images, width, height, prompt, negative)
    ("ddim", 2, 6.0, 0, 1, 64, 64, "a photo of an astronaut", ""),
    ("dpm++2m", 3, 5.0, 7, 2, 48, 64, "the red barn in the rain", "blurry"),
    ("euler", 3, 7.5, 3, 1, 56, 72, "a cat on the stairs", ""),
]


def run_case(pipe, case):
    method, steps, guidance, seed, images, width, height, prompt, negative = case
    sched_cls = {"ddim": DDIMScheduler, "dpm++2m": DPMSolverMultistepScheduler, "euler": EulerDiscreteScheduler}[method]
    pipe.scheduler = sched_cls.from_config(pipe.scheduler.config)
    out = []
    for i in range(images):
        f = pipe.vae_scale_factor
        n = 4 * (height // f) * (width // f)
        latents = torch.from_numpy(host_noise(seed, i, 0, n).reshape(1, 4, height // f, width // f))
        img = pipe(prompt, negative_prompt=negative, height=height, width=width, num_inference_steps=steps,
                   guidance_scale=guidance, latents=latents, output_type="np").images[0]
        out.append([int(v) for v in (img * 255).round().astype(np.uint8).flatten()])
    return {"scheduler": method, "steps": steps, "guidance": guidance, "seed": seed, "num_images": images,
            "width": width, "height": height, "prompt": prompt, "negative_prompt": negative, "images_hwc_u8": out}


def main():
    torch.set_num_threads(2)
    unet, vae, text_encoder, scheduler = components()
    tok = tokenizer(os.path.join("/tmp", "hydrogen-tiny-tokenizer"))
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tok, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    data = {
        "noise_first8_seed0_image0": [float(v) for v in host_noise(0, 0, 0, 8)],
        "merges": MERGES,
        "components": {
            "unet": {"config": dict(unet.config), "tensors": manifest(unet)},
            "vae": {"config": dict(vae.config), "tensors": manifest(vae)},
            "text_encoder": {"config": text_encoder.config.to_dict(), "tensors": manifest(text_encoder)},
            "scheduler": {"config": dict(scheduler.config)},
        },
        "cases": [run_case(pipe, c) for c in CASES],
    }
    if "--save" in sys.argv:
        pipe.save_pretrained(sys.argv[sys.argv.index("--save") + 1])
    path = os.path.join(HERE, "..", "tests", "data", "tiny_reference.json")
    with open(path, "w") as f:
        json.dump(data, f, default=lambda o: list(o) if isinstance(o, tuple) else str(o))
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
