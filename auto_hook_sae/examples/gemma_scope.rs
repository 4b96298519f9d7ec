//! Splices a Gemma Scope SAE (a folder with `params.npz`) into a Gemma 2 model and prints
//! the CE loss score and KL as SAELens computes them (natural log, soft-capped logits;
//! SAELens's `run_evals` ignores BOS / EOS / padding tokens, shown on the second line).
//!
//! cargo run --release -p auto_hook_sae --example gemma_scope -- [MODEL SAE_FOLDER HOOK [TEXT]]
//!
//! With no argument it runs the committed tiny fixtures: the random Gemma 2 of
//! `auto_hook_models/tests/fixtures/gemma2` and the Gemma Scope-format SAE of
//! `auto_hook_sae/tests/fixtures/gemma_scope` at `blocks.1.hook_resid_post`, on the tokens
//! of SAELens's reference (`downstream.safetensors`). With a real model (e.g. a
//! `google/gemma-2-2b` folder and `layer_12/width_16k/average_l0_82` of
//! `google/gemma-scope-2b-pt-res`, hook `blocks.12.hook_resid_post`), TEXT is tokenized
//! with the model's tokenizer.

use auto_hook_sae::{downstream_scores_ignoring, DownstreamScores, Sae};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture_sae = root.join("tests/fixtures/gemma_scope");
    let (model_dir, sae_dir, hook, text) = match &args[..] {
        [] => (
            root.join("../auto_hook_models/tests/fixtures/gemma2"),
            fixture_sae.clone(),
            "blocks.1.hook_resid_post".to_owned(),
            None,
        ),
        [m, s, h, rest @ ..] => (m.into(), s.into(), h.clone(), rest.first().cloned()),
        _ => return Err("usage: gemma_scope [MODEL SAE_FOLDER HOOK [TEXT]]".into()),
    };
    let device = Device::Cpu;
    let model = auto_hook_models::load(&model_dir, DType::F32, &device)?;
    let sae = Sae::load_gemma_scope(&sae_dir, &hook, &device)?;
    let tokens = match &text {
        Some(text) => model.to_tokens(text, &device)?,
        None => {
            let reference = candle_core::safetensors::load(
                fixture_sae.join("downstream.safetensors"),
                &device,
            )?;
            reference["tokens"].to_dtype(DType::U32)?
        }
    };
    println!(
        "Gemma Scope SAE d_in {} d_sae {} at {hook}; tokens {:?}",
        sae.cfg().d_in,
        sae.cfg().d_sae,
        tokens.dims()
    );
    let forward = |m: &auto_hook_models::HookedTransformer, ids: &Tensor| m.forward(ids, None);
    // Gemma's pad, eos and bos ids (what SAELens's run_evals leaves out by default).
    let special = [0u32, 1, 2];
    for (what, ignore) in [
        ("every token", &[][..]),
        ("without pad/eos/bos", &special[..]),
    ] {
        let s = downstream_scores_ignoring(&model, &sae, &hook, &tokens, ignore, forward)?;
        print_scores(what, &s);
    }
    Ok(())
}

fn print_scores(what: &str, s: &DownstreamScores) {
    println!(
        "{what}: CE clean {:.4} spliced {:.4} zero-ablated {:.4} -> CE loss score {:.4}; \
         KL spliced {:.4} zero-ablated {:.4} -> KL score {:.4}",
        s.ce_clean, s.ce_sae, s.ce_zero, s.ce_loss_score, s.kl_sae, s.kl_zero, s.kl_score
    );
}
