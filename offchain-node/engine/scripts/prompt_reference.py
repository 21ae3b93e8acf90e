#!/usr/bin/env python3
"""Prompt-weighting reference data for tests/prompt_weighting.rs, made with compel itself.

The reference network encodes every prompt with Compel 2.0.2,
`Compel(tokenizer, text_encoder, truncate_long_prompts=False)`. The compel
installed here is 2.5.1, whose parser is the same (only pyparsing's renamed
`DelimitedList` differs) and whose embedding arithmetic is the same except:

- 2.5.1 splits long prompts at sentence ends by default; 2.0.2 knew only
  fixed 75-token windows, which 2.5.1 gives with `SplitLongTextMode.BRUTAL`;
- 2.5.1 returns a chunk whose weights are all 1 as the encoder gave it, where
  2.0.2 computes `empty + (z - empty) * 1` (equal up to f32 rounding).

So this script runs 2.5.1 with `split_long_text_mode=BRUTAL`. With
`--compel-src DIR` (a checkout of damian0815/compel at tag v2.0.2) it also runs
that version from source and prints how far the two are apart.

1. `parse`: compel's flattened parse (fragments, weights, blends, `.and()`
   parts, `.swap()`) of many prompts, to check the engine's parser rule by rule.
2. `cases`: conditioning tensors of prompt/negative pairs on the tiny text
   encoder of tiny_reference.py (same formula weights), padded to the same
   length as compel's `pad_conditioning_tensors_to_same_length` does. An
   empty negative's conditioning is `empty` (the empty prompt's, one chunk)
   repeated, and is not written out for each case.

Output: tests/data/prompt_reference.json.

    python3 -m venv v && v/bin/pip install torch diffusers transformers compel numpy
    v/bin/python scripts/prompt_reference.py
"""
import argparse
import importlib
import json
import os
import sys

import torch

from tiny_reference import components, tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")

# The long case: a downweighted phrase that straddles the first 75-token
# window, an upweighted one in the second window, and a third window.
LONG = ("the red barn in the rain, " * 3 + "(stone walls and a wooden gate)0.7 by the river, "
        + "the red barn in the rain, " * 2 + "(golden light)1.4 at dusk, " + "an old oak tree on a hill, " * 3)

# (name, prompt, negative). Each is encoded by compel and by the engine.
CASES = [
    ("plain", "a photo of an astronaut", ""),
    ("plus", "a cat+ on the stairs", ""),
    ("plus_plus", "a red++ barn in the rain", "blurry"),
    ("minus", "a cat- on the stairs", ""),
    ("phrase_up", "(a red barn)1.3 in the rain", ""),
    ("phrase_down", "a cat on (the stairs)0.5", ""),
    ("nested", "a (cat (on the)0.8 stairs)1.2, (golden (hour)+)-", ""),
    ("blend", '("a cat on the stairs", "a dog in the rain").blend(0.7, 0.3)', ""),
    ("long", LONG, "blurry"),
    ("escaped", "a \\(cat\\) on the stairs+", ""),
    ("and", '("a cat", "on the stairs").and(1, 0.5)', ""),
    ("weighted_negative", "a cat on the stairs", "(blurry)1.5, ugly-"),
    ("a1111_style", "a (masterpiece:1.2) cat, [dog]", ""),
    ("attend_swap_lora", "a (red barn).attend(1.3) cat.swap(dog) withLora(foo, 0.5) rain", ""),
    ("commas", "a cat,on the stairs,,ok", ""),
    ("zero_weight", "a (cat)0 on the stairs", ""),
]

