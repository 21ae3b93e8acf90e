#!/usr/bin/env python3
"""PyTorch's own fp16 drift on the engine's tiny test model: the relative
error of diffusers' text encoder and UNet in fp16 against fp32, on the same
formula weights (scripts/tiny_reference.py) and host noise. The engine's
counterpart is `cargo run --release -p hydrogen-engine --example f16_error`.

    v/bin/python scripts/f16_sensitivity.py
"""
import copy
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_reference import components, host_noise  # noqa: E402


def relative(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def main():
    unet, _, text_encoder, _ = components()
    torch.manual_seed(0)
    ids = torch.randint(0, text_encoder.config.vocab_size, (1, 77))
    with torch.no_grad():
        ctx = text_encoder(ids)[0]
        ctx16 = copy.deepcopy(text_encoder).half()(ids)[0]
        print(f"text encoder: relative error fp16 vs fp32 {relative(ctx16, ctx):.2e}")
        unet16 = copy.deepcopy(unet).half()
        x = torch.from_numpy(host_noise(7, 0, 0, 4 * 32 * 32).reshape(1, 4, 32, 32))
        for t in (999, 500, 1):
            full = unet(x, t, encoder_hidden_states=ctx).sample
            half = unet16(x.half(), t, encoder_hidden_states=ctx16).sample
            print(f"unet t={t}: relative error fp16 vs fp32 {relative(half, full):.2e}")


if __name__ == "__main__":
    main()
