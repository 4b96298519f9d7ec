//! SAEs are hooked models, and splice into a hooked model through ordinary hooks.

use auto_hook::prelude::*;
use auto_hook_models::induction::repeated_tokens;
use auto_hook_models::HookedTransformer;
use auto_hook_sae::{Architecture, Sae, SaeConfig, Spliced};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

fn model() -> HookedTransformer {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/induction-2l");
    auto_hook_models::load(dir, DType::F32, &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    auto_hook::max_abs_diff(a, b).unwrap()
}

fn sae(d_in: usize) -> Sae {
    Sae::init(
        &SaeConfig::new(d_in, 128, Architecture::TopK { k: 8 }),
        Some(1.0),
        3,
        &Device::Cpu,
    )
    .unwrap()
}

#[test]
fn an_sae_lists_saelens_hook_names_and_every_one_fires() {
    let sae = sae(64);
    // SAELens's names, in declaration order
    let saelens = [
        "hook_sae_input",
        "hook_sae_acts_pre",
        "hook_sae_acts_post",
        "hook_sae_output",
        "hook_sae_recons",
        "hook_sae_error",
    ];
    assert_eq!(sae.hook_point_names(), saelens);
    assert_eq!(Sae::hook_names(), saelens);
    let x = Tensor::randn(0f32, 1.0, (2, 5, 64), &Device::Cpu).unwrap();
    let (_, cache) = sae
        .run_with_cache(CacheOptions::all(), |s| s.forward_with_error(&x))
        .unwrap();
    let fired: Vec<&str> = cache.names().collect();
    assert_eq!(fired.len(), 6, "{fired:?}");
    assert_eq!(cache.get("hook_sae_acts_post").unwrap().dims(), [2, 5, 128]);
    assert_eq!(cache.get("hook_sae_error").unwrap().dims(), [2, 5, 64]);
}

#[test]
fn a_hook_on_the_latents_edits_the_reconstruction() {
    let sae = sae(64);
    let x = Tensor::randn(0f32, 1.0, (4, 64), &Device::Cpu).unwrap();
    let zeroed = sae
        .run_with_hooks(
            Hooks::new().add("hook_sae_acts_post", |f, _| f.zeros_like()),
            |s| s.forward(&x),
        )
        .unwrap();
    // Zero latents decode to b_dec alone.
    let b_dec = sae
        .b_dec()
        .unsqueeze(0)
        .unwrap()
        .broadcast_as((4, 64))
        .unwrap();
    assert_eq!(max_diff(&zeroed, &b_dec), 0.0);
    assert!(max_diff(&sae.forward(&x).unwrap(), &zeroed) > 1e-3);
}

#[test]
fn splicing_replaces_the_activation_and_caches_model_and_sae_in_one_run() {
    let model = model();
    let tokens = repeated_tokens(4, 10, 64, 5).unwrap();
    let clean = model.forward(&tokens, None).unwrap();
    let hook = "blocks.0.hook_resid_post";
    let spliced = Spliced::new(&model).with_sae(hook, sae(64), false).unwrap();
    let names = spliced.hook_point_names();
    assert!(names.contains(&"blocks.0.hook_resid_post.hook_sae_acts_post".to_string()));
    let filter = [
        hook,
        "blocks.1.hook_resid_pre",
        "blocks.0.hook_resid_post.hook_sae_output",
        "blocks.0.hook_resid_post.hook_sae_acts_post",
    ];
    let (logits, cache) = spliced
        .run_with_cache(filter, |s| s.run(|m| m.forward(&tokens, None)))
        .unwrap();
    assert_eq!(cache.names().count(), 4);
    // The model's own point sees the clean activation, the next block gets the SAE's output.
    let recon = cache
        .get("blocks.0.hook_resid_post.hook_sae_output")
        .unwrap();
    assert_eq!(
        max_diff(cache.get("blocks.1.hook_resid_pre").unwrap(), recon),
        0.0
    );
    assert!(max_diff(cache.get(hook).unwrap(), recon) > 1e-2);
    assert!(max_diff(&logits, &clean) > 1e-3);
    assert_eq!(
        cache
            .get("blocks.0.hook_resid_post.hook_sae_acts_post")
            .unwrap()
            .dims(),
        [4, 21, 128]
    );
}

#[test]
fn with_the_error_term_the_output_is_unchanged_until_a_latent_is_edited() {
    let model = model();
    let tokens = repeated_tokens(4, 10, 64, 6).unwrap();
    let clean = model.forward(&tokens, None).unwrap();
    let spliced = Spliced::new(&model)
        .with_sae("blocks.0.hook_resid_post", sae(64), true)
        .unwrap();
    let kept = spliced.run(|m| m.forward(&tokens, None)).unwrap();
    assert!(
        max_diff(&kept, &clean) < 1e-4,
        "{}",
        max_diff(&kept, &clean)
    );
    let edit = Hooks::new().add("blocks.0.hook_resid_post.hook_sae_acts_post", |f, _| {
        f.zeros_like()
    });
    let edited = spliced
        .run_with_hooks(edit, |s| s.run(|m| m.forward(&tokens, None)))
        .unwrap();
    assert!(max_diff(&edited, &clean) > 1e-2);
}

#[test]
fn hook_z_saes_splice_into_attention_heads() {
    let model = model();
    let tokens = repeated_tokens(2, 10, 64, 7).unwrap();
    let mut cfg = SaeConfig::new(64, 96, Architecture::Standard).with_hook("blocks.1.attn.hook_z");
    cfg.reshape_hook_z = true;
    let z_sae = Sae::init(&cfg, Some(0.1), 1, &Device::Cpu).unwrap();
    let spliced = Spliced::new(&model)
        .with_sae("blocks.1.attn.hook_z", z_sae, false)
        .unwrap();
    let (_, cache) = spliced
        .run_with_cache("blocks.1.attn.hook_z.hook_sae_acts_post", |s| {
            s.run(|m| m.forward(&tokens, None))
        })
        .unwrap();
    assert_eq!(
        cache
            .get("blocks.1.attn.hook_z.hook_sae_acts_post")
            .unwrap()
            .dims(),
        [2, 21, 96]
    );
}

#[test]
fn one_head_saes_replace_only_their_head() {
    let mut cfg = SaeConfig::new(16, 32, Architecture::Standard);
    cfg.metadata.hook_head_index = Some(2);
    let head_sae = Sae::init(&cfg, Some(0.1), 1, &Device::Cpu).unwrap();
    let z = Tensor::randn(0f32, 1.0, (2, 3, 4, 16), &Device::Cpu).unwrap();
    let out = head_sae.splice(&z, false).unwrap();
    for head in [0, 1, 3] {
        assert_eq!(
            max_diff(
                &out.narrow(2, head, 1).unwrap(),
                &z.narrow(2, head, 1).unwrap()
            ),
            0.0
        );
    }
    assert!(max_diff(&out.narrow(2, 2, 1).unwrap(), &z.narrow(2, 2, 1).unwrap()) > 1e-3);
}

#[test]
fn splicing_at_an_unknown_hook_lists_the_nearest_names() {
    let err = Spliced::new(&model())
        .with_sae("blocks.0.hook_resid_pots", sae(64), false)
        .unwrap_err();
    assert!(err.to_string().contains("did you mean"), "{err}");
    assert!(
        err.to_string().contains("blocks.0.hook_resid_post"),
        "{err}"
    );
}

#[test]
fn spliced_borrows_the_model_which_keeps_its_persistent_hooks() {
    let mut model = model();
    let tokens = repeated_tokens(2, 10, 64, 8).unwrap();
    let clean = model.forward(&tokens, None).unwrap();
    // A persistent hook on the model (added before splicing) fires in spliced runs.
    model
        .add_hook("blocks.1.hook_resid_pre", |x: &Tensor, _: &HookInfo| {
            x.zeros_like()
        })
        .unwrap();
    let hook = "blocks.0.hook_resid_post";
    let mut spliced = Spliced::new(&model).with_sae(hook, sae(64), true).unwrap();
    let zeroed = model
        .run_with_hooks(Hooks::new(), |m| m.forward(&tokens, None))
        .unwrap();
    let through = spliced.run(|m| m.forward(&tokens, None)).unwrap();
    assert_eq!(max_diff(&through, &zeroed), 0.0);
    assert!(max_diff(&through, &clean) > 1e-3);
    // A persistent hook through the Spliced reaches the SAE's own points.
    let acts = format!("{hook}.hook_sae_acts_post");
    spliced
        .add_hook(acts.as_str(), |f: &Tensor, _: &HookInfo| f.zeros_like())
        .unwrap();
    let (_, cache) = spliced
        .run_with_cache(acts.as_str(), |s| s.run(|m| m.forward(&tokens, None)))
        .unwrap();
    assert_eq!(
        cache
            .get(&acts)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
    // The model is still usable directly, beside the Spliced.
    assert_eq!(
        max_diff(&model.forward(&tokens, None).unwrap(), &zeroed),
        0.0
    );
}

#[auto_hook]
struct TwoLayers {
    fc1: candle_nn::Linear,
    fc2: candle_nn::Linear,
}

#[auto_hook]
impl TwoLayers {
    fn new(vb: candle_nn::VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            fc1: candle_nn::linear(6, 8, vb.pp("fc1"))?,
            fc2: candle_nn::linear(8, 4, vb.pp("fc2"))?,
        })
    }
}

