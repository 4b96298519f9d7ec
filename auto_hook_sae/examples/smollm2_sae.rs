//! An SAE on a real model: SmolLM2-135M-Instruct (its Q4_1 GGUF, dequantised to f32),
//! `blocks.15.hook_resid_post` (the middle of 30 layers), real English text (Debian's
//! fortunes). Collects activations once with forwards stopped at layer 15, trains a topk
//! SAE on them for a few epochs, evaluates it on held-out text (explained variance, L0,
//! CE loss score and KL with the SAE spliced in), and writes a feature dashboard (the
//! top-activating contexts of a dozen latents) and a feature-density histogram.
//!
//! ```sh
//! GGUF=$(scripts/fetch_smollm2.sh | tail -1)
//! CORPUS=$(scripts/fetch_corpus.sh | tail -1)
//! cargo run --release -p auto_hook_sae --example smollm2_sae -- "$GGUF" "$CORPUS"
//! ```
//!
//! Options (after the paths): `--tokens N` activations collected (150000), `--epochs N`
//! (5), `--out FOLDER` for the dashboard and the histogram (`docs/smollm2_sae`); the SAE is
//! saved to `target/sae/smollm2-l15-topk`.

use auto_hook::rng::Rng;
use auto_hook_models::HookedTransformer;
use auto_hook_sae::*;
use candle_core::{DType, Device, Module, Tensor};
use std::path::{Path, PathBuf};
use std::time::Instant;

const LAYER: usize = 15;
const CONTEXT: usize = 128;
const HELD_OUT: usize = 32;
const FORWARD_BATCH: usize = 16;
const D_SAE: usize = 4608;
const K: usize = 32;
const BATCH_TOKENS: usize = 2048;
const DASHBOARD_SEQUENCES: usize = 1024;
const SHOWN_LATENTS: usize = 12;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn forward(m: &HookedTransformer, ids: &Tensor) -> candle_core::Result<Tensor> {
    m.forward(ids, None)
}

struct Args {
    gguf: PathBuf,
    corpus: Vec<PathBuf>,
    tokens: usize,
    epochs: usize,
    out: PathBuf,
}

fn args() -> Res<Args> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut a = Args {
        gguf: PathBuf::new(),
        corpus: Vec::new(),
        tokens: 150_000,
        epochs: 5,
        out: root.join("docs/smollm2_sae"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--tokens" => a.tokens = value()?.parse()?,
            "--epochs" => a.epochs = value()?.parse()?,
            "--out" => a.out = value()?.into(),
            _ if a.gguf.as_os_str().is_empty() => a.gguf = arg.into(),
            _ => a.corpus.push(arg.into()),
        }
    }
    if a.corpus.is_empty() {
        return Err(
            "usage: smollm2_sae GGUF TEXT_FILE_OR_FOLDER... [--tokens N] [--epochs N] \
                    [--out FOLDER] (GGUF=$(scripts/fetch_smollm2.sh | tail -1), \
                    CORPUS=$(scripts/fetch_corpus.sh | tail -1))"
                .into(),
        );
    }
    Ok(a)
}

