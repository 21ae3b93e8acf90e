#!/usr/bin/env python3
"""Independent reference for Hydrogen's pHash (see sdk/src/phash.rs for the spec).

Writes phash_golden.json next to this file. It shares no code with the Rust
implementation: the resize is a dense weight matrix and the DCT a dense cosine
matrix, both built from the written spec with numpy only.

    python3 -m venv v && v/bin/pip install numpy && v/bin/python phash_golden.py
"""
import json
import math
import os

import numpy as np

SIZE = 32
LOW = 8


def xorshift32(state):
    while True:
        state ^= (state << 13) & 0xFFFFFFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFFFFFF
        yield state


def pattern(kind, w, h, seed):
    """The test images; sdk/tests/phash.rs draws the same ones."""
    img = np.zeros((h, w, 3), dtype=np.uint8)
    if kind == "noise":
        gen = xorshift32(seed)
        for y in range(h):
            for x in range(w):
                for c in range(3):
                    img[y, x, c] = next(gen) >> 24
    elif kind == "waves":
        for y in range(h):
            for x in range(w):
                img[y, x] = ((x * 7 + y * 3 + seed) % 256, (x * y + seed) % 256, (x ^ y) % 256)
    elif kind == "blocks":
        for y in range(h):
            for x in range(w):
                on = ((x // 16) + (y // 16) + seed) % 2
                img[y, x] = (200, 40, 90) if on else (20, 180, 60)
    elif kind == "flat":
        img[:, :] = (seed % 256, seed % 256, seed % 256)
    else:
        raise ValueError(kind)
    return img


def resize_matrix(src, dst):
    """Row i holds the normalised triangle-filter weights of output sample i."""
    scale = src / dst
    fscale = max(scale, 1.0)
    m = np.zeros((dst, src))
    for i in range(dst):
        center = (i + 0.5) * scale
        for j in range(src):
            w = 1.0 - abs((j + 0.5 - center) / fscale)
            if w > 0:
                m[i, j] = w
        m[i] /= m[i].sum()
    return m


def dct_matrix(n):
    k = np.arange(n).reshape(-1, 1)
    x = np.arange(n).reshape(1, -1)
    return np.cos(math.pi * (2 * x + 1) * k / (2 * n))


def phash(img):
    rgb = img.astype(np.float64)
    gray = (299 * rgb[:, :, 0] + 587 * rgb[:, :, 1] + 114 * rgb[:, :, 2]) / 1000
    h, w = gray.shape
    small = resize_matrix(h, SIZE) @ gray @ resize_matrix(w, SIZE).T
    d = dct_matrix(SIZE)
    coeffs = (d @ small @ d.T)[:LOW, :LOW].reshape(-1)
    # Round half away from zero (np.round would round half to even).
    q = [int(math.copysign(math.floor(abs(c) * 65536 + 0.5), c)) for c in coeffs]
    s = sorted(q)
    bits = 0
    for k, c in enumerate(q):
        if 2 * c > s[31] + s[32]:
            bits |= 1 << (63 - k)
    return bits.to_bytes(8, "big").hex()


CASES = [
    ("flat", 64, 64, 128),
    ("noise", 64, 64, 1),
    ("noise", 64, 64, 2),
    ("noise", 512, 512, 7),
    ("noise", 17, 13, 3),
    ("waves", 520, 384, 0),
    ("waves", 768, 512, 11),
    ("waves", 64, 64, 5),
    ("blocks", 512, 512, 0),
    ("blocks", 96, 200, 1),
    ("blocks", 3, 5, 0),
]

if __name__ == "__main__":
    out = []
    for kind, w, h, seed in CASES:
        out.append({"kind": kind, "width": w, "height": h, "seed": seed, "phash": phash(pattern(kind, w, h, seed))})
        print(out[-1])
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "phash_golden.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