/// A skip transcoder from `fc1.hook_point` (8 wide) to `fc2.hook_point` (`d_out`).
fn transcoder(d_out: usize) -> Sae {
    let arch = Architecture::Transcoder {
        jumprelu: false,
        skip: true,
    };
    let cfg = SaeConfig::new(8, 32, arch)
        .with_hook("fc1.hook_point")
        .with_hook_out("fc2.hook_point", d_out);
    let init = Sae::init(&cfg, None, 5, &Device::Cpu).unwrap();
    let mut p = init.params().clone();
    p.w_skip = Some(Tensor::randn(0f32, 0.1, (d_out, 8), &Device::Cpu).unwrap());
    Sae::from_params(cfg, p).unwrap()
}

#[test]
fn a_transcoder_of_another_width_replaces_its_output_hook() {
    use candle_core::Module;
    let map = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
    let model = TwoLayers::new(vb).unwrap();
    let forward = |m: &TwoLayers, x: &Tensor| m.fc2.forward(&m.fc1.forward(x)?);
    let x = Tensor::randn(0f32, 1.0, (3, 6), &Device::Cpu).unwrap();
    let tc = transcoder(4);
    // By hand: the transcoder of fc1's output in place of fc2's.
    let expected = tc.forward(&model.fc1.forward(&x).unwrap()).unwrap();
    assert_eq!(expected.dims(), [3, 4]);
    let spliced = Spliced::new(&model).with_transcoder(tc, false).unwrap();
    let out = spliced.run(|m| forward(m, &x)).unwrap();
    assert_eq!(max_diff(&out, &expected), 0.0);
    assert!(max_diff(&out, &forward(&model, &x).unwrap()) > 1e-3);
    // With the error term the output is the clean one.
    let kept = Spliced::new(&model)
        .with_transcoder(transcoder(4), true)
        .unwrap();
    let kept = kept.run(|m| forward(m, &x)).unwrap();
    assert!(max_diff(&kept, &forward(&model, &x).unwrap()) < 1e-6);
    // An output of another width than the hook's fails the run, typed.
    let wrong = Spliced::new(&model)
        .with_transcoder(transcoder(5), false)
        .unwrap();
    let err = wrong.run(|m| forward(m, &x)).unwrap_err();
    match err.find::<auto_hook_sae::Error>() {
        Some(auto_hook_sae::Error::Shape { what, problem }) => {
            assert!(what.contains("fc2.hook_point"), "{what}");
            assert!(problem.contains("d_out = 5"), "{problem}");
        }
        other => panic!("expected a shape error, got {other:?} from {err}"),
    }
    // A transcoder's own error term needs the output hook: forward_with_error refuses.
    let h = model.fc1.forward(&x).unwrap();
    assert!(transcoder(4).forward_with_error(&h).is_err());
}
