#!/usr/bin/env python3
"""LoRA and VAE-swap reference data for tests/lora.rs and tests/vae_swap.rs,
made with diffusers + PEFT themselves.

1. Builds the tiny pipeline of tiny_reference.py (same formula weights).
2. Writes one tiny LoRA, from a formula, in the two formats found in the wild:
   - kohya (`lora_unet_…`/`lora_te_…`, `lora_down`/`lora_up`, `alpha`), with a
     LoCon 3x3 conv;
   - diffusers/PEFT (`unet.….lora_A.weight`/`lora_B.weight`, no alpha).
3. Loads each into the diffusers pipeline with `load_lora_weights`, fuses it
   at `SCALE` (`fuse_lora(lora_scale=…)`, which merges in f32 as the engine
   does), and records the text encoder's output for a prompt, the UNet's
   output on a fixed input given those embeddings, and a whole image.

4. Swaps the VAE for one with other weights (`formula(name + ".ft")`, which
   the Rust test writes itself) and records the image.

Output: tests/data/lora/{kohya,peft}.safetensors and tests/data/lora_reference.json.

    python3 -m venv v && v/bin/pip install torch diffusers transformers peft numpy
    v/bin/python scripts/lora_reference.py
"""
import json
import math
import os

import numpy as np
import torch
from safetensors.numpy import save_file

from tiny_reference import components, formula, host_noise, tokenizer
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")
RANK = 4
ALPHA = 2.0  # so alpha / rank = 0.5 matters
SCALE = 0.8  # a task's `lora.weight` of 80
PROMPT = "a cat on the stairs"
CASE = dict(steps=2, guidance=6.0, seed=0, width=64, height=64)

