//! TransformerLens names for candle-transformers 0.11's decoders hooked through
//! `auto_hook_build` (or `#[auto_hook]` on a copy): each function gives the [`Aliases`]
//! table of one model file, mapping every TransformerLens name its structure exposes,
//! and listing the rest as missing.
//!
//! `prefix` is where the decoder sits in the hooked value: `""` for the file's `Model`,
//! `"base_model."` for qwen2's `ModelForCausalLM`, `"base."` for qwen3's.
//!
//! ```
//! use auto_hook_runtime::adapters::candle_transformers as ct;
//! let names = ct::qwen2("base_model.");
//! assert_eq!(names.to_alias("base_model.layers.4.hook_point"), "blocks.4.hook_resid_post");
//! assert_eq!(names.to_own("blocks.0.attn.hook_q").as_deref(), Some("base_model.layers.0.self_attn.q_proj.hook_point"));
//! ```
//!
//! What the names carry: `hook_embed`, `blocks.{l}.hook_resid_post` (the decoder layer's
//! output), `hook_attn_out` / `hook_mlp_out` (the attention and MLP outputs, after their
//! output projection; Gemma 2: after the post-norms, as TransformerLens), `ln1` / `ln2`
//! `.hook_normalized` (the pre-norms' outputs, with their weight applied),
//! `attn.hook_q/k/v` (the projections' outputs, `[batch, pos, heads · d_head]`, not split
//! into heads) and `ln_final.hook_normalized`.

pub mod candle_transformers {
    use crate::Aliases;

    /// Points that live inside functions of these files, never as a module output.
    const INSIDE: &[(&str, &str)] = &[
        ("blocks.{l}.hook_resid_pre", "the layer's input is not a module output (it is the previous layer's `hook_resid_post`)"),
        ("blocks.{l}.hook_resid_mid", "the residual sum after attention is computed inside the layer's forward"),
        ("blocks.{l}.attn.hook_attn_scores", "computed inside the attention's forward"),
        ("blocks.{l}.attn.hook_pattern", "computed inside the attention's forward"),
        ("blocks.{l}.attn.hook_z", "computed inside the attention's forward"),
        ("blocks.{l}.mlp.hook_pre", "the gate activation is computed inside the MLP's forward"),
        ("blocks.{l}.mlp.hook_post", "the gated product is computed inside the MLP's forward"),
    ];

    /// The names every file shares, for a decoder at `prefix` whose layers are `layers`
    /// and whose parts have the given field names.
    fn decoder(prefix: &str, embed: &str, layers: &str, ln: (&str, &str), norm: &str) -> Aliases {
        let own = |rest: &str| format!("{prefix}{rest}");
        let mut names = Aliases::new()
            .alias("hook_embed", &own(&format!("{embed}.hook_point")))
            .alias(
                "blocks.{l}.hook_resid_post",
                &own(&format!("{layers}.{{l}}.hook_point")),
            )
            .alias(
                "blocks.{l}.ln1.hook_normalized",
                &own(&format!("{layers}.{{l}}.{}.hook_point", ln.0)),
            )
            .alias(
                "blocks.{l}.ln2.hook_normalized",
                &own(&format!("{layers}.{{l}}.{}.hook_point", ln.1)),
            )
            .alias(
                "ln_final.hook_normalized",
                &own(&format!("{norm}.hook_point")),
            );
        for (name, why) in INSIDE {
            names = names.missing(name, why);
        }
        names.missing(
            "hook_pos_embed",
            "rotary positions: no position embedding is added",
        )
    }

    /// `attn.hook_q/k/v`, `hook_attn_out`, `hook_mlp_out` for separate projections.
    fn attention(names: Aliases, prefix: &str, layers: &str, attn: &str, mlp: &str) -> Aliases {
        let at = |rest: &str| format!("{prefix}{layers}.{{l}}.{rest}");
        names
            .alias(
                "blocks.{l}.attn.hook_q",
                &at(&format!("{attn}.q_proj.hook_point")),
            )
            .alias(
                "blocks.{l}.attn.hook_k",
                &at(&format!("{attn}.k_proj.hook_point")),
            )
            .alias(
                "blocks.{l}.attn.hook_v",
                &at(&format!("{attn}.v_proj.hook_point")),
            )
            .alias(
                "blocks.{l}.hook_attn_out",
                &at(&format!("{attn}.hook_point")),
            )
            .alias("blocks.{l}.hook_mlp_out", &at(&format!("{mlp}.hook_point")))
    }