fn main() -> Res<()> {
    let a = args()?;
    let start = Instant::now();
    // Dequantised to f32: batched forwards run on gemm (candle's Q4_1 matmul has no SIMD
    // kernel, and a batch of 2048 tokens through it is many times slower).
    let model = auto_hook_models::load(&a.gguf, DType::F32, &Device::Cpu)?;
    let text = model.text().ok_or("the GGUF has no tokenizer")?;
    let tokenizer = text.tokenizer();
    let eot = tokenizer
        .token_to_id("<|endoftext|>")
        .ok_or("no <|endoftext|> token")?;
    // SmolLM2 adds no BOS (add_bos_token false); its pretraining separates documents
    // with <|endoftext|>, which also starts every context here (position 0 is skipped).
    let packing = Packing::new(CONTEXT).bos(eot).separator(eot).shuffle(0);
    let all = TokenSource::from_text_paths(&a.corpus, tokenizer, &packing)?;
    let (train, held_out) = all.split_last(HELD_OUT)?;
    let hook = format!("blocks.{LAYER}.hook_resid_post");
    println!(
        "{} contexts of {CONTEXT} tokens ({} held out), loaded in {:.1} s",
        train.len() + HELD_OUT,
        HELD_OUT,
        start.elapsed().as_secs_f64()
    );
    let n_seq = (a.tokens / (CONTEXT - 1)).clamp(1, train.len());
    let (collected, collect_s) = collect(&model, &train, &hook, n_seq, eot)?;
    let rows = collected.keep.len();
    println!(
        "collected {rows} activations at {hook} (<|endoftext|> and position 1 left out) in {collect_s:.1} s ({:.0} tokens/s, forwards stopped after layer {LAYER})",
        (n_seq * CONTEXT) as f64 / collect_s
    );
    let (trained, train_s, steps) = train_sae(&collected, &hook, a.epochs)?;
    println!(
        "trained {steps} steps x {BATCH_TOKENS} tokens ({} epochs) in {train_s:.1} s ({:.0} tokens/s)",
        a.epochs,
        (steps * BATCH_TOKENS) as f64 / train_s
    );
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/sae/smollm2-l15-topk");
    trained.save(&folder)?;
    let sae = Sae::load(&folder, &Device::Cpu)?;
    let mut summary = evaluate(&model, &sae, &hook, &held_out, eot)?;
    summary.insert(
        0,
        (
            "collection".into(),
            format!(
                "{rows} tokens in {collect_s:.0} s ({:.0} tokens/s)",
                (n_seq * CONTEXT) as f64 / collect_s
            ),
        ),
    );
    summary.insert(
        1,
        (
            "training".into(),
            format!(
                "{steps} steps × {BATCH_TOKENS} tokens in {train_s:.0} s ({:.0} tokens/s)",
                (steps * BATCH_TOKENS) as f64 / train_s
            ),
        ),
    );
    dashboard::write(&model, &sae, &hook, &train, &collected, summary, &a.out)?;
    println!(
        "total {:.1} s; SAE in {}, dashboard in {}",
        start.elapsed().as_secs_f64(),
        folder.display(),
        a.out.display()
    );
    Ok(())
}

/// Activations of contexts, position 0 left out (`CONTEXT - 1` rows per context), and
/// which rows to use: not those at `<|endoftext|>` (document separators, where SmolLM2's
/// residual norm is about 100 times the other tokens'; a training store drops such rows
/// itself with `StoreConfig::exclude_special_tokens`, but here every row is kept so that
/// rows line up with positions for the evaluation), nor position 1 (right after the context's first `<|endoftext|>`, a token that starts
/// in mid-document: there the norm reaches 10 to 150 times the median, as at the
/// separators).
struct Collected {
    /// `[rows, d_model]`.
    acts: Tensor,
    /// Indices of the rows to use.
    keep: Vec<u32>,
    /// `[rows, 1]`: 1 for the rows to use, 0 for the others.
    mask: Tensor,
}

/// Rows of `n` contexts from `first` (positions 1..): whether each is used (not `eot`,
/// not position 1).
fn used_rows(tokens: &TokenSource, first: usize, n: usize, eot: u32) -> Res<Vec<bool>> {
    let ids = tokens.batch(first, n)?.narrow(1, 1, CONTEXT - 1)?;
    let ids = ids.flatten_all()?.to_vec1::<u32>()?;
    Ok(ids
        .into_iter()
        .enumerate()
        .map(|(i, t)| t != eot && i % (CONTEXT - 1) != 0)
        .collect())
}

/// A store reading `hook` from `source`'s contexts, forwards stopped there (the BOS
/// position skipped).
fn store_at<'m>(
    model: &'m HookedTransformer,
    source: &TokenSource,
    hook: &str,
) -> Res<ActivationStore<'m, HookedTransformer>> {
    let cfg = StoreConfig {
        skip_first_position: true,
        ..Default::default()
    };
    let hooks = vec![HookSpec::new(hook)];
    Ok(ActivationStore::new(
        model,
        forward,
        source.clone(),
        hooks,
        cfg,
    )?)
}

