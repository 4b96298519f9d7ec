//! [`LensModel`] for `auto_hook_models::HookedTransformer` (GPT-2, Llama, Mistral,
//! Qwen2, Mixtral's attention and embeddings; neuron analysis needs dense MLPs).

use crate::model::LensModel;
use auto_hook_models::{HookedTransformer, NormKind, Positions};
use candle_core::{Module, Result, Tensor, D};

impl LensModel for HookedTransformer {
    fn n_layers(&self) -> usize {
        self.config().n_layers
    }

    fn n_heads(&self) -> usize {
        self.config().n_heads
    }

    fn has_pos_embed(&self) -> bool {
        matches!(self.config().positions, Positions::Learned { .. })
    }

    fn logits(&self, tokens: &Tensor) -> Result<Tensor> {
        self.forward(tokens, None)
    }

    fn final_norm(&self, resid: &Tensor) -> Result<Tensor> {
        self.ln_final().forward(resid)
    }

    fn final_norm_linear(&self, x: &Tensor, scale: &Tensor) -> Result<Tensor> {
        let norm = self.ln_final();
        let x = match norm.kind() {
            NormKind::LayerNorm => x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?,
            NormKind::RmsNorm => x.clone(),
        };
        let w = norm.weight().to_dtype(x.dtype())?;
        x.broadcast_div(&scale.to_dtype(x.dtype())?)?
            .broadcast_mul(&w)
    }

    fn to_logits(&self, normed: &Tensor) -> Result<Tensor> {
        self.unembed().forward(normed)
    }

    fn w_u(&self) -> Result<Tensor> {
        HookedTransformer::w_u(self)
    }

    fn w_o(&self, layer: usize) -> Result<Tensor> {
        HookedTransformer::w_o(self, layer)
    }

    fn w_out(&self, layer: usize) -> Result<Tensor> {
        HookedTransformer::w_out(self, layer)
    }
}
