//! A TransformerLens-named analysis on candle-transformers' own Qwen2, hooked through
//! `auto_hook_build` and seen through the shipped adapter
//! (`auto_hook::adapters::candle_transformers::qwen2`): the residual stream's norm after
//! each block (`blocks.{l}.hook_resid_post`) and, per block, how much zero-ablating its
//! attention and MLP outputs (`blocks.{l}.hook_attn_out`, `blocks.{l}.hook_mlp_out`)
//! moves the last position's logits. Tiny random weights: the numbers show the plumbing,
//! not a finding. Names the file's structure cannot expose are listed, not faked.
//!
//! `cargo run -p auto_hook_ct --example tl_names_qwen2`

use auto_hook::adapters::candle_transformers as adapters;
use auto_hook::prelude::*;
use auto_hook_ct::built::qwen2;
use candle::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const CONFIG: &str = r#"{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
  "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
  "max_position_embeddings": 64, "sliding_window": 64, "max_window_layers": 3,
  "tie_word_embeddings": false, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
  "use_sliding_window": false, "hidden_act": "silu"}"#;

fn main() -> Res<()> {
    let dev = Device::Cpu;
    let cfg: qwen2::Config = serde_json::from_str(CONFIG)?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    qwen2::ModelForCausalLM::new(&cfg, vb.clone())?;
    auto_hook_ct::weights::fill(&varmap, 3)?;
    let model = qwen2::ModelForCausalLM::new(&cfg, vb)?;
    // TransformerLens names for the file's own points
    let mut model = adapters::qwen2("base_model.").wrap(model);
    let ids = Tensor::new(&[[1u32, 7, 3, 60, 12, 9]], &dev)?;
    let run = |m: &mut qwen2::ModelForCausalLM| {
        m.clear_kv_cache();
        m.forward(&ids, 0)
    };
    let (clean, cache) =
        model.run_with_cache_mut(CacheOptions::names("blocks.*.hook_resid_post"), |m| run(m))?;
    println!("block  |resid_post|  Δlogits(attn_out=0)  Δlogits(mlp_out=0)");
    for l in 0..3 {
        let resid = cache.get(&format!("blocks.{l}.hook_resid_post"))?;
        let norm = resid.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
        let mut ablated = |what: &str| -> Res<f32> {
            let zero =
                Hooks::new().add(format!("blocks.{l}.{what}"), |a: &Tensor, _| a.zeros_like());
            let out = model.run_with_hooks_mut(zero, |m| run(m))?;
            Ok((out - &clean)?.abs()?.max_all()?.to_scalar::<f32>()?)
        };
        let (attn, mlp) = (ablated("hook_attn_out")?, ablated("hook_mlp_out")?);
        println!("{l:>5}  {norm:>12.4}  {attn:>19.4}  {mlp:>18.4}");
    }
    println!("\nnot exposed by qwen2.rs's structure:");
    for (name, why) in model.aliases().missing_names() {
        println!("  {name}: {why}");
    }
    Ok(())
}