/// Activations of the first `n_seq` training contexts (forwards stopped at the hook).
fn collect(
    model: &HookedTransformer,
    train: &TokenSource,
    hook: &str,
    n_seq: usize,
    eot: u32,
) -> Res<(Collected, f64)> {
    let store = store_at(model, train, hook)?;
    let start = Instant::now();
    let mut parts = Vec::new();
    for first in (0..n_seq).step_by(FORWARD_BATCH) {
        let n = FORWARD_BATCH.min(n_seq - first);
        parts.push(store.activations(&train.batch(first, n)?)?.remove(0));
    }
    let acts = Tensor::cat(&parts, 0)?;
    let seconds = start.elapsed().as_secs_f64();
    let used = used_rows(train, 0, n_seq, eot)?;
    let keep = (0..used.len() as u32)
        .filter(|&i| used[i as usize])
        .collect();
    let mask: Vec<f32> = used.iter().map(|&u| u as u8 as f32).collect();
    let mask = Tensor::from_vec(mask, (used.len(), 1), &Device::Cpu)?;
    Ok((Collected { acts, keep, mask }, seconds))
}

/// A topk SAE trained for `epochs` passes over the kept rows in seeded random batches.
fn train_sae(c: &Collected, hook: &str, epochs: usize) -> Res<(TrainedSae, f64, usize)> {
    let mut sae =
        SaeConfig::new(c.acts.dim(1)?, D_SAE, Architecture::TopK { k: K }).with_hook(hook);
    sae.normalize_activations = Normalization::ExpectedAverageOnlyIn;
    sae.metadata.model_name = Some("SmolLM2-135M-Instruct".into());
    sae.metadata.context_size = Some(CONTEXT);
    sae.metadata.prepend_bos = Some(true);
    let mut cfg = SaeTrainConfig::new(sae);
    cfg.lr = 1e-3;
    cfg.lr_warm_up_steps = 20;
    cfg.lr_scheduler = LrSchedule::Cosine;
    cfg.seed = 0;
    let mut trainer = SaeTrainer::new(cfg, &Device::Cpu)?;
    let per_epoch = c.keep.len() / BATCH_TOKENS;
    let total = per_epoch * epochs;
    let mut rng = Rng::new(1);
    let mut order = c.keep.clone();
    let batch = |order: &[u32], i: usize| -> Res<Tensor> {
        let idx = Tensor::new(
            &order[i * BATCH_TOKENS..(i + 1) * BATCH_TOKENS],
            &Device::Cpu,
        )?;
        Ok(c.acts.index_select(&idx, 0)?)
    };
    let start = Instant::now();
    rng.shuffle(&mut order);
    let sample = (0..per_epoch.min(10))
        .map(|i| batch(&order, i))
        .collect::<Res<Vec<_>>>()?;
    let scale = trainer.estimate_input_scale(&sample)?.unwrap_or(1.0);
    // b_dec starts at the mean activation (SAELens's former `b_dec_init_method = "mean"`):
    // the residual stream has a large constant part that Adam would take thousands of
    // steps to move a zero-initialised b_dec to.
    let mean = (Tensor::cat(&sample, 0)?.mean(0)? * scale)?;
    trainer.params().b_dec.set(&mean)?;
    let mut last = StepMetrics::default();
    for step in 0..total {
        if step > 0 && step % per_epoch == 0 {
            rng.shuffle(&mut order);
        }
        last = trainer.step(&batch(&order, step % per_epoch)?, step, total)?;
        if step % 50 == 0 || step + 1 == total {
            eprintln!(
                "step {step:4}/{total}: mse {:.2}, L0 {:.1}, explained variance {:.3}, dead {}",
                last.mse_loss, last.l0, last.explained_variance, last.dead
            );
        }
    }
    let trained = TrainedSae {
        sae: trainer.export()?,
        log_sparsity: trainer.log_sparsity()?,
        last,
    };
    Ok((trained, start.elapsed().as_secs_f64(), total))
}

