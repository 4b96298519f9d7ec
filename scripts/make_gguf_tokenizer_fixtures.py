#!/usr/bin/env python3
"""Dev-only: tiny GGUF tokenizer files and the ids transformers gives them.

Needs: pip install transformers gguf tokenizers numpy. Writes, under
auto_hook_models/tests/fixtures/gguf_tokenizers/:
  spm.gguf      a SentencePiece (`llama`) vocabulary with scores and no merges (merges are
                rebuilt from the scores), byte fallback tokens, add_bos unset (llama.cpp
                and transformers then add BOS)
  bpe.gguf      a byte-level BPE (`gpt2`) vocabulary trained here on a few sentences, with
                pre-tokenizer `llama3` (digits in groups of three) and a user-defined token
  expected.json [{"file", "text", "ids" (add_special_tokens=True), "decoded"}]
The model tensors are a single zero embedding: only the tokenizer is read.
"""
import json
from pathlib import Path

import gguf
import numpy as np
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import AutoTokenizer

OUT = Path(__file__).resolve().parent.parent / "auto_hook_models" / "tests" / "fixtures" / "gguf_tokenizers"
TEXTS = ["Hello world", " leading space", "ab  b\tc", "12345 apples", "héllo 😀", "<s>x</s>", "it's <think>ok"]
CORPUS = ["Hello world, hello there.", "The 12345 apples cost 678 dollars.", "it's a test; it's fine",
          "héllo wörld", "tabs\tand  spaces", "<think> is a tag"] * 20


def write(path, model, tokens, types, **kw):
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1); w.add_context_length(64); w.add_embedding_length(8)
    w.add_feed_forward_length(16); w.add_head_count(2); w.add_head_count_kv(1); w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model(model)
    if "pre" in kw: w.add_tokenizer_pre(kw["pre"])
    w.add_token_list(tokens); w.add_token_types(types)
    if "merges" in kw: w.add_token_merges(kw["merges"])
    if "scores" in kw: w.add_token_scores(kw["scores"])
    w.add_bos_token_id(kw.get("bos", 1)); w.add_eos_token_id(kw.get("eos", 2)); w.add_unk_token_id(0)
    w.add_tensor("token_embd.weight", np.zeros((len(tokens), 8), dtype=np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


def spm():
    pieces = ["\u2581", "a", "b", "c", "x", "\u2581a", "\u2581b", "ab", "\u2581ab", "ok", "\u2581ok", "\u2581x",
              "H", "e", "l", "o", "\u2581w", "r", "d", "ll", "llo", "Hello", "\u2581wor", "wo", "or", "ld",
              "\u2581world", "1", "2", "3", "\u2581l", "\u2581le", "lead", "ing", "\u2581s", "sp", "ace"]
    tokens = ["<unk>", "<s>", "</s>"] + pieces + [f"<0x{i:02X}>" for i in range(256)]
    types = [2, 3, 3] + [1] * len(pieces) + [6] * 256
    scores = [0.0, 0.0, 0.0] + [-float(i) * 0.37 % 7 for i in range(len(pieces))] + [0.0] * 256
    write(OUT / "spm.gguf", "llama", tokens, types, scores=scores)


def bpe():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=["<|endoftext|>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    data = json.loads(tok.to_str())
    vocab = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in vocab] + ["<think>"]
    types = [3, 3, 3] + [1] * (len(vocab) - 3) + [4]
    merges = [" ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]]
    write(OUT / "bpe.gguf", "gpt2", tokens, types, merges=merges, pre="llama3", bos=1, eos=2)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    spm()
    bpe()
    cases = []
    for name in ["spm.gguf", "bpe.gguf"]:
        t = AutoTokenizer.from_pretrained(OUT, gguf_file=name)
        for text in TEXTS:
            ids = t.encode(text)
            cases.append({"file": name, "text": text, "ids": ids, "decoded": t.decode(ids)})
    (OUT / "expected.json").write_text(json.dumps(cases, ensure_ascii=False, indent=1))
    print(json.dumps(cases, ensure_ascii=False)[:1500])


if __name__ == "__main__":
    main()
