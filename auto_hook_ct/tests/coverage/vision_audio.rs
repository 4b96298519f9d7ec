//! Vision and audio models: dinov2, clip (a directory module: `clip/mod.rs` with its
//! text and vision submodules, hooked whole), whisper (also a directory module; its
//! cross-attention sits in an `Option<(MultiHeadAttention, LayerNorm)>`), and the
//! closure-built convnext and resnet.

use super::{assert_listed, check_all, common, stop, TestResult};
use auto_hook::prelude::*;
use auto_hook_ct::built;
use candle::{Device, Module, Tensor};
use candle_transformers::models as ct;

/// `n` images of `c` channels, `size` × `size`, with deterministic values in [-1, 1].
fn images(n: usize, c: usize, size: usize) -> candle::Result<Tensor> {
    let len = (n * c * size * size) as f32;
    (Tensor::arange(0f32, len, &Device::Cpu)?.reshape((n, c, size, size))? * 0.37)?.sin()
}

#[test]
fn dinov2() -> TestResult {
    // 28×28 images in 14×14 patches; the 37×37 position table resampled to 2×2.
    let (mut model, reference) = common::build_pair(
        |vb| built::dinov2::DinoVisionTransformer::new(vb, 2, 32, 4),
        |vb| ct::dinov2::DinoVisionTransformer::new(vb, 2, 32, 4),
    )?;
    let x = images(1, 3, 28)?; // batch 1: dinov2 concatenates its [1, 1, d] class token as it is
    let run = |m: &mut built::dinov2::DinoVisionTransformer| m.forward(&x);
    assert_listed(&model.hook_point_names(), "blocks.0.ls1.gamma.hook_point");
    check_all(
        &mut model,
        || reference.forward(&x),
        run,
        stop("blocks.0.**", "blocks.1."),
        "blocks.1.mlp.fc2.hook_point",
    )
}

/// A two-layer CLIP of width 32 (text: 64 tokens; vision: 16×16 images, 8×8 patches).
macro_rules! tiny_clip {
    ($clip:path) => {{
        use $clip as clip;
        clip::ClipConfig {
            text_config: clip::text_model::ClipTextConfig {
                vocab_size: 64,
                embed_dim: 32,
                activation: clip::text_model::Activation::QuickGelu,
                intermediate_size: 48,
                max_position_embeddings: 16,
                pad_with: None,
                num_hidden_layers: 2,
                num_attention_heads: 4,
                projection_dim: 24,
            },
            vision_config: clip::vision_model::ClipVisionConfig {
                embed_dim: 32,
                activation: clip::text_model::Activation::QuickGelu,
                intermediate_size: 48,
                num_hidden_layers: 2,
                num_attention_heads: 4,
                projection_dim: 24,
                num_channels: 3,
                image_size: 16,
                patch_size: 8,
            },
            logit_scale_init_value: 2.6592,
            image_size: 16,
        }
    }};
}

#[test]
fn clip() -> TestResult {
    let (cfg, ref_cfg) = (tiny_clip!(built::clip), tiny_clip!(ct::clip));
    // The class embedding is random unless the weights hold one: create it first.
    let class_embedding = |vb: &candle_nn::VarBuilder| {
        let init = candle_nn::Init::Const(0.);
        vb.pp("vision_model.embeddings")
            .get_with_hints(32, "class_embedding", init)
    };
    let (mut model, ct_model) = common::build_pair(
        |vb| {
            class_embedding(&vb)?;
            built::clip::ClipModel::new(vb, &cfg)
        },
        |vb| ct::clip::ClipModel::new(vb, &ref_cfg),
    )?;
    let (x, ids) = (images(2, 3, 16)?, common::tokens(&Device::Cpu)?);
    // logits per image, then per text, side by side
    let run = |m: &mut built::clip::ClipModel| {
        let (per_image, per_text) = m.forward(&x, &ids)?;
        Tensor::cat(&[per_image, per_text], 1)
    };
    let reference = || {
        let (per_image, per_text) = ct_model.forward(&x, &ids)?;
        Tensor::cat(&[per_image, per_text], 1)
    };
    let names = model.hook_point_names();
    assert_listed(&names, "text_model.encoder.layers.1.mlp.fc2.hook_point");
    assert_listed(
        &names,
        "vision_model.encoder.layers.0.self_attn.q_proj.hook_point",
    );
    check_all(
        &mut model,
        reference,
        run,
        stop("vision_model.encoder.layers.0.**", "text_model."),
        "text_model.encoder.layers.1.mlp.fc2.hook_point",
    )
}