/// Held-out metrics, printed and returned as summary rows.
fn evaluate(
    model: &HookedTransformer,
    sae: &Sae,
    hook: &str,
    held_out: &TokenSource,
    eot: u32,
) -> Res<Vec<(String, String)>> {
    let ids = held_out.batch(0, held_out.len())?;
    let x = store_at(model, held_out, hook)?
        .activations(&ids)?
        .remove(0);
    let used = used_rows(held_out, 0, held_out.len(), eot)?;
    let keep: Vec<u32> = (0..used.len() as u32)
        .filter(|&i| used[i as usize])
        .collect();
    let x = x.index_select(&Tensor::new(keep, &Device::Cpu)?, 0)?;
    let m = reconstruction_metrics(sae, &x, 0.1)?;
    let s = downstream_scores_ignoring(model, sae, hook, &ids, &[eot], forward)?;
    println!(
        "held out ({} tokens): explained variance {:.3}, L0 {:.1}, MSE {:.4}",
        m.rows, m.explained_variance, m.l0, m.mse
    );
    println!(
        "CE clean {:.3}, with SAE {:.3}, zero-ablated {:.3}: CE loss score {:.3}; KL {:.3} (zero-ablated {:.3}), KL score {:.3}",
        s.ce_clean, s.ce_sae, s.ce_zero, s.ce_loss_score, s.kl_sae, s.kl_zero, s.kl_score
    );
    Ok(vec![
        ("held-out tokens".into(), m.rows.to_string()),
        (
            "explained variance".into(),
            format!("{:.3}", m.explained_variance),
        ),
        ("L0".into(), format!("{:.1}", m.l0)),
        (
            "CE loss (clean / SAE / zero-ablated)".into(),
            format!(
                "{:.3} / {:.3} / {:.3} nats",
                s.ce_clean, s.ce_sae, s.ce_zero
            ),
        ),
        ("CE loss score".into(), format!("{:.3}", s.ce_loss_score)),
        (
            "KL (SAE / zero-ablated)".into(),
            format!("{:.3} / {:.3} nats", s.kl_sae, s.kl_zero),
        ),
    ])
}

mod dashboard {
    use super::*;

    const BEFORE: usize = 12;
    const AFTER: usize = 4;
    const CONTEXTS: usize = 8;

    /// Firing frequencies and top contexts over the first collected contexts (`acts`:
    /// `CONTEXT - 1` rows per context, position 0 left out); writes `index.html` and
    /// `density.svg` to `out`.
    pub fn write(
        model: &HookedTransformer,
        sae: &Sae,
        hook: &str,
        tokens: &TokenSource,
        c: &Collected,
        mut summary: Vec<(String, String)>,
        out: &Path,
    ) -> Res<()> {
        let n_seq = DASHBOARD_SEQUENCES.min(c.acts.dim(0)? / (CONTEXT - 1));
        let d_sae = sae.cfg().d_sae;
        let (density, rows) = scan(c, sae, n_seq, None)?;
        let dead = density.iter().filter(|&&d| d == 0.0).count();
        let dense = density.iter().filter(|&&d| d > 0.1).count();
        println!("over {rows} tokens: dead {dead} / {d_sae}, dense (> 10% of tokens) {dense}");
        summary.push((
            "dead latents".into(),
            format!("{dead} of {d_sae} (never fired on {rows} tokens)"),
        ));
        summary.push((
            "dense latents".into(),
            format!("{dense} (fire on > 10% of tokens)"),
        ));
        let mut alive: Vec<usize> = (0..d_sae)
            .filter(|&i| density[i] > 1e-4 && density[i] < 0.1)
            .collect();
        Rng::new(5).shuffle(&mut alive);
        alive.truncate(SHOWN_LATENTS);
        alive.sort();
        let mut top = TopActivations::new(alive, CONTEXTS);
        scan(c, sae, n_seq, Some(&mut top))?;
        let cards = cards(model, c, sae, tokens, &top, &density)?;
        let svg = density_histogram_svg(&density, &format!("Feature density over {rows} tokens"));
        let page = Dashboard {
            title: format!("A topk SAE on SmolLM2-135M-Instruct, {hook}"),
            intro: format!("{d_sae} latents, k = {K}, trained on Debian's fortunes by auto_hook_sae's smollm2_sae example. \
                Each card shows a randomly chosen latent that fires on 0.01% to 10% of tokens: its top-activating contexts \
                (the token it fires on boxed, {BEFORE} tokens before and {AFTER} after, shaded by activation; ↵ is a line break; \
                <|endoftext|> separates documents; the SAE is neither trained nor evaluated there, nor at position 1) \
                and the tokens its decoder direction promotes through the final norm and unembedding."),
            summary,
            figures: vec![svg.clone()],
            features: cards,
        };
        std::fs::create_dir_all(out)?;
        std::fs::write(out.join("index.html"), page.to_html())?;
        std::fs::write(out.join("density.svg"), svg)?;
        Ok(())
    }