# Prompts whose parse (not embedding) is compared: every rule of compel's
# grammar, and the odd corners where it falls back to plain text. (Not numeric
# escapes in quotes such as `\x41`: pyparsing versions unquote them differently.)
PARSE_ONLY = [
    "", "   ", "cat", "a  cat \t on\nthe mat", "cat+", "cat++", "cat+++", "cat-", "cat--", "cat+-",
    "cat +", "cat++ dog-- bird", "a-b c+d", "c-3po", "-cat", "+cat", "cat+, dog", "cat++,dog",
    "(cat)1.3", "(cat) 1.3", "(cat)1.", "(cat).5", "(cat)2", "(cat)-", "(cat)--", "(cat)+", "(cat)-1.5",
    "(cat)1.3e2", "(a cat, on a mat.)0.7", "( a cat )1.1", "((cat)1.5 dog)0.5", "(((a)+)+)+",
    "(a (b (c)1.1)0.9)1.2 d", "(unclosed", "closed)", "((a)", "a (b) c", "()", "()1.5 cat",
    '"a cat"', '"a cat"1.3', '"a cat"+', '"a (cat)1.3" dog', '"a + b"', '"a = b"2', '"unclosed',
    '"a \\"quoted\\" word"', '"tab\\there"', '"new\\nline \\x41"',
    "\\(cat\\)", "\\(cat\\)1.2", "a \\\\(b", "x\\", "cat\\+", "cat\\++", "cat\\.,dog",
    "cat.attend(1.2)", "(a cat).attend(0.8)", '"a cat".attend(+)', "cat .attend(2)", "cat.attend(--)",
    "a cat.swap(dog)", "a (fluffy cat).swap(shaggy dog, s_start=0.2, t_end=0.8)", "a cat.swap()",
    '("a cat", "a dog").blend(1, 1)', '("a cat", "a dog").blend(0.3, 0.7, no_normalize)',
    '("a cat", "a dog").blend()', "(cat, dog).blend(0.5, 0.5)", "((a cat), (a dog)).blend(2, 1)",
    '("a cat++", "a dog-").blend(1, 2)', '("a cat", "a dog").blend(1)', '("a cat", "a dog").blend(x, 1)',
    '("a cat", "a dog").blend(1, 1) trailing', '("a cat", "a + dog").blend(1, 1)',
    '("a cat", "a dog").and()', '("a cat", "a dog").and(1, 0.5)', '("a cat", "a dog").add(0.5, 1)',
    '("a cat", "a dog").and(1, 0.5) trailing', '("a cat", "a dog").and(1)', "(cat, dog).and()",
    "withLora(foo)", "a withLora(foo, 0.5) cat", "useLora(my-lora, 1.2) a cat", "a cat withLora(x) useLora(y, 2)",
    "a,b", "a,,b", "a ,b", "a, b", "1.5", "cat 2.5", "a (b)1.2(c)0.8", "(a)(b)", "cat++(dog)",
    "a\u00a0cat", "a (cat\u00a0dog)1.2", "(cat)+\u00a0dog", "café (naïve)1.1", "日本 (猫)1.2",
    "a (masterpiece:1.2) cat", "[dog]", "{cat}", "cat:1.2", "a = b", "a=b+", "(a=b)1.2",
]


def pipeline_parts():
    _, _, text_encoder, _ = components()
    tok = tokenizer(os.path.join("/tmp", "hydrogen-tiny-tokenizer"))
    return tok, text_encoder


def dump_children(children, cac_type):
    out = []
    for c in children:
        if isinstance(c, cac_type):
            out.append({"swap": {"original": dump_children(c.original, cac_type),
                                 "edited": dump_children(c.edited, cac_type)}})
        else:
            out.append({"text": c.text, "weight": c.weight})
    return out


def dump_parse(compel_pkg, prompt):
    """compel's flattened Conjunction as JSON, or the exception it raised."""
    parser = compel_pkg.prompt_parser
    try:
        conj = compel_pkg.Compel.parse_prompt_string(prompt)
    except Exception as e:  # noqa: BLE001 -- any refusal is data here
        return {"error": f"{type(e).__name__}: {e}"}
    parts = []
    for p, w in zip(conj.prompts, conj.weights):
        if isinstance(p, parser.Blend):
            parts.append({"weight": w, "blend": {
                "prompts": [dump_children(q.children, parser.CrossAttentionControlSubstitute) for q in p.prompts],
                "weights": [float(x) for x in p.weights], "normalize": p.normalize_weights}})
        else:
            parts.append({"weight": w, "prompt": dump_children(p.children, parser.CrossAttentionControlSubstitute)})
    return {"parts": parts}


