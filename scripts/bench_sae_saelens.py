"""Dev-only: SAELens's trainer step alone, in the configuration of benches/sae.rs
(standard, topk k=8, batchtopk k=8, jumprelu).

d_in 64, d_sae 512, 4096 tokens per step, f32, CPU, one torch thread (SAELENS_THREADS=2
for two): the same work as SAETrainer._train_step (training_forward_pass, backward,
clip_grad_norm_ 1.0, Adam).

With --real D_IN D_SAE ARCH, the configuration of benches/sae_real.rs instead (k = 32;
median of 3 steps after one); with --gemm D_IN D_SAE, torch's matmul rate (GFLOP/s,
best of 5) on the shapes of a standard step's products, as the `gemm/{m}x{k}x{n}`
benches. scripts/bench_sae_real.py runs both in paired rounds with ours.

Transcoders (--real only: transcoder, skip_transcoder, jumprelu_transcoder). SAELens 6.54
has the modules (sae_lens/saes/transcoder.py: Transcoder, SkipTranscoder,
JumpReLUTranscoder) but no transcoder trainer, so the step timed here is the one a user
of SAELens would write: the transcoder module's own parameters and its own encode /
decode (the skip connection through forward_with_activations), the loss SAELens's own
training SAEs use for the base architecture, with the output hook's activation y as the
target -- MSE summed over d_out and averaged over tokens, plus the decoder-norm-weighted
L1 (standard's calculate_aux_loss, coefficient 1) or the step L0 penalty through
SAELens's own JumpReLU / Step autograd functions (jumprelu_sae.py; bandwidth 0.05,
threshold initialised to 0.01 and projected onto >= 0 before each step, coefficient 1,
as JumpReLUTrainingSAE) -- then backward, clip_grad_norm_(1.0) and Adam, as
SAETrainer._train_step. That is the same work as our SaeTrainer::step_pair. y is one
fixed random [4096, d_out] batch, d_out = d_in.

    /work/venv/bin/python scripts/bench_sae_saelens.py
    SAELENS_THREADS=2 /work/venv/bin/python scripts/bench_sae_saelens.py --real 768 6144 topk
"""

import os
import sys
import time

import torch
from sae_lens import (
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
    GatedTrainingSAE,
    GatedTrainingSAEConfig,
    JumpReLUTrainingSAE,
    JumpReLUTrainingSAEConfig,
    MatryoshkaBatchTopKTrainingSAE,
    MatryoshkaBatchTopKTrainingSAEConfig,
    StandardTrainingSAE,
    StandardTrainingSAEConfig,
    TopKTrainingSAE,
    TopKTrainingSAEConfig,
)
from sae_lens.saes.jumprelu_sae import JumpReLU, Step
from sae_lens.saes.sae import TrainStepInput
from sae_lens.saes.transcoder import (
    JumpReLUTranscoder,
    JumpReLUTranscoderConfig,
    SkipTranscoder,
    SkipTranscoderConfig,
    Transcoder,
    TranscoderConfig,
)

# One torch thread unless SAELENS_THREADS says otherwise.
torch.set_num_threads(int(os.environ.get("SAELENS_THREADS", "1")))
REAL = "--real" in sys.argv
TOKENS = 4096
STEPS, SKIP = (4, 1) if REAL else (60, 10)


def bench(name, sae, coefficients):
    x = torch.randn(TOKENS, sae.cfg.d_in)
    dead = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)

    def loss(step):
        return sae.training_forward_pass(TrainStepInput(x, coefficients, dead, step, False)).loss

    timed(name, sae, loss)


