#!/usr/bin/env python3
"""Dev-only: transformers' reference for a GGUF checkpoint (activations and tokenizer ids).

    python scripts/gguf_reference.py MODEL.gguf OUT_DIR ["prompt" ...]

Needs: pip install torch transformers gguf safetensors. transformers loads the file
dequantised to f32 (`from_pretrained(dir, gguf_file=...)`), runs the prompts (as one
batch, left-padded when their lengths differ) and writes:
  OUT_DIR/reference.safetensors  input_ids, logits, hidden_states.{i}, one key per module
                                 path (make_fixtures.py's format, which `compare_hf` reads)
  OUT_DIR/tokenizer_ids.json     [{"text": ..., "ids": [...]}] for texts with unicode, emoji,
                                 CJK, digits, code, runs of spaces and tabs, chat markup
                                 (add_special_tokens=False), and the rendered chat template
Then: cargo run --release -p auto_hook_models --example compare_hf -- MODEL.gguf OUT_DIR/reference.safetensors
"""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import reference  # noqa: E402

TEXTS = [
    "The capital of France is",
    "héllo wörld ünïcödé 😀🎉 日本語の文章 中文 Ελληνικά русский",
    "x = 12345 + 0.5; 2024-12-06 1,000,000 3.14159",
    "def f(a, b):\n\treturn a  +   b\n\n\n  # comment\r\n",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "   leading spaces\t\ttabs and trailing   ",
    "It's we'll they've I'M DON'T",
    "",
]


def main():
    gguf, out = Path(sys.argv[1]), Path(sys.argv[2])
    prompts = sys.argv[3:] or ["The capital of France is", "The Eiffel Tower is in the city of"]
    out.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.eval()
    ids = [tok.encode(p) for p in prompts]
    width = max(len(i) for i in ids)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    input_ids = torch.tensor([[pad] * (width - len(i)) + i for i in ids])
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
    same = all(len(i) == width for i in ids)
    save_file(reference(model, input_ids, None if same else mask), out / "reference.safetensors")
    cases = [{"text": t, "ids": tok.encode(t, add_special_tokens=False)} for t in TEXTS]
    if tok.chat_template:
        chat = [{"role": "user", "content": "What is the capital of France?"}]
        rendered = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        cases.append({"chat": chat, "rendered": rendered, "ids": tok.encode(rendered, add_special_tokens=False)})
    (out / "tokenizer_ids.json").write_text(json.dumps(cases, ensure_ascii=False, indent=1))
    with torch.no_grad():
        logits = model(input_ids=input_ids[:1, -len(ids[0]):]).logits[0, -1]
    top = torch.topk(logits, 5)
    print("top next tokens after", repr(prompts[0]), [(tok.decode([i]), round(v, 3)) for v, i in zip(top.values.tolist(), top.indices.tolist())])


if __name__ == "__main__":
    main()