def make_compel(compel_pkg, tok, text_encoder):
    kwargs = {}
    if hasattr(compel_pkg, "embeddings_provider") and hasattr(compel_pkg.embeddings_provider, "SplitLongTextMode"):
        kwargs["split_long_text_mode"] = compel_pkg.embeddings_provider.SplitLongTextMode.BRUTAL
    return compel_pkg.Compel(tokenizer=tok, text_encoder=text_encoder, truncate_long_prompts=False, **kwargs)


def encode_case(compel, prompt, negative):
    with torch.no_grad():
        cond = compel.build_conditioning_tensor(prompt)
        neg = compel.build_conditioning_tensor(negative)
        cond, neg = compel.pad_conditioning_tensors_to_same_length([cond, neg])
    return cond, neg


def floats(t):
    # Five significant digits: the tests allow 1e-3 relative error.
    return [float("%.5g" % v) for v in t.flatten().tolist()]


def import_compel(src=None):
    for name in [m for m in sys.modules if m == "compel" or m.startswith("compel.")]:
        del sys.modules[name]
    if src:
        sys.path.insert(0, os.path.join(src, "src"))
    try:
        pkg = importlib.import_module("compel")
        importlib.import_module("compel.prompt_parser")
        importlib.import_module("compel.embeddings_provider")
    finally:
        if src:
            sys.path.pop(0)
    return pkg


def main():
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--compel-src", help="a compel v2.0.2 checkout to compare with")
    args = args.parse_args()
    torch.set_num_threads(2)
    tok, text_encoder = pipeline_parts()
    compel_pkg = import_compel()
    compel = make_compel(compel_pkg, tok, text_encoder)
    print("compel from", os.path.dirname(compel_pkg.__file__))

    with torch.no_grad():
        empty = compel.build_conditioning_tensor("")
    data = {"parse": [], "empty": floats(empty), "cases": []}
    for prompt in [c[1] for c in CASES] + [c[2] for c in CASES if c[2]] + PARSE_ONLY:
        data["parse"].append({"prompt": prompt, "result": dump_parse(compel_pkg, prompt)})
    encoded = {}
    for name, prompt, negative in CASES:
        cond, neg = encode_case(compel, prompt, negative)
        encoded[name] = (cond, neg)
        ids = tok(prompt, truncation=False).input_ids
        print(f"{name}: {list(cond.shape)} ({len(ids) - 2} plain tokens)")
        case = {"name": name, "prompt": prompt, "negative": negative, "shape": list(cond.shape), "cond": floats(cond)}
        if negative:
            case["uncond"] = floats(neg)
        else:
            assert torch.equal(neg, torch.cat([empty] * (neg.shape[1] // empty.shape[1]), dim=1))
        data["cases"].append(case)

    if args.compel_src:
        old = import_compel(args.compel_src)
        old_compel = make_compel(old, tok, text_encoder)
        for entry in data["parse"]:
            if dump_parse(old, entry["prompt"]) != entry["result"]:
                print("parse differs from", args.compel_src, "for", repr(entry["prompt"]))
        for name, prompt, negative in CASES:
            cond, neg = encode_case(old_compel, prompt, negative)
            ref_cond, ref_neg = encoded[name]
            if cond.shape != ref_cond.shape or neg.shape != ref_neg.shape:
                print(f"{name}: shapes differ from {args.compel_src}: {list(cond.shape)} vs {list(ref_cond.shape)}")
                continue
            rel = max(((cond - ref_cond).abs().max() / ref_cond.abs().max()).item(),
                      ((neg - ref_neg).abs().max() / ref_neg.abs().max()).item())
            print(f"{name}: max rel. difference to {args.compel_src}: {rel:.2e}")

    path = os.path.join(DATA, "prompt_reference.json")
    with open(path, "w") as f:
        json.dump(data, f, ensure_ascii=False)
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
