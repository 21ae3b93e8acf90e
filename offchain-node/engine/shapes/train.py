#!/usr/bin/env python3
"""Trains Hydrogen's small Stable Diffusion model on `shapes_data.py` images.

A real diffusers pipeline, only small: a CLIP text encoder with its own BPE
vocabulary of the captions' words, an AutoencoderKL that maps 64x64 images to
4x16x16 latents, and a UNet2DConditionModel with cross-attention, trained as
Stable Diffusion is (epsilon prediction, SD 1.x's scaled-linear betas,
captions dropped 10% of the time for classifier-free guidance). Everything is
seeded; on the same torch build and thread count a rerun gives the same bits.

Stages, each skipped when its output exists under --work (so an interrupted
run resumes): data (rendered images), vae, latents, unet (checkpointed every
500 steps), export (the diffusers folder at --out, f32 safetensors, plus
loss.csv and samples.png).

    python3 -m venv v && v/bin/pip install torch diffusers transformers pillow numpy
    v/bin/python train.py --work /tmp/shapes-work --out model --max-steps 5500
    v/bin/python train.py --work /tmp/shapes-work --out model --max-steps 8500 --decay-from 5500 --minutes 58

(the committed model's two sittings; README.md has the details).
"""
import argparse
import csv
import json
import math
import os
import random
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

import shapes_data

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from tiny_reference import bytes_to_unicode  # noqa: E402  (CLIP's byte-to-symbol table)

SEED = 20261130
BATCH = 32
LATENT = 16  # 64x64 images, 3 VAE blocks: a factor of 4
BETAS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def write_tokenizer(folder):
    """A CLIP-format BPE vocabulary: every byte symbol (so any prompt still
    tokenizes) plus merges that build each caption word, in CLIPTokenizer's
    files. Words come out as one token each where the merge order allows."""
    base = bytes_to_unicode()
    tokens = base + [c + "</w>" for c in base]
    merges = []
    for w in shapes_data.words():
        parts = list(w[:-1]) + [w[-1] + "</w>"]
        while len(parts) > 1:
            pair = f"{parts[0]} {parts[1]}"
            merged = parts[0] + parts[1]
            if pair not in merges:
                merges.append(pair)
                tokens.append(merged)
            parts = [merged] + parts[2:]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"),
                        pad_token="<|endoftext|>", model_max_length=77)
    tok.save_pretrained(folder)
    return tok


def new_vae():
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                         up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(32, 32, 64),
                         layers_per_block=1, latent_channels=4, norm_num_groups=32, sample_size=64)


def new_text_encoder(vocab_size):
    return CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, hidden_size=128, intermediate_size=512,
                                        num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=77,
                                        hidden_act="quick_gelu", bos_token_id=vocab_size - 2,
                                        eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1))


def new_unet():
    return UNet2DConditionModel(sample_size=LATENT, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(32, 64, 128),
                                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                                cross_attention_dim=128, attention_head_dim=4, norm_num_groups=32)


def stage_data(work, n):
    path = os.path.join(work, "data.npz")
    if os.path.exists(path):
        return np.load(path, allow_pickle=True)
    rng = random.Random(SEED)
    scenes = [shapes_data.sample(rng) for _ in range(n)]
    images = np.stack([np.asarray(shapes_data.draw(s)) for s in scenes])
    np.savez(path, images=images, scenes=np.array([json.dumps(s) for s in scenes]))
    return np.load(path, allow_pickle=True)


def to_tensor(images):
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def stage_vae(work, images, steps, log):
    """Trains the autoencoder for `steps` in all, resuming from its last save
    (every 250 steps): AdamW 8e-4, cosine-decayed to 5e-5."""
    path = os.path.join(work, "vae")
    done_path = os.path.join(path, "steps.json")
    done = json.load(open(done_path))["steps"] if os.path.exists(done_path) else 0
    if done >= steps:
        return AutoencoderKL.from_pretrained(path)
    torch.manual_seed(SEED + done)
    vae = AutoencoderKL.from_pretrained(path) if done else new_vae()
    opt = torch.optim.AdamW(vae.parameters(), lr=8e-4, weight_decay=0.0)
    gen = np.random.default_rng(SEED + done)
    for step in range(done, steps):
        for g in opt.param_groups:
            g["lr"] = 5e-5 + (8e-4 - 5e-5) * 0.5 * (1 + math.cos(math.pi * step / steps))
        x = to_tensor(images[gen.integers(0, len(images), 16)])
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        loss = F.mse_loss(rec, x) + 0.5 * F.l1_loss(rec, x) + 1e-6 * post.kl().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            log("vae", step, loss.item())
        if (step + 1) % 250 == 0 or step + 1 == steps:
            vae.save_pretrained(path)
            with open(done_path, "w") as f:
                json.dump({"steps": step + 1}, f)
    return vae


