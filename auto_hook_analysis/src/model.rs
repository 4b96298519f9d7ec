//! `LensModel`: the parts of a model the analysis needs, and the names of its points.

use auto_hook::HookedModule;
use candle_core::{Result, Tensor};

/// A hook point the analysis reads or edits, by role. [`LensModel::hook_name`] turns it
/// into the model's own name (TransformerLens's names by default).
///
/// ```
/// use auto_hook_analysis::Point;
/// assert_eq!(Point::ResidPre(3).transformer_lens_name(), "blocks.3.hook_resid_pre");
/// assert_eq!(Point::Z(0).transformer_lens_name(), "blocks.0.attn.hook_z");
/// assert_eq!(Point::FinalScale.transformer_lens_name(), "ln_final.hook_scale");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Point {
    /// Token embeddings `[batch, pos, d_model]`.
    Embed,
    /// Learned position embeddings `[batch, pos, d_model]` (models that have them).
    PosEmbed,
    /// The residual stream entering block `l`.
    ResidPre(usize),
    /// The residual stream between block `l`'s attention and MLP.
    ResidMid(usize),
    /// The residual stream leaving block `l`.
    ResidPost(usize),
    /// Block `l`'s attention output `[batch, pos, d_model]` (bias included).
    AttnOut(usize),
    /// Block `l`'s MLP output `[batch, pos, d_model]`.
    MlpOut(usize),
    /// Queries `[batch, pos, head, d_head]`.
    Q(usize),
    /// Keys `[batch, pos, kv_head, d_head]`.
    K(usize),
    /// Values `[batch, pos, kv_head, d_head]`.
    V(usize),
    /// Attention scores before the softmax `[batch, head, q_pos, k_pos]` (masked).
    AttnScores(usize),
    /// Attention pattern `[batch, head, q_pos, k_pos]`.
    Pattern(usize),
    /// Each head's mix of values `[batch, pos, head, d_head]`.
    Z(usize),
    /// Each head's output in the residual stream `[batch, pos, head, d_model]` (opt-in
    /// per-head point; the analysis computes it from `Z` and `W_O` when it is absent).
    AttnResult(usize),
    /// The MLP's hidden activation `[batch, pos, d_mlp]` (the input of `W_out`).
    MlpPost(usize),
    /// The final norm's scale `[batch, pos, 1]`.
    FinalScale,
}

impl Point {
    /// TransformerLens's name of this point.
    pub fn transformer_lens_name(self) -> String {
        match self {
            Point::Embed => "hook_embed".into(),
            Point::PosEmbed => "hook_pos_embed".into(),
            Point::ResidPre(l) => format!("blocks.{l}.hook_resid_pre"),
            Point::ResidMid(l) => format!("blocks.{l}.hook_resid_mid"),
            Point::ResidPost(l) => format!("blocks.{l}.hook_resid_post"),
            Point::AttnOut(l) => format!("blocks.{l}.hook_attn_out"),
            Point::MlpOut(l) => format!("blocks.{l}.hook_mlp_out"),
            Point::Q(l) => format!("blocks.{l}.attn.hook_q"),
            Point::K(l) => format!("blocks.{l}.attn.hook_k"),
            Point::V(l) => format!("blocks.{l}.attn.hook_v"),
            Point::AttnScores(l) => format!("blocks.{l}.attn.hook_attn_scores"),
            Point::Pattern(l) => format!("blocks.{l}.attn.hook_pattern"),
            Point::Z(l) => format!("blocks.{l}.attn.hook_z"),
            Point::AttnResult(l) => format!("blocks.{l}.attn.hook_result"),
            Point::MlpPost(l) => format!("blocks.{l}.mlp.hook_post"),
            Point::FinalScale => "ln_final.hook_scale".into(),
        }
    }