#[test]
fn whisper() -> TestResult {
    // 8 mel bins, 16 frames (8 positions after the stride-2 convolution), 2+2 layers.
    const CONFIG: &str = r#"{"num_mel_bins": 8, "max_source_positions": 8, "d_model": 32,
      "encoder_attention_heads": 4, "encoder_layers": 2, "vocab_size": 64,
      "max_target_positions": 16, "decoder_attention_heads": 4, "decoder_layers": 2}"#;
    let cfg: built::whisper::Config = serde_json::from_str(CONFIG)?;
    let ref_cfg: ct::whisper::Config = serde_json::from_str(CONFIG)?;
    let (mut model, mut reference) = common::build_pair(
        |vb| built::whisper::model::Whisper::load(&vb, cfg.clone()),
        |vb| ct::whisper::model::Whisper::load(&vb, ref_cfg.clone()),
    )?;
    let (mel, ids) = (
        images(2, 1, 8)?.reshape((2, 8, 8))?.repeat((1, 1, 2))?,
        common::tokens(&Device::Cpu)?,
    );
    let run = |m: &mut built::whisper::model::Whisper| {
        let audio = m.encoder.forward(&mel, true)?;
        let h = m.decoder.forward(&ids, &audio, true)?;
        m.decoder.final_linear(&h)
    };
    let reference = || {
        let audio = reference.encoder.forward(&mel, true)?;
        let h = reference.decoder.forward(&ids, &audio, true)?;
        reference.decoder.final_linear(&h)
    };
    assert_listed(
        &model.hook_point_names(),
        "decoder.blocks.0.cross_attn.0.query.hook_point",
    );
    check_all(
        &mut model,
        reference,
        run,
        stop("encoder.blocks.0.**", "encoder.blocks.1."),
        "decoder.blocks.1.mlp_linear2.hook_point",
    )
}

/// convnext and resnet build their layers as closures (`candle_nn::Func`): the hooked
/// file has no struct to rewrite, so the model wrapped by `auto_hook` has its output as
/// its only point. Nothing inside is reachable; this test pins that down.
#[test]
fn closure_built_models_have_only_their_output() -> TestResult {
    let x = images(2, 3, 32)?;
    let cfg = built::convnext::Config::atto();
    let (convnext, reference) = common::build_pair(
        |vb| built::convnext::convnext(&cfg, 10, vb),
        |vb| ct::convnext::convnext(&ct::convnext::Config::atto(), 10, vb),
    )?;
    output_only(convnext, reference, &x)?;
    // resnet's closures borrow their builder: built here rather than by `build_pair`
    let varmap = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&varmap, candle::DType::F32, &Device::Cpu);
    built::resnet::resnet18(10, vb.clone())?;
    auto_hook_ct::weights::fill(&varmap, 42)?;
    let resnet = built::resnet::resnet18(10, vb.clone())?;
    output_only(resnet, ct::resnet::resnet18(10, vb)?, &x)
}

/// `hooked` wrapped by `auto_hook` lists only its output point, and passes the checks
/// against `reference` with it.
fn output_only(hooked: impl Module + 'static, reference: impl Module, x: &Tensor) -> TestResult {
    let mut model = auto_hook(hooked);
    assert!(!model.has_inner_points());
    assert_eq!(model.hook_point_names(), ["hook_point"]);
    check_all(
        &mut model,
        || reference.forward(x),
        |m| m.forward(x),
        stop("**", "never"),
        "hook_point",
    )
}
