#!/usr/bin/env python3
"""Writes a Stable Diffusion 1.5-shaped pipeline with random weights in the
diffusers layout (f32 files plus the `.fp16` variant), for benchmarks where no
real weights can be downloaded.

The configs are SD 1.5's (runwayml/stable-diffusion-v1-5): the 860M-parameter
UNet, the KL VAE, CLIP ViT-L/14's text tower and its 49408-token vocabulary,
built from OpenAI's `bpe_simple_vocab_16e6.txt` (shipped in the
`instant-clip-tokenizer` crate). Weights are PyTorch's default initialisation
with a fixed seed, so the activations stay in a trained model's range.

    python3 scripts/sd15_random.py --vocab bpe_simple_vocab_16e6.txt --out /tmp/sd15-random
"""
import argparse
import json
import os
import sys
import tempfile

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_reference import bytes_to_unicode  # noqa: E402

UNET = dict(
    act_fn="silu", attention_head_dim=8, block_out_channels=[320, 640, 1280, 1280], center_input_sample=False,
    cross_attention_dim=768, down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"], downsample_padding=1,
    flip_sin_to_cos=True, freq_shift=0, in_channels=4, layers_per_block=2, mid_block_scale_factor=1, norm_eps=1e-5,
    norm_num_groups=32, out_channels=4, sample_size=64, up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)
VAE = dict(
    act_fn="silu", block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4, in_channels=3,
    latent_channels=4, layers_per_block=2, norm_num_groups=32, out_channels=3, sample_size=512,
    up_block_types=["UpDecoderBlock2D"] * 4)
CLIP = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768,
    bos_token_id=0, eos_token_id=2, pad_token_id=1)
SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)


def write_tokenizer(bpe_path, out):
    """vocab.json + merges.txt as OpenAI's CLIP builds them from its BPE file."""
    merges = open(bpe_path, encoding="utf-8").read().split("\n")[1:49152 - 256 - 2 + 1]
    symbols = bytes_to_unicode()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    assert len(tokens) == 49408, len(tokens)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(tokens)}, f, ensure_ascii=False)
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(os.path.join(out, "vocab.json"), os.path.join(out, "merges.txt"), model_max_length=77,
                         pad_token="<|endoftext|>")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", required=True, help="OpenAI's bpe_simple_vocab_16e6.txt")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(a.seed)
    with torch.device(device):
        unet = UNet2DConditionModel(**UNET)
        vae = AutoencoderKL(**VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP))
    tokenizer = write_tokenizer(a.vocab, tempfile.mkdtemp())
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=PNDMScheduler(**SCHEDULER),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(a.out)
    pipe.to(torch.float16).save_pretrained(a.out, variant="fp16")
    print(json.dumps({"out": a.out, "unet_parameters": sum(p.numel() for p in unet.parameters())}))


if __name__ == "__main__":
    main()