    /// Where the point fires in a forward, as a sortable key: embeddings first, then
    /// block by block (resid_pre, attention internals, attn_out, resid_mid, the MLP's
    /// hidden activation, mlp_out, resid_post), the final norm last. A patch at one point
    /// can only change points at or after it.
    ///
    /// ```
    /// use auto_hook_analysis::Point;
    /// assert!(Point::MlpOut(0).order() < Point::ResidPre(1).order());
    /// assert!(Point::Z(2).order() < Point::AttnOut(2).order());
    /// ```
    pub fn order(self) -> (usize, u8) {
        let rank = match self {
            Point::Embed | Point::PosEmbed => return (0, 0),
            Point::FinalScale => return (usize::MAX, 0),
            Point::ResidPre(_) => 0,
            Point::Q(_) | Point::K(_) | Point::V(_) => 1,
            Point::AttnScores(_) => 2,
            Point::Pattern(_) => 3,
            Point::Z(_) => 4,
            Point::AttnResult(_) => 5,
            Point::AttnOut(_) => 6,
            Point::ResidMid(_) => 7,
            Point::MlpPost(_) => 8,
            Point::MlpOut(_) => 9,
            Point::ResidPost(_) => 10,
        };
        (self.layer().map_or(0, |l| l + 1), rank)
    }

    /// The block this point belongs to (`None` for embeddings and the final norm).
    pub fn layer(self) -> Option<usize> {
        match self {
            Point::Embed | Point::PosEmbed | Point::FinalScale => None,
            Point::ResidPre(l)
            | Point::ResidMid(l)
            | Point::ResidPost(l)
            | Point::AttnOut(l)
            | Point::MlpOut(l)
            | Point::Q(l)
            | Point::K(l)
            | Point::V(l)
            | Point::AttnScores(l)
            | Point::Pattern(l)
            | Point::Z(l)
            | Point::AttnResult(l)
            | Point::MlpPost(l) => Some(l),
        }
    }
}

/// What the analysis needs from a hooked decoder: its size, a forward from token ids
/// to logits, the final norm and unembedding as callable parts, and the weights that
/// map heads and neurons into the residual stream. `auto_hook_models::HookedTransformer`
/// implements it; a model of your own does by answering these methods (and
/// [`hook_name`](LensModel::hook_name) when its points are not named as
/// TransformerLens names them).
///
/// Shapes follow TransformerLens: `W_U` `[d_model, d_vocab]`, `W_O` `[n_heads, d_head,
/// d_model]`, `W_out` `[d_mlp, d_model]`.
pub trait LensModel: HookedModule + Sized {
    /// Number of blocks.
    fn n_layers(&self) -> usize;

    /// Attention heads per block (query heads).
    fn n_heads(&self) -> usize;

    /// Whether the model adds learned position embeddings ([`Point::PosEmbed`]).
    fn has_pos_embed(&self) -> bool;

    /// The model's name of `point` (TransformerLens's by default).
    fn hook_name(&self, point: Point) -> String {
        point.transformer_lens_name()
    }

    /// Logits `[batch, pos, d_vocab]` of token ids `[batch, pos]` (u32). The analysis
    /// calls it inside `run_with_hooks` / `run_with_cache`.
    fn logits(&self, tokens: &Tensor) -> Result<Tensor>;

    /// The final norm applied to a residual stream `[.., d_model]`, with its own scale.
    fn final_norm(&self, resid: &Tensor) -> Result<Tensor>;

    /// The linear part of the final norm with a given scale: for LayerNorm
    /// `(x - mean(x)) / scale * w`, for RMSNorm `x / scale * w` — no bias, so that it
    /// distributes over a sum of residual-stream components. `scale` broadcasts
    /// against `x` (`[.., 1]`).
    fn final_norm_linear(&self, x: &Tensor, scale: &Tensor) -> Result<Tensor>;

    /// Logits of final-norm outputs `[.., d_model]` (unembedding with its bias, if any).
    fn to_logits(&self, normed: &Tensor) -> Result<Tensor>;

    /// The unembedding matrix `W_U` `[d_model, d_vocab]`.
    fn w_u(&self) -> Result<Tensor>;

    /// Block `layer`'s output projection per head, `W_O` `[n_heads, d_head, d_model]`.
    fn w_o(&self, layer: usize) -> Result<Tensor>;

    /// Block `layer`'s MLP output weights `W_out` `[d_mlp, d_model]`.
    fn w_out(&self, layer: usize) -> Result<Tensor>;
}
