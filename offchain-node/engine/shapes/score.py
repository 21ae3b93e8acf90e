#!/usr/bin/env python3
"""How well the trained model follows its prompt: held-out captions, images
from Hydrogen's engine, and a simple detector that reads colour, shape, size,
position, count and background back from each image.

    score.py prompts --out prompts.json [--count 200 --seed 777]   # the held-out set
    score.py detect --truth                        # the detector on true renderings
    score.py images --dir DIR [--prompts prompts.json]   # images DIR/0000.png... from
        the engine: cargo run --release -p hydrogen-engine --bin generate -- \
            --model model --prompts prompts.json --out DIR --width 64 --height 64 \
            --steps 20 --guidance 5 --backend cpu

Prints per-attribute accuracy and writes `<DIR>/scores.json`; with --grid
PATH also a grid of the first images with their prompts' attributes.
"""
import argparse
import json
import math
import os
import random
from collections import deque

import numpy as np
from PIL import Image, ImageDraw

import shapes_data as sd

HERE = os.path.dirname(os.path.abspath(__file__))
# The held-out set's seed: the training data (train.py) uses another.
HELDOUT_SEED = 777


def heldout(count, seed):
    rng = random.Random(seed)
    out = []
    for k in range(count):
        scene = sd.sample(rng)
        out.append({"prompt": sd.caption(scene), "seed": k, **{a: scene[a] for a in
                    ("shape", "colour", "background", "size", "position", "count")}})
    return out


def nearest(rgb, table):
    return min(table, key=lambda name: sum((a - b) ** 2 for a, b in zip(rgb, table[name])))


def components(mask):
    """4-connected components of a boolean mask, as lists of (y, x)."""
    seen = np.zeros_like(mask, dtype=bool)
    comps = []
    h, w = mask.shape
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        q, comp = deque([(y0, x0)]), []
        seen[y0, x0] = True
        while q:
            y, x = q.popleft()
            comp.append((y, x))
            for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not seen[yy, xx]:
                    seen[yy, xx] = True
                    q.append((yy, xx))
        comps.append(comp)
    return comps


def shape_mask(shape, cx, cy, r):
    img = Image.new("L", (sd.SIZE * sd.SUPER, sd.SIZE * sd.SUPER), 0)
    sd.paint_shape(ImageDraw.Draw(img), shape, cx, cy, r, 255)
    return np.asarray(img.resize((sd.SIZE, sd.SIZE), Image.BOX)) > 127


def unit_box(shape):
    """The shape's bounding box for centre (0, 0) and r = 1."""
    poly = sd.shape_polygon(shape, 0.0, 0.0, 1.0)
    if poly is None:
        return -1.0, -1.0, 1.0, 1.0
    xs, ys = [p[0] for p in poly], [p[1] for p in poly]
    return min(xs), min(ys), max(xs), max(ys)


def fit(comp_mask, ys, xs):
    """The shape, centre and radius whose rendering best overlaps the component (IoU)."""
    by0, by1, bx0, bx1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    best = None
    for shape in sd.SHAPES:
        ux0, uy0, ux1, uy1 = unit_box(shape)
        r = ((bx1 - bx0) / (ux1 - ux0) + (by1 - by0) / (uy1 - uy0)) / 2
        cx = bx0 - ux0 * r
        cy = by0 - uy0 * r
        m = shape_mask(shape, cx, cy, r)
        iou = (m & comp_mask).sum() / max(1, (m | comp_mask).sum())
        if best is None or iou > best[0]:
            best = (iou, shape, cx, cy, r)
    return best


def detect(img):
    a = np.asarray(img.convert("RGB")).astype(np.float64)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    bg_rgb = np.median(border, axis=0)
    background = nearest(bg_rgb, sd.BACKGROUNDS)
    mask = np.linalg.norm(a - bg_rgb, axis=2) > 60
    comps = [c for c in components(mask) if len(c) >= 8]
    if not comps:
        return {"background": background, "count": 0}
    fg = np.array([a[y, x] for c in comps for y, x in c])
    colour = nearest(np.median(fg, axis=0), sd.COLOURS)
    big = max(comps, key=len)
    ys, xs = np.array([p[0] for p in big]), np.array([p[1] for p in big])
    cm = np.zeros(mask.shape, dtype=bool)
    cm[ys, xs] = True
    iou, shape, cx, cy, r = fit(cm, ys, xs)
    size = min(sd.RADIUS, key=lambda s: abs(sd.RADIUS[s] - r))
    position = min(sd.POSITIONS, key=lambda p: math.dist((cx, cy), sd.position_anchor(p, sd.RADIUS[size])))
    return {"background": background, "count": min(len(comps), 3), "colour": colour, "shape": shape,
            "size": size, "position": position, "iou": round(float(iou), 3)}


ATTRS = ["count", "colour", "shape", "size", "position", "background"]


def score(items, images):
    """Per-attribute accuracy of `images` against the `items` they were made for."""
    right = {a: [0, 0] for a in ATTRS + ["all"]}
    found = []
    for item, img in zip(items, images):
        d = detect(img)
        found.append(d)
        ok_all = True
        for a in ATTRS:
            if a == "position" and item["count"] != 1:
                continue  # several shapes: the caption names no position
            if a == "size" and item["count"] != 1:
                continue  # several shapes: sizes of shapes drawn apart are not compared
            ok = d.get(a) == item[a]
            right[a][0] += ok
            right[a][1] += 1
            ok_all &= ok
        right["all"][0] += ok_all
        right["all"][1] += 1
    return {a: (r[0] / r[1] if r[1] else None, r[1]) for a, r in right.items()}, found


def print_scores(acc, title):
    print(title)
    for a, (v, n) in acc.items():
        print(f"  {a:<11} {100 * v:5.1f}%  of {n}")


def grid(images, items, found, path, n=32):
    cols = 8
    rows = (min(n, len(images)) + cols - 1) // cols
    g = Image.new("RGB", (cols * 64 * 2, rows * 64 * 2), (255, 255, 255))
    for k, img in enumerate(images[:n]):
        g.paste(img.resize((128, 128), Image.NEAREST), ((k % cols) * 128, (k // cols) * 128))
    g.save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["prompts", "detect", "images"])
    ap.add_argument("--out", default=os.path.join(HERE, "prompts.json"))
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seed", type=int, default=HELDOUT_SEED)
    ap.add_argument("--truth", action="store_true")
    ap.add_argument("--dir")
    ap.add_argument("--prompts", default=os.path.join(HERE, "prompts.json"))
    ap.add_argument("--grid")
    a = ap.parse_args()
    if a.command == "prompts":
        with open(a.out, "w") as f:
            json.dump(heldout(a.count, a.seed), f, indent=1)
        return
    items = json.load(open(a.prompts))
    if a.command == "detect":
        rng = random.Random(a.seed)
        scenes = [sd.sample(rng) for _ in items]
        images = [sd.draw(s) for s in scenes]
        acc, _ = score(items, images)
        print_scores(acc, f"detector on the true renderings of {len(items)} held-out captions")
        return
    images = [Image.open(os.path.join(a.dir, f"{k:04d}.png")) for k in range(len(items))]
    acc, found = score(items, images)
    print_scores(acc, f"engine images in {a.dir} ({len(items)} held-out captions)")
    with open(os.path.join(a.dir, "scores.json"), "w") as f:
        json.dump({"accuracy": acc, "detected": found}, f, indent=1)
    if a.grid:
        grid(images, items, found, a.grid)


if __name__ == "__main__":
    main()
