"""Dev-only: SAELens's trainer step alone, in the configuration of benches/sae.rs
(standard, topk k=8, batchtopk k=8, jumprelu).

d_in 64, d_sae 512, 4096 tokens per step, f32, CPU, one torch thread (SAELENS_THREADS=2
for two): the same work as SAETrainer._train_step (training_forward_pass, backward,
clip_grad_norm_ 1.0, Adam).

    /work/pyenv/bin/python scripts/bench_sae_saelens.py
    SAELENS_THREADS=2 /work/pyenv/bin/python scripts/bench_sae_saelens.py
"""

import os
import time

import torch
from sae_lens import (
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
    JumpReLUTrainingSAE,
    JumpReLUTrainingSAEConfig,
    StandardTrainingSAE,
    StandardTrainingSAEConfig,
    TopKTrainingSAE,
    TopKTrainingSAEConfig,
)
from sae_lens.saes.sae import TrainStepInput

# One torch thread unless SAELENS_THREADS says otherwise.
torch.set_num_threads(int(os.environ.get("SAELENS_THREADS", "1")))
TOKENS, STEPS = 4096, 60


def bench(name, sae, coefficients):
    opt = torch.optim.Adam(sae.parameters(), lr=3e-4, betas=(0.9, 0.999))
    x = torch.randn(TOKENS, 64)
    dead = torch.zeros(512, dtype=torch.bool)
    times = []
    for step in range(STEPS):
        t0 = time.perf_counter()
        out = sae.training_forward_pass(TrainStepInput(x, coefficients, dead, step, False))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    times = sorted(times[10:])
    median = times[len(times) // 2]
    print(f"saelens sae_step/{name}: median {median * 1e3:.2f} ms = {TOKENS / median:,.0f} tokens/s")


bench("standard", StandardTrainingSAE(StandardTrainingSAEConfig(d_in=64, d_sae=512)), {"l1": 1.0})
bench("topk", TopKTrainingSAE(TopKTrainingSAEConfig(d_in=64, d_sae=512, k=8)), {})
bench("batchtopk", BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=64, d_sae=512, k=8)), {})
# SAELens's defaults, as ours: step L0 penalty, bandwidth 0.05, initial threshold 0.01.
bench("jumprelu", JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(d_in=64, d_sae=512)), {"l0": 1.0})
print("torch", torch.__version__, "threads", torch.get_num_threads())