# (component, module path, alpha or None). Linear and 1x1 layers of both
# models, and one 3x3 conv (LoCon).
UNET_MODULES = [
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k",
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_v",
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0",
    "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_q",
    "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k",
    "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v",
    "down_blocks.1.attentions.0.transformer_blocks.0.ff.net.0.proj",
    "down_blocks.1.attentions.0.transformer_blocks.0.ff.net.2",
    "down_blocks.1.attentions.0.proj_in",
    "mid_block.attentions.0.transformer_blocks.0.attn2.to_k",
    "mid_block.attentions.0.proj_out",
    "up_blocks.0.attentions.2.transformer_blocks.0.attn1.to_v",
    "down_blocks.0.resnets.0.conv1",
    "down_blocks.0.resnets.1.time_emb_proj",
]
TE_MODULES = [f"text_model.encoder.layers.{i}.{m}" for i in (0, 4)
              for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")]


def lora_formula(name, shape, amplitude):
    n = int(np.prod(shape))
    phase = (sum(name.encode()) % 997) * 0.013
    return (amplitude * np.cos(0.7 * np.arange(n) + phase)).astype(np.float32).reshape(shape)


def lora_pairs(model, modules):
    """{module: (down, up, alpha)} shaped for `model`'s layers.

    One alpha for every module, as kohya's trainer writes them. diffusers
    mishandles files whose modules differ in alpha (some modules get another
    module's alpha through PEFT's `alpha_pattern`), and gives a module without
    alpha the file's most common one where kohya's own merge takes alpha =
    rank; the engine follows kohya, and tests/lora.rs checks those rules on
    their own."""
    state = model.state_dict()
    pairs = {}
    for module in modules:
        # transformers 5 names CLIP's tensors without the `text_model.` that LoRA files carry.
        w = state.get(module + ".weight", state.get(module.removeprefix("text_model.") + ".weight"))
        out_ch, in_ch = w.shape[0], w.shape[1]
        if w.dim() == 4:
            k = w.shape[2]
            down = lora_formula(module + ".down", (RANK, in_ch, k, k), 0.3 / math.sqrt(in_ch * k * k))
            up = lora_formula(module + ".up", (out_ch, RANK, 1, 1), 0.5)
        else:
            down = lora_formula(module + ".down", (RANK, in_ch), 0.3 / math.sqrt(in_ch))
            up = lora_formula(module + ".up", (out_ch, RANK), 0.5)
        alpha = ALPHA
        pairs[module] = (down, up, alpha)
    return pairs


def write_kohya(path, unet_pairs, te_pairs):
    tensors = {}
    for prefix, pairs in (("lora_unet_", unet_pairs), ("lora_te_", te_pairs)):
        for module, (down, up, alpha) in pairs.items():
            name = prefix + module.replace(".", "_")
            tensors[name + ".lora_down.weight"] = down
            tensors[name + ".lora_up.weight"] = up
            tensors[name + ".alpha"] = np.array(alpha, dtype=np.float32)
    save_file(tensors, path, metadata={"ss_network_module": "networks.lora"})


def write_peft(path, unet_pairs, te_pairs):
    """PEFT keys carry no alpha: the scale is 1 (alpha = rank), so B is scaled here by the kohya file's alpha/rank."""
    tensors = {}
    for prefix, pairs in (("unet.", unet_pairs), ("text_encoder.", te_pairs)):
        for module, (down, up, alpha) in pairs.items():
            ratio = alpha / RANK
            tensors[prefix + module + ".lora_A.weight"] = down
            tensors[prefix + module + ".lora_B.weight"] = (up * ratio).astype(np.float32)
    save_file(tensors, path)


def pipeline():
    unet, vae, text_encoder, scheduler = components()
    tok = tokenizer(os.path.join("/tmp", "hydrogen-tiny-tokenizer"))
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tok, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def fixed_sample():
    n = 4 * 8 * 8
    return torch.tensor([math.sin(0.37 * k + 1.0) for k in range(n)], dtype=torch.float32).reshape(1, 4, 8, 8)


def observe(pipe):
    with torch.no_grad():
        ids = pipe.tokenizer(PROMPT, padding="max_length", max_length=77, return_tensors="pt").input_ids
        hidden = pipe.text_encoder(ids)[0]
        unet_out = pipe.unet(fixed_sample(), 500, encoder_hidden_states=hidden).sample
        f = pipe.vae_scale_factor
        h, w = CASE["height"] // f, CASE["width"] // f
        latents = torch.from_numpy(host_noise(CASE["seed"], 0, 0, 4 * h * w).reshape(1, 4, h, w))
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        img = pipe(PROMPT, height=CASE["height"], width=CASE["width"], num_inference_steps=CASE["steps"],
                   guidance_scale=CASE["guidance"], latents=latents, output_type="np").images[0]
    return {
        "text_hidden": [float(v) for v in hidden.flatten()],
        "unet_out": [float(v) for v in unet_out.flatten()],
        "image_hwc_u8": [int(v) for v in (img * 255).round().astype(np.uint8).flatten()],
    }


def main():
    torch.set_num_threads(2)
    base = pipeline()
    unet_pairs = lora_pairs(base.unet, UNET_MODULES)
    te_pairs = lora_pairs(base.text_encoder, TE_MODULES)
    os.makedirs(os.path.join(DATA, "lora"), exist_ok=True)
    files = {"kohya": "kohya.safetensors", "peft": "peft.safetensors"}
    write_kohya(os.path.join(DATA, "lora", files["kohya"]), unet_pairs, te_pairs)
    write_peft(os.path.join(DATA, "lora", files["peft"]), unet_pairs, te_pairs)

    data = {"scale": SCALE, "prompt": PROMPT, "case": CASE, "sample": [float(v) for v in fixed_sample().flatten()],
            "timestep": 500, "base": observe(base), "lora": {}}
    for fmt, name in files.items():
        pipe = pipeline()
        pipe.load_lora_weights(os.path.join(DATA, "lora"), weight_name=name, adapter_name=fmt)
        pipe.fuse_lora(components=["unet", "text_encoder"], lora_scale=SCALE)
        data["lora"][fmt] = observe(pipe)
    swapped = pipeline()
    vae = AutoencoderKL.from_config(swapped.vae.config)
    with torch.no_grad():
        for name, p in vae.state_dict().items():
            p.copy_(torch.from_numpy(formula(name + ".ft", tuple(p.shape))))
    swapped.vae = vae.eval()
    data["vae_swap"] = {"image_hwc_u8": observe(swapped)["image_hwc_u8"]}
    a, b = data["lora"]["kohya"]["unet_out"], data["lora"]["peft"]["unet_out"]
    print("kohya vs peft, UNet output max diff:", max(abs(x - y) for x, y in zip(a, b)))
    path = os.path.join(DATA, "lora_reference.json")
    with open(path, "w") as f:
        json.dump(data, f)
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