    /// `models/llama.rs` (`Llama`: `wte`, `blocks`, `rms_1`/`rms_2`, `ln_f`).
    pub fn llama() -> Aliases {
        let names = decoder("", "wte", "blocks", ("rms_1", "rms_2"), "ln_f");
        attention(names, "", "blocks", "attn", "mlp")
    }

    /// `models/qwen2.rs`: `Model` at `""`, `ModelForCausalLM` at `"base_model."`.
    pub fn qwen2(prefix: &str) -> Aliases {
        let names = decoder(
            prefix,
            "embed_tokens",
            "layers",
            ("input_layernorm", "post_attention_layernorm"),
            "norm",
        );
        attention(names, prefix, "layers", "self_attn", "mlp")
    }

    /// `models/qwen3.rs`: `Model` at `""`, `ModelForCausalLM` at `"base."`. Also
    /// `attn.hook_q_normed` / `hook_k_normed`... are not TransformerLens names: the
    /// q/k norms keep their own names.
    pub fn qwen3(prefix: &str) -> Aliases {
        let names = decoder(prefix, "embed_tokens", "layers", ("ln1", "ln2"), "norm");
        attention(names, prefix, "layers", "self_attn", "mlp")
    }

    /// `models/mistral.rs` (`Model`).
    pub fn mistral() -> Aliases {
        qwen2("")
    }

    /// `models/gemma.rs` (`Model`). Gemma scales the embedding inside `Model::forward`:
    /// `hook_embed` is the embedding before that scale.
    pub fn gemma() -> Aliases {
        qwen2("")
    }

    /// `models/phi3.rs` (`Model`): q, k and v come from one fused projection, so
    /// `attn.hook_q/k/v` are missing.
    pub fn phi3() -> Aliases {
        let at = |rest: &str| format!("layers.{{l}}.{rest}");
        decoder(
            "",
            "embed_tokens",
            "layers",
            ("input_layernorm", "post_attention_layernorm"),
            "norm",
        )
        .alias("blocks.{l}.hook_attn_out", &at("self_attn.hook_point"))
        .alias("blocks.{l}.hook_mlp_out", &at("mlp.hook_point"))
        .missing(
            "blocks.{l}.attn.hook_q",
            "q, k and v come from one fused projection (`qkv_proj`)",
        )
        .missing(
            "blocks.{l}.attn.hook_k",
            "q, k and v come from one fused projection (`qkv_proj`)",
        )
        .missing(
            "blocks.{l}.attn.hook_v",
            "q, k and v come from one fused projection (`qkv_proj`)",
        )
    }

    /// `models/gemma2.rs` (`Model`): TransformerLens's `ln1_post` / `ln2_post` are the
    /// post-norms, and `hook_attn_out` / `hook_mlp_out` come after them.
    pub fn gemma2() -> Aliases {
        let at = |rest: &str| format!("layers.{{l}}.{rest}");
        decoder(
            "",
            "embed_tokens",
            "layers",
            ("input_layernorm", "pre_feedforward_layernorm"),
            "norm",
        )
        .alias("blocks.{l}.attn.hook_q", &at("self_attn.q_proj.hook_point"))
        .alias("blocks.{l}.attn.hook_k", &at("self_attn.k_proj.hook_point"))
        .alias("blocks.{l}.attn.hook_v", &at("self_attn.v_proj.hook_point"))
        .alias(
            "blocks.{l}.hook_attn_out",
            &at("post_attention_layernorm.hook_point"),
        )
        .alias(
            "blocks.{l}.hook_mlp_out",
            &at("post_feedforward_layernorm.hook_point"),
        )
        .missing(
            "blocks.{l}.ln1_post.hook_normalized",
            "the same point as `hook_attn_out` (one point, one name)",
        )
        .missing(
            "blocks.{l}.ln2_post.hook_normalized",
            "the same point as `hook_mlp_out` (one point, one name)",
        )
    }
}