def timed(name, sae, loss):
    """Times `loss(step)`, backward, clipping and Adam (SAETrainer._train_step's work)."""
    opt = torch.optim.Adam(sae.parameters(), lr=3e-4, betas=(0.9, 0.999))
    times = []
    for step in range(STEPS):
        t0 = time.perf_counter()
        loss(step).backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    times = sorted(times[SKIP:])
    median = times[len(times) // 2]
    group = f"sae_step_real/{sae.cfg.d_in}x{sae.cfg.d_sae}" if REAL else "sae_step"
    print(f"saelens {group}/{name}: median {median * 1e3:.2f} ms = {TOKENS / median:,.0f} tokens/s")


def bench_transcoder(name, d_in, d_sae):
    """A transcoder step as SAELens's training SAEs would take it (see the docstring)."""
    sizes = {"d_in": d_in, "d_sae": d_sae, "d_out": d_in, "apply_b_dec_to_input": False}
    x, y = torch.randn(TOKENS, d_in), torch.randn(TOKENS, d_in)
    if name == "jumprelu_transcoder":
        sae = JumpReLUTranscoder(JumpReLUTranscoderConfig(**sizes))
        with torch.no_grad():
            sae.threshold.fill_(0.01)

        def loss(_step):
            with torch.no_grad():
                sae.threshold.data.clamp_(min=0.0)
            hidden_pre = sae.process_sae_in(x) @ sae.W_enc + sae.b_enc
            acts = JumpReLU.apply(hidden_pre, sae.threshold, 0.05, False)
            mse = ((sae.decode(acts) - y) ** 2).sum(dim=-1).mean()
            return mse + (1.0 * Step.apply(hidden_pre, sae.threshold, 0.05, False).sum(dim=-1)).mean()
    else:
        kind = (SkipTranscoder, SkipTranscoderConfig) if name == "skip_transcoder" else (Transcoder, TranscoderConfig)
        sae = kind[0](kind[1](**sizes))

        def loss(_step):
            out, acts = sae.forward_with_activations(x)
            mse = ((out - y) ** 2).sum(dim=-1).mean()
            return mse + (1.0 * (acts * sae.W_dec.norm(dim=1)).norm(p=1, dim=-1)).mean()

    timed(name, sae, loss)


TRANSCODERS = ["transcoder", "skip_transcoder", "jumprelu_transcoder"]


def architectures(d_in, d_sae, k, only=None):
    sizes = {"d_in": d_in, "d_sae": d_sae}
    # jumprelu: SAELens's defaults, as ours (step L0 penalty, bandwidth 0.05, threshold 0.01).
    saes = {
        "standard": (lambda: StandardTrainingSAE(StandardTrainingSAEConfig(**sizes)), {"l1": 1.0}),
        "topk": (lambda: TopKTrainingSAE(TopKTrainingSAEConfig(**sizes, k=k)), {}),
        "batchtopk": (lambda: BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(**sizes, k=k)), {}),
        "jumprelu": (lambda: JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(**sizes)), {"l0": 1.0}),
        "gated": (lambda: GatedTrainingSAE(GatedTrainingSAEConfig(**sizes)), {"l1": 1.0}),
        # five levels, d_sae / 16, / 8, / 4, / 2 and d_sae (as benches/sae_real.rs)
        "matryoshka_batchtopk": (
            lambda: MatryoshkaBatchTopKTrainingSAE(MatryoshkaBatchTopKTrainingSAEConfig(
                **sizes, k=k, matryoshka_widths=[d_sae // f for f in (16, 8, 4, 2, 1)])),
            {},
        ),
    }
    for name, (make, coefficients) in saes.items():
        if only in (None, name):
            bench(name, make(), coefficients)
    for name in TRANSCODERS:
        if only == name:
            bench_transcoder(name, d_in, d_sae)


def gemm_rate(d_in, d_sae):
    """torch.matmul on the [m, k] x [k, n] shapes of a standard step's products."""
    for m, k, n in [(TOKENS, d_in, d_sae), (TOKENS, d_sae, d_in), (d_sae, TOKENS, d_in), (d_in, TOKENS, d_sae)]:
        a, b = torch.randn(m, k), torch.randn(k, n)
        out = torch.empty(m, n)
        times = []
        for _ in range(6):
            t0 = time.perf_counter()
            torch.matmul(a, b, out=out)
            times.append(time.perf_counter() - t0)
        best = min(times[1:])
        print(f"torch gemm/{m}x{k}x{n}: best {best * 1e3:.1f} ms = {2 * m * k * n / best / 1e9:.1f} GFLOP/s")


if REAL:
    i = sys.argv.index("--real")
    architectures(int(sys.argv[i + 1]), int(sys.argv[i + 2]), 32, sys.argv[i + 3])
elif "--gemm" in sys.argv:
    i = sys.argv.index("--gemm")
    gemm_rate(int(sys.argv[i + 1]), int(sys.argv[i + 2]))
else:
    architectures(64, 512, 8)
blas = [w for w in torch.__config__.show().replace(",", " ").split() if w.startswith("BLAS_INFO")]
print("torch", torch.__version__, "threads", torch.get_num_threads(), *blas)