@torch.no_grad()
def stage_latents(work, vae, images):
    path = os.path.join(work, "latents.pt")
    if os.path.exists(path):
        return torch.load(path)
    vae.eval()
    lat = torch.cat([vae.encode(to_tensor(images[i:i + 256])).latent_dist.mean for i in range(0, len(images), 256)])
    scale = 1.0 / lat.std().item()
    torch.save({"latents": lat, "scaling_factor": scale}, path)
    return torch.load(path)


def learning_rate(step, decay_from, max_steps):
    """4e-4 after a 200-step warm-up; from `decay_from` on, cosine-decayed to
    2e-5 at `max_steps` (the EMA then averages over a settling model)."""
    if step < decay_from or max_steps <= decay_from:
        return 4e-4 * min(1.0, (step + 1) / 200)
    t = (step - decay_from) / (max_steps - decay_from)
    return 2e-5 + (4e-4 - 2e-5) * 0.5 * (1 + math.cos(math.pi * t))


def stage_unet(work, tok, latents, scenes, minutes, max_steps, decay_from, log):
    ckpt = os.path.join(work, "unet.ckpt")
    torch.manual_seed(SEED)
    unet, text = new_unet(), new_text_encoder(len(tok))
    ema_unet, ema_text = new_unet(), new_text_encoder(len(tok))
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=4e-4, weight_decay=1e-2)
    step = 0
    if os.path.exists(ckpt):
        st = torch.load(ckpt)
        for m, k in ((unet, "unet"), (text, "text"), (ema_unet, "ema_unet"), (ema_text, "ema_text")):
            m.load_state_dict(st[k])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        torch.set_rng_state(st["rng"])
    else:
        ema_unet.load_state_dict(unet.state_dict())
        ema_text.load_state_dict(text.state_dict())
    sched = DDPMScheduler(**BETAS)
    snr = sched.alphas_cumprod / (1 - sched.alphas_cumprod)
    lat, scale = latents["latents"], latents["scaling_factor"]
    started = time.time()
    rng = random.Random(SEED + step)
    while step < max_steps and time.time() - started < minutes * 60:
        idx = torch.randint(0, len(lat), (BATCH,))
        x0 = lat[idx] * scale
        caps = ["" if rng.random() < 0.1 else shapes_data.caption(json.loads(str(scenes[i])), rng) for i in idx.tolist()]
        ids = tok(caps, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        t = torch.randint(0, 1000, (BATCH,))
        noise = torch.randn_like(x0)
        xt = sched.add_noise(x0, noise, t)
        pred = unet(xt, t, encoder_hidden_states=text(ids).last_hidden_state).sample
        # Min-SNR-5 weighting (Hang et al. 2023): converges several times faster.
        w = torch.clamp(snr[t], max=5.0) / snr[t]
        loss = (w * ((pred - noise) ** 2).mean(dim=(1, 2, 3))).mean()
        for g in opt.param_groups:
            g["lr"] = learning_rate(step, decay_from, max_steps)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, m in ((ema_unet, unet), (ema_text, text)):
                for pe, pm in zip(e.parameters(), m.parameters()):
                    pe.mul_(decay).add_(pm, alpha=1 - decay)
        step += 1
        if step % 50 == 0:
            log("unet", step, loss.item())
        if step % 500 == 0:
            save_ckpt(ckpt, unet, text, ema_unet, ema_text, opt, step)
    save_ckpt(ckpt, unet, text, ema_unet, ema_text, opt, step)
    return ema_unet, ema_text, step


def save_ckpt(path, unet, text, ema_unet, ema_text, opt, step):
    torch.save({"unet": unet.state_dict(), "text": text.state_dict(), "ema_unet": ema_unet.state_dict(),
                "ema_text": ema_text.state_dict(), "opt": opt.state_dict(), "step": step,
                "rng": torch.get_rng_state()}, path + ".tmp")
    os.replace(path + ".tmp", path)


def export(out, work, tok, vae, unet, text, scale):
    """Writes the pipeline in diffusers' layout. The weights are stored in f16
    under the plain file names (half the size; diffusers and Hydrogen's engine
    both load them into whatever precision they compute in)."""
    vae.register_to_config(scaling_factor=scale)
    scheduler = DDIMScheduler(**BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if os.path.exists(out):
        shutil.rmtree(out)
    pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
    pipe.to(torch.float32)
    # transformers 5 writes tokenizer.json only; CLIPTokenizer's own files go too.
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(work, "tokenizer", name), os.path.join(out, "tokenizer", name))
    return pipe


def plot_loss(csv_path, png_path):
    """The UNet's training loss (mean of each 500 steps) as a small PNG."""
    from PIL import Image, ImageDraw
    rows = [r for r in csv.DictReader(open(csv_path)) if r["stage"] == "unet"]
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    loss = [float(r["loss"]) for r in rows]
    k = 10
    pts = [(steps[i + k - 1], sum(loss[i:i + k]) / k) for i in range(0, len(loss) - k + 1, k)]
    w, h, m = 640, 320, 48
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    lo, hi = 0.0, max(p[1] for p in pts) * 1.05
    sx = lambda s: m + (w - 2 * m) * s / max(steps)
    sy = lambda v: h - m - (h - 2 * m) * (v - lo) / (hi - lo)
    d.line([(m, m), (m, h - m), (w - m, h - m)], fill="black")
    d.line([(sx(s), sy(v)) for s, v in pts], fill=(40, 80, 220), width=2)
    d.text((m, 12), f"UNet + text encoder training loss (min-SNR-5 weighted MSE), mean of {k * 50} steps", fill="black")
    d.text((m - 40, m - 6), f"{hi:.3f}", fill="black")
    d.text((m - 40, h - m - 6), f"{lo:.3f}", fill="black")
    d.text((w - m - 60, h - m + 8), f"step {max(steps)}", fill="black")
    img.save(png_path)


@torch.no_grad()
def sample_grid(pipe, path):
    from PIL import Image
    prompts = ["a red circle", "a large blue square at the top left on a white background",
               "a small yellow star at the bottom right on a black background", "two green triangles on a gray background",
               "a purple cross in the center on a yellow background", "a large white circle at the right on a red background",
               "three small orange circles on a blue background", "a black triangle at the top on a white background"]
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    imgs = []
    for k, p in enumerate(prompts):
        g = torch.Generator().manual_seed(k)
        imgs.append(pipe(p, height=64, width=64, num_inference_steps=20, guidance_scale=5.0, generator=g).images[0])
    grid = Image.new("RGB", (64 * len(imgs), 64))
    for k, im in enumerate(imgs):
        grid.paste(im, (64 * k, 0))
    grid.save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--images", type=int, default=30000)
    ap.add_argument("--vae-steps", type=int, default=2800)
    ap.add_argument("--minutes", type=float, default=38, help="UNet training time budget")
    ap.add_argument("--max-steps", type=int, default=100000)
    ap.add_argument("--decay-from", type=int, default=100000,
                    help="UNet step from which the learning rate is cosine-decayed to --max-steps")
    a = ap.parse_args()
    torch.manual_seed(SEED)
    os.makedirs(a.work, exist_ok=True)
    log_path = os.path.join(a.work, "loss.csv")
    new_log = not os.path.exists(log_path)
    log_file = open(log_path, "a", newline="")
    writer = csv.writer(log_file)
    if new_log:
        writer.writerow(["stage", "step", "loss", "seconds"])
    t0 = time.time()

    def log(stage, step, loss):
        writer.writerow([stage, step, f"{loss:.5f}", f"{time.time() - t0:.0f}"])
        log_file.flush()
        print(f"{stage} {step} {loss:.4f} {time.time() - t0:.0f}s", flush=True)

    tok = write_tokenizer(os.path.join(a.work, "tokenizer"))
    data = stage_data(a.work, a.images)
    vae = stage_vae(a.work, data["images"], a.vae_steps, log)
    latents = stage_latents(a.work, vae, data["images"])
    print(f"latent scaling factor {latents['scaling_factor']:.4f}", flush=True)
    unet, text, steps = stage_unet(a.work, tok, latents, data["scenes"], a.minutes, a.max_steps, a.decay_from, log)
    pipe = export(a.out, a.work, tok, vae, unet, text, latents["scaling_factor"])
    shutil.copy(log_path, os.path.join(a.out, "..", "loss.csv"))
    plot_loss(log_path, os.path.join(a.out, "..", "loss.png"))
    sample_grid(pipe, os.path.join(a.out, "..", "diffusers-samples.png"))
    print(f"exported {a.out} after {steps} UNet steps", flush=True)


if __name__ == "__main__":
    main()