    /// Firing frequency of every latent over the first `n_seq` contexts of `acts`, and
    /// feeds `top` (positions in the context's numbering, position 0 never chosen).
    fn scan(
        c: &Collected,
        sae: &Sae,
        n_seq: usize,
        mut top: Option<&mut TopActivations>,
    ) -> Res<(Vec<f64>, usize)> {
        let mut counts = vec![0f64; sae.cfg().d_sae];
        let per = CONTEXT - 1;
        for first in (0..n_seq).step_by(FORWARD_BATCH) {
            let n = FORWARD_BATCH.min(n_seq - first);
            let mask = c.mask.narrow(0, first * per, n * per)?;
            let f = sae
                .encode(&c.acts.narrow(0, first * per, n * per)?)?
                .broadcast_mul(&mask)?;
            let fired = f.ne(0f32)?.to_dtype(DType::F32)?.sum(0)?.to_vec1::<f32>()?;
            counts
                .iter_mut()
                .zip(fired)
                .for_each(|(c, v)| *c += v as f64);
            if let Some(top) = top.as_deref_mut() {
                top.add(&f.reshape((n, per, ()))?.pad_with_zeros(1, 1, 0)?, first)?;
            }
        }
        let rows = c.keep.partition_point(|&i| (i as usize) < n_seq * per);
        Ok((counts.iter().map(|c| c / rows as f64).collect(), rows))
    }

    fn cards(
        model: &HookedTransformer,
        c: &Collected,
        sae: &Sae,
        tokens: &TokenSource,
        top: &TopActivations,
        density: &[f64],
    ) -> Res<Vec<FeatureCard>> {
        let text = model.text().ok_or("no tokenizer")?;
        let latents = top.latents();
        let ids = Tensor::new(
            latents.iter().map(|&l| l as u32).collect::<Vec<_>>(),
            &Device::Cpu,
        )?;
        let dirs = sae.w_dec().index_select(&ids, 0)?.unsqueeze(0)?; // [1, L, d_model]
        let logits = model
            .unembed()
            .forward(&model.ln_final().forward(&dirs)?)?
            .squeeze(0)?;
        let mut cards = Vec::new();
        for (i, &latent) in latents.iter().enumerate() {
            let row = logits.get(i)?.to_vec1::<f32>()?;
            let mut best: Vec<usize> = (0..row.len()).collect();
            best.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            let top_logits = best[..6]
                .iter()
                .map(|&t| Ok((text.decode(&[t as u32])?, row[t])))
                .collect::<Res<Vec<_>>>()?;
            let mut contexts = Vec::new();
            for t in top.top(i) {
                let seq = tokens.batch(t.sequence, 1)?.squeeze(0)?.to_vec1::<u32>()?;
                let strs = seq
                    .iter()
                    .map(|&id| text.decode(&[id]))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let x = latent_values(c, sae, t.sequence, latent)?;
                contexts.push(Context::around(&strs, &x, t.position, BEFORE, AFTER));
            }
            cards.push(FeatureCard {
                latent,
                density: density[latent],
                contexts,
                top_logits,
            });
        }
        Ok(cards)
    }

    /// One latent's activation at every position of context `seq` (0 at position 0 and
    /// at `<|endoftext|>`).
    fn latent_values(c: &Collected, sae: &Sae, seq: usize, latent: usize) -> Res<Vec<f32>> {
        let per = CONTEXT - 1;
        let f = sae.encode(&c.acts.narrow(0, seq * per, per)?)?;
        let f = f
            .narrow(1, latent, 1)?
            .mul(&c.mask.narrow(0, seq * per, per)?)?;
        let mut v = vec![0.0];
        v.extend(f.squeeze(1)?.to_vec1::<f32>()?);
        Ok(v)
    }
}
