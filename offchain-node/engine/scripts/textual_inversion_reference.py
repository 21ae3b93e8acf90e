#!/usr/bin/env python3
"""Textual inversion reference data for tests/textual_inversion.rs, made with diffusers itself.

1. Writes tiny textual inversion files, one per layout found in the wild, with
   vectors from a formula:
   - kohya / A1111 `emb_params` ([3, 32], so a 3-vector token),
   - A1111 `string_to_param.*` ([2, 32]), as its pickled dict reads once saved
     as safetensors,
   - diffusers `learned_embeds.safetensors` `{"<cat-toy>": [32]}` in a folder,
   - diffusers `{"<Wave-Style>": [2, 32]}`, a multi-vector token with capitals.
2. Loads each into the tiny pipeline of tiny_reference.py with
   `pipeline.load_textual_inversion(path)` (no token given, as the reference
   network calls it) and records the tokens added, and for a few prompts the
   token ids and `encode_prompt`'s embeddings (which expand a multi-vector
   token with `maybe_convert_prompt`).
3. Records compel's conditioning (as in prompt_reference.py) of a weighted
   prompt that uses the single-vector token.

Output: tests/data/textual_inversion/* and tests/data/textual_inversion_reference.json.

    python3 -m venv v && v/bin/pip install torch diffusers transformers compel numpy
    v/bin/python scripts/textual_inversion_reference.py
"""
import json
import os

import numpy as np
import torch
from compel import Compel
from compel.embeddings_provider import SplitLongTextMode
from safetensors.numpy import save_file

from lora_reference import pipeline

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")
DIM = 32

# (file under tests/data/textual_inversion, tensor name, vectors, the path given to load_textual_inversion, prompts)
FILES = [
    ("emb_params.safetensors", "emb_params", 3, "emb_params.safetensors",
     # Not `emb_params_1` written out: diffusers' maybe_convert_prompt then
     # rewrites the `emb_params` inside it too.
     ["a photo of emb_params on the stairs", "emb_params", "a cat and emb_params, xemb_paramsy"]),
    ("string_to_param.safetensors", "string_to_param.*", 2, "string_to_param.safetensors",
     ["a string_to_param.* cat", "a cat on the stairs"]),
    ("diffusers/learned_embeds.safetensors", "<cat-toy>", 1, "diffusers",
     ["a <cat-toy> on the stairs", "a <CAT-TOY> and a <cat-toy>"]),
    ("mixed_case.safetensors", "<Wave-Style>", 2, "mixed_case.safetensors",
     ["a sky in <Wave-Style>", "a sky in <wave-style>_1"]),
]
WEIGHTED = ("diffusers", "a (<cat-toy>)1.3 on the stairs-", "blurry")


def vectors(name, n):
    phase = (sum(name.encode()) % 991) * 0.017
    v = 0.8 * np.sin(0.45 * np.arange(n * DIM) + phase)
    return v.astype(np.float32).reshape(n, DIM) if n > 1 else v.astype(np.float32)


def floats(t):
    return [float("%.6g" % v) for v in t.flatten().tolist()]


def main():
    torch.set_num_threads(2)
    folder = os.path.join(DATA, "textual_inversion")
    os.makedirs(os.path.join(folder, "diffusers"), exist_ok=True)
    data = {"files": []}
    pipes = {}
    for file, name, n, given, prompts in FILES:
        save_file({name: vectors(name, n)}, os.path.join(folder, file))
        pipe = pipeline()
        base_len = len(pipe.tokenizer)
        pipe.load_textual_inversion(os.path.join(folder, given))
        pipes[given] = pipe
        added = {t: i for t, i in pipe.tokenizer.added_tokens_encoder.items() if i >= base_len}
        entry = {"file": file, "path": given, "tensor": name, "added_tokens": added, "prompts": []}
        for prompt in prompts:
            converted = pipe.maybe_convert_prompt(prompt, pipe.tokenizer)
            ids = pipe.tokenizer(converted, padding="max_length", max_length=77, truncation=True).input_ids
            with torch.no_grad():
                embeds, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
            entry["prompts"].append({"prompt": prompt, "ids": ids, "embeds": floats(embeds)})
            print(f"{given}: {prompt!r} -> {ids[:ids.index(pipe.tokenizer.eos_token_id) + 1]}")
        data["files"].append(entry)

    given, prompt, negative = WEIGHTED
    pipe = pipes[given]
    compel = Compel(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, truncate_long_prompts=False,
                    split_long_text_mode=SplitLongTextMode.BRUTAL)
    with torch.no_grad():
        cond = compel.build_conditioning_tensor(prompt)
        neg = compel.build_conditioning_tensor(negative)
        cond, neg = compel.pad_conditioning_tensors_to_same_length([cond, neg])
    data["weighted"] = {"path": given, "prompt": prompt, "negative": negative, "shape": list(cond.shape),
                        "cond": floats(cond), "uncond": floats(neg)}

    path = os.path.join(DATA, "textual_inversion_reference.json")
    with open(path, "w") as f:
        json.dump(data, f)
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
