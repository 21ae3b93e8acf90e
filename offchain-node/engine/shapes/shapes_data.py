#!/usr/bin/env python3
"""Captioned images of simple shapes, deterministic from a seed.

The training data of Hydrogen's small trained model (`train.py`) and the
ground truth of its quality score (`score.py`). Every image is 64x64: one
shape (or two or three alike) of a colour, a size and a position on a plain
background, and a caption that says so, e.g.

    a small red circle at the top left on a blue background
    two yellow stars on a black background

A caption may leave out the size, the position or the background (the model
then learns to fill them in), so short prompts such as "a red circle" work.

    python3 shapes_data.py --out DIR --count 16 --seed 7   # PNGs + captions.json
"""
import argparse
import json
import math
import os
import random

from PIL import Image, ImageDraw

SIZE = 64
# Drawn this many times larger, then downsampled: antialiased edges.
SUPER = 4

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "purple": (140, 60, 180),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
}
BACKGROUNDS = {**{k: COLOURS[k] for k in ("white", "black")}, "gray": (128, 128, 128),
               **{k: COLOURS[k] for k in ("blue", "green", "red", "yellow")}}
# Pairs too alike to tell apart at 64x64 are never drawn together.
LOW_CONTRAST = {("yellow", "white"), ("white", "yellow"), ("orange", "red"), ("orange", "yellow"),
                ("red", "orange"), ("yellow", "orange"), ("purple", "blue"), ("blue", "purple")}
SHAPES = ["circle", "square", "triangle", "star", "cross"]
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars", "cross": "crosses"}
# Half the width of the shape's box, in pixels.
RADIUS = {"small": 7, "medium": 11, "large": 16}
POSITIONS = ["top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right"]
COUNTS = {2: "two", 3: "three"}


def position_anchor(position, radius):
    """The centre (x, y) a position puts a shape of `radius` at."""
    lo, hi = radius + 3, SIZE - radius - 3
    x = {"left": lo, "right": hi}.get(next((w for w in ("left", "right") if w in position), ""), SIZE / 2)
    y = {"top": lo, "bottom": hi}.get(next((w for w in ("top", "bottom") if w in position), ""), SIZE / 2)
    return x, y


def shape_polygon(shape, cx, cy, r):
    """The outline of `shape` in its box of half-width r around (cx, cy); None for a circle."""
    if shape == "square":
        r = r * 0.85
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        h = r * math.sqrt(3) / 2 * 1.1
        return [(cx, cy - r), (cx + r, cy + h * 0.9), (cx - r, cy + h * 0.9)]
    if shape == "star":
        pts = []
        for k in range(10):
            a = -math.pi / 2 + k * math.pi / 5
            rr = r if k % 2 == 0 else r * 0.45
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        return pts
    if shape == "cross":
        t = r * 0.36
        return [(cx - t, cy - r), (cx + t, cy - r), (cx + t, cy - t), (cx + r, cy - t), (cx + r, cy + t),
                (cx + t, cy + t), (cx + t, cy + r), (cx - t, cy + r), (cx - t, cy + t), (cx - r, cy + t),
                (cx - r, cy - t), (cx - t, cy - t)]
    return None


def draw(scene):
    """Renders a scene (the dict `sample` returns) to a 64x64 RGB image."""
    img = Image.new("RGB", (SIZE * SUPER, SIZE * SUPER), BACKGROUNDS[scene["background"]])
    d = ImageDraw.Draw(img)
    fill = COLOURS[scene["colour"]]
    for cx, cy in scene["centres"]:
        paint_shape(d, scene["shape"], cx, cy, RADIUS[scene["size"]], fill)
    return img.resize((SIZE, SIZE), Image.LANCZOS)


def paint_shape(d, shape, cx, cy, r, fill, scale=SUPER):
    s = scale
    poly = shape_polygon(shape, cx, cy, r)
    if poly is None:
        d.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], fill=fill)
    else:
        d.polygon([(x * s, y * s) for x, y in poly], fill=fill)


def sample(rng):
    """One random scene and its full caption (nothing left out)."""
    shape = rng.choice(SHAPES)
    while True:
        colour, background = rng.choice(list(COLOURS)), rng.choice(list(BACKGROUNDS))
        if colour != background and (colour, background) not in LOW_CONTRAST:
            break
    count = 1 if rng.random() < 0.75 else rng.choice([2, 3])
    if count == 1:
        size = rng.choice(list(RADIUS))
        position = rng.choice(POSITIONS)
        x, y = position_anchor(position, RADIUS[size])
        centres = [(x + rng.uniform(-2, 2), y + rng.uniform(-2, 2))]
    else:
        size, position = rng.choice(["small", "medium"]), None
        centres = spread(rng, count, RADIUS[size])
    return {"shape": shape, "colour": colour, "background": background, "size": size,
            "position": position, "count": count, "centres": centres}


def spread(rng, count, r):
    """`count` centres whose shapes neither overlap nor touch the border."""
    while True:
        pts = [(rng.uniform(r + 2, SIZE - r - 2), rng.uniform(r + 2, SIZE - r - 2)) for _ in range(count)]
        if all(math.dist(a, b) > 2 * r + 4 for i, a in enumerate(pts) for b in pts[i + 1:]):
            return pts


def caption(scene, rng=None):
    """The scene's caption; with `rng`, size, position and background are each
    sometimes left out (training captions), without it all are said."""
    keep = (lambda p: rng.random() >= p) if rng else (lambda p: True)
    size = scene["size"] + " " if keep(0.3) else ""
    where = ""
    if scene["position"] and keep(0.2):
        where = " in the center" if scene["position"] == "center" else f" at the {scene['position']}"
    bg = f" on a {scene['background']} background" if keep(0.2) else ""
    if scene["count"] == 1:
        return f"a {size}{scene['colour']} {scene['shape']}{where}{bg}"
    return f"{COUNTS[scene['count']]} {size}{scene['colour']} {PLURAL[scene['shape']]}{bg}"


def words():
    """Every word a caption can hold (the tokenizer's vocabulary)."""
    w = {"a", "at", "the", "in", "on", "background", "two", "three"}
    w |= set(COLOURS) | set(BACKGROUNDS) | set(SHAPES) | set(PLURAL.values()) | set(RADIUS)
    for p in POSITIONS:
        w |= set(p.split())
    return sorted(w)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    index = []
    for i in range(a.count):
        scene = sample(rng)
        name = f"{i:05d}.png"
        draw(scene).save(os.path.join(a.out, name))
        index.append({"file": name, "caption": caption(scene), **scene})
    with open(os.path.join(a.out, "captions.json"), "w") as f:
        json.dump(index, f, indent=1)


if __name__ == "__main__":
    main()
