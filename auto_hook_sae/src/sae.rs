//! `Sae`: weights, SAELens's forward, and the SAE's own hook points.

use crate::activation;
use crate::config::{Architecture, Normalization, SaeConfig};
use crate::error::{Error, Result};
use crate::rng::Rng;
use auto_hook::{HookPoint, HookedModule, Schema, Walker, WalkerMut};
use candle_core::{DType, Device, Module, Tensor};

/// A sparse autoencoder with SAELens v6 semantics:
/// `h = (x - b_dec) W_enc + b_enc` (`- b_dec` when `apply_b_dec_to_input`), latents
/// `f = act(h)`, reconstruction `f W_dec + b_dec`.
///
/// It is a hooked model: `hook_sae_input`, `hook_sae_acts_pre`, `hook_sae_acts_post`,
/// `hook_sae_recons`, `hook_sae_error` (only in [`Sae::forward_with_error`]) and
/// `hook_sae_output` fire with the input's leading axes (`[batch, pos, d_sae]`, ...).
///
/// ```
/// use auto_hook::prelude::*;
/// use auto_hook_sae::{Architecture, Sae, SaeConfig};
/// use candle_core::{Device, Tensor};
/// let sae = Sae::init(&SaeConfig::new(8, 32, Architecture::TopK { k: 4 }), Some(0.1), 0, &Device::Cpu)?;
/// let x = Tensor::randn(0f32, 1.0, (2, 5, 8), &Device::Cpu)?;
/// let (out, cache) = sae.run_with_cache("hook_sae_acts_post", |s| s.forward(&x))?;
/// assert_eq!(out.dims(), [2, 5, 8]);
/// assert_eq!(cache.get("hook_sae_acts_post")?.dims(), [2, 5, 32]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Sae {
    pub(crate) cfg: SaeConfig,
    pub(crate) w_enc: Tensor,
    pub(crate) b_enc: Tensor,
    pub(crate) w_dec: Tensor,
    pub(crate) b_dec: Tensor,
    pub(crate) threshold: Option<Tensor>,
    hook_sae_input: HookPoint,
    hook_sae_acts_pre: HookPoint,
    hook_sae_acts_post: HookPoint,
    hook_sae_output: HookPoint,
    hook_sae_recons: HookPoint,
    hook_sae_error: HookPoint,
}

/// The SAE's hook names, in firing order of `forward_with_error`.
pub const SAE_HOOK_NAMES: [&str; 6] = [
    "hook_sae_input",
    "hook_sae_acts_pre",
    "hook_sae_acts_post",
    "hook_sae_output",
    "hook_sae_recons",
    "hook_sae_error",
];

/// Per-call state of the runtime normalisations (what SAELens keeps on `self`).
#[derive(Default)]
pub(crate) struct NormState {
    scale: Option<Tensor>,
    layer_norm: Option<(Tensor, Tensor)>,
}

/// Whether the SAE's hook points fire (not while computing the clean error term).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Fire {
    Yes,
    No,
}

impl Sae {
    /// An SAE from its weights; every shape is checked against `cfg`.
    pub fn new(
        cfg: SaeConfig,
        w_enc: Tensor,
        b_enc: Tensor,
        w_dec: Tensor,
        b_dec: Tensor,
        threshold: Option<Tensor>,
    ) -> Result<Self> {
        cfg.validate()?;
        let (d_in, d_sae) = (cfg.d_in, cfg.d_sae);
        check_shape("W_enc", &w_enc, &[d_in, d_sae])?;
        check_shape("b_enc", &b_enc, &[d_sae])?;
        check_shape("W_dec", &w_dec, &[d_sae, d_in])?;
        check_shape("b_dec", &b_dec, &[d_in])?;
        let needs_threshold = matches!(cfg.architecture, Architecture::JumpRelu);
        match (&threshold, needs_threshold) {
            (Some(t), _) => check_shape("threshold", t, &[d_sae])?,
            (None, true) => {
                return Err(Error::Weights {
                    name: "threshold".into(),
                    problem: "missing (jumprelu SAEs need a threshold)".into(),
                })
            }
            (None, false) => {}
        }
        Ok(Self {
            cfg,
            w_enc,
            b_enc,
            w_dec,
            b_dec,
            threshold,
            hook_sae_input: HookPoint::new(),
            hook_sae_acts_pre: HookPoint::new(),
            hook_sae_acts_post: HookPoint::new(),
            hook_sae_output: HookPoint::new(),
            hook_sae_recons: HookPoint::new(),
            hook_sae_error: HookPoint::new(),
        })
    }

    /// SAELens's training initialisation, seeded: `W_dec` rows kaiming-uniform, scaled to
    /// norm `decoder_init_norm` (0.1 in SAELens; `None` keeps kaiming), `W_enc = W_decᵀ`,
    /// biases 0, jumprelu threshold 0.01 (batchtopk: 0).
    pub fn init(
        cfg: &SaeConfig,
        decoder_init_norm: Option<f64>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let (d_in, d_sae) = (cfg.d_in, cfg.d_sae);
        let mut rng = Rng::new(seed);
        // torch's kaiming_uniform_ default: gain sqrt(2), bound gain * sqrt(3 / fan_in).
        let bound = (6.0 / d_in as f64).sqrt();
        let mut w: Vec<f32> = (0..d_in * d_sae)
            .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
            .collect();
        if let Some(norm) = decoder_init_norm {
            for row in w.chunks_mut(d_in) {
                let n = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                row.iter_mut().for_each(|v| *v *= norm as f32 / n);
            }
        }
        let dtype = cfg.dtype;
        let w_dec = Tensor::from_vec(w, (d_sae, d_in), device)?.to_dtype(dtype)?;
        let w_enc = w_dec.t()?.contiguous()?;
        let zeros = |n: usize| Tensor::zeros(n, dtype, device);
        let threshold = match cfg.architecture {
            Architecture::JumpRelu => Some((Tensor::ones(d_sae, dtype, device)? * 0.01)?),
            Architecture::BatchTopK { .. } => Some(zeros(d_sae)?),
            _ => None,
        };
        Self::new(
            cfg.clone(),
            w_enc,
            zeros(d_sae)?,
            w_dec,
            zeros(d_in)?,
            threshold,
        )
    }

    /// The configuration.
    pub fn cfg(&self) -> &SaeConfig {
        &self.cfg
    }

    /// `W_enc [d_in, d_sae]`.
    pub fn w_enc(&self) -> &Tensor {
        &self.w_enc
    }
    /// `b_enc [d_sae]`.
    pub fn b_enc(&self) -> &Tensor {
        &self.b_enc
    }
    /// `W_dec [d_sae, d_in]`.
    pub fn w_dec(&self) -> &Tensor {
        &self.w_dec
    }
    /// `b_dec [d_in]`.
    pub fn b_dec(&self) -> &Tensor {
        &self.b_dec
    }
    /// The jumprelu / batchtopk threshold `[d_sae]`.
    pub fn threshold(&self) -> Option<&Tensor> {
        self.threshold.as_ref()
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.w_enc.device()
    }

    /// Latents `f` (SAELens `encode(x)`) for `x` `[.., d_in]` (`[.., heads, d_head]` for
    /// `hook_z` SAEs); shape `[.., d_sae]`.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.encode_with_hidden_pre(x)?.0)
    }

    /// `(latents, pre-activations)`, both `[.., d_sae]`.
    pub fn encode_with_hidden_pre(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (x2, lead) = self.flatten_input(x)?;
        let mut norm = NormState::default();
        let (f, h) = self.encode_2d(&x2, &lead, &mut norm, Fire::Yes)?;
        Ok((unflatten(&f, &lead)?, unflatten(&h, &lead)?))
    }

    /// Reconstruction `f W_dec + b_dec` of latents `[.., d_sae]` (SAELens `decode`), as
    /// `[.., d_in]` (also for `hook_z` SAEs, whose head split only `forward` knows).
    /// SAEs with a per-call normalisation (`constant_norm_rescale`, `layer_norm`) need
    /// the input's statistics: use [`Sae::forward`].
    pub fn decode(&self, f: &Tensor) -> Result<Tensor> {
        if matches!(
            self.cfg.normalize_activations,
            Normalization::ConstantNormRescale | Normalization::LayerNorm
        ) {
            return Err(Error::Invalid(format!(
                "decode alone cannot undo normalize_activations = {}; use forward",
                self.cfg.normalize_activations.name()
            )));
        }
        let dims = f.dims();
        let (&d, lead) = dims.split_last().ok_or_else(|| Error::Shape {
            what: "latents".into(),
            problem: "a scalar has no latent axis".into(),
        })?;
        if d != self.cfg.d_sae {
            return Err(Error::Shape {
                what: "latents".into(),
                problem: format!("last axis is {d}, the SAE has d_sae = {}", self.cfg.d_sae),
            });
        }
        let f2 = f.to_dtype(self.cfg.dtype)?.reshape(((), d))?;
        let out = self.decode_2d(&f2, lead, &NormState::default(), Fire::Yes)?;
        self.unflatten_output(&out, lead)
    }

    /// The reconstruction of `x`, in `x`'s shape (SAELens `forward`).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_impl(x, false)
    }

    /// The reconstruction plus the (detached) error term `x - x̂`: the output equals `x`
    /// up to rounding, and hooks on the latents change it (SAELens `use_error_term`).
    pub fn forward_with_error(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_impl(x, true)
    }

    fn forward_impl(&self, x: &Tensor, error_term: bool) -> Result<Tensor> {
        let (x2, lead) = self.flatten_input(x)?;
        let tail = &x.dims()[lead.len()..];
        let mut norm = NormState::default();
        let (f, _) = self.encode_2d(&x2, &lead, &mut norm, Fire::Yes)?;
        let mut out = self.decode_2d(&f, &lead, &norm, Fire::Yes)?;
        if error_term {
            let mut clean_norm = NormState::default();
            let (f_clean, _) = self.encode_2d(&x2, &lead, &mut clean_norm, Fire::No)?;
            let clean = self.decode_2d(&f_clean, &lead, &clean_norm, Fire::No)?;
            let err = (&x2 - clean)?.detach();
            let err = fire(&self.hook_sae_error, err, &lead)?;
            out = (out + err)?;
        }
        let out = fire(&self.hook_sae_output, out, &lead)?;
        let mut shape = lead;
        shape.extend_from_slice(tail);
        Ok(out.reshape(shape)?)
    }

    /// Input `[.., d_in]` (or `[.., heads, d_head]`) → `([n, d_in]` in the SAE dtype, leading axes`)`.
    pub(crate) fn flatten_input(&self, x: &Tensor) -> Result<(Tensor, Vec<usize>)> {
        let dims = x.dims();
        let tail = if self.cfg.reshape_hook_z { 2 } else { 1 };
        if dims.len() < tail {
            return Err(Error::Shape {
                what: "SAE input".into(),
                problem: format!("shape {dims:?} has fewer than {tail} axes"),
            });
        }
        let (lead, last) = dims.split_at(dims.len() - tail);
        let width: usize = last.iter().product();
        if width != self.cfg.d_in {
            return Err(Error::Shape {
                what: "SAE input".into(),
                problem: format!(
                    "shape {dims:?} gives width {width}, the SAE has d_in = {}",
                    self.cfg.d_in
                ),
            });
        }
        let x2 = x.to_dtype(self.cfg.dtype)?.reshape(((), width))?;
        Ok((x2, lead.to_vec()))
    }

    fn unflatten_output(&self, out: &Tensor, lead: &[usize]) -> Result<Tensor> {
        let mut shape = lead.to_vec();
        shape.push(self.cfg.d_in);
        Ok(out.reshape(shape)?)
    }

    /// The encoder on `[n, d_in]`: `(latents, pre-activations)`, each `[n, d_sae]`.
    pub(crate) fn encode_2d(
        &self,
        x2: &Tensor,
        lead: &[usize],
        norm: &mut NormState,
        on: Fire,
    ) -> Result<(Tensor, Tensor)> {
        let x2 = fire_if(on, &self.hook_sae_input, x2.clone(), lead)?;
        let x2 = self.normalize_in(&x2, norm)?;
        let x2 = if self.cfg.apply_b_dec_to_input {
            x2.broadcast_sub(&self.b_dec)?
        } else {
            x2
        };
        let h = x2.matmul(&self.w_enc)?.broadcast_add(&self.b_enc)?;
        let h = fire_if(on, &self.hook_sae_acts_pre, h, lead)?;
        let f = self.activate(&h)?;
        let f = fire_if(on, &self.hook_sae_acts_post, f, lead)?;
        Ok((f, h))
    }

    fn activate(&self, h: &Tensor) -> Result<Tensor> {
        Ok(match self.cfg.architecture {
            Architecture::Standard => h.relu()?,
            Architecture::TopK { k } => {
                let scaled = self.rescaled_pre(h)?;
                activation::topk(&scaled, k)?
            }
            Architecture::BatchTopK { k } => activation::batch_topk(&self.rescaled_pre(h)?, k)?,
            Architecture::JumpRelu => {
                let threshold = self.threshold.as_ref().ok_or_else(|| Error::Weights {
                    name: "threshold".into(),
                    problem: "missing".into(),
                })?;
                activation::jumprelu(h, threshold)?
            }
        })
    }

    /// topk SAEs with `rescale_acts_by_decoder_norm` select on `h · ‖W_dec,i‖`.
    pub(crate) fn rescaled_pre(&self, h: &Tensor) -> Result<Tensor> {
        if self.cfg.rescale_acts_by_decoder_norm {
            Ok(h.broadcast_mul(&self.decoder_norms()?)?)
        } else {
            Ok(h.clone())
        }
    }

    /// `‖W_dec,i‖` per latent, `[d_sae]`.
    pub(crate) fn decoder_norms(&self) -> Result<Tensor> {
        Ok(self.w_dec.sqr()?.sum(1)?.sqrt()?)
    }

    /// `f W_dec` (latents divided by the decoder norms first when rescaling), no bias.
    pub(crate) fn latents_times_w_dec(&self, f: &Tensor) -> Result<Tensor> {
        let rescale = self.cfg.rescale_acts_by_decoder_norm
            && matches!(
                self.cfg.architecture,
                Architecture::TopK { .. } | Architecture::BatchTopK { .. }
            );
        let f = if rescale {
            f.broadcast_div(&self.decoder_norms()?)?
        } else {
            f.clone()
        };
        Ok(f.matmul(&self.w_dec)?)
    }

    pub(crate) fn decode_2d(
        &self,
        f: &Tensor,
        lead: &[usize],
        norm: &NormState,
        on: Fire,
    ) -> Result<Tensor> {
        let out = self.latents_times_w_dec(f)?.broadcast_add(&self.b_dec)?;
        let out = fire_if(on, &self.hook_sae_recons, out, lead)?;
        self.normalize_out(&out, norm)
    }

    fn normalize_in(&self, x: &Tensor, norm: &mut NormState) -> Result<Tensor> {
        match self.cfg.normalize_activations {
            Normalization::None | Normalization::ExpectedAverageOnlyIn => Ok(x.clone()),
            Normalization::ConstantNormRescale => {
                let n = x.sqr()?.sum_keepdim(1)?.sqrt()?;
                let coeff = ((n.recip()?) * (self.cfg.d_in as f64).sqrt())?;
                let out = x.broadcast_mul(&coeff)?;
                norm.scale = Some(coeff);
                Ok(out)
            }
            Normalization::LayerNorm => {
                let mu = x.mean_keepdim(1)?;
                let centered = x.broadcast_sub(&mu)?;
                let d = self.cfg.d_in as f64;
                // torch's std is the unbiased (n - 1) estimate.
                let std = (centered.sqr()?.sum_keepdim(1)? / (d - 1.0).max(1.0))?.sqrt()?;
                let out = centered.broadcast_div(&(&std + 1e-5)?)?;
                norm.layer_norm = Some((mu, std));
                Ok(out)
            }
        }
    }

    fn normalize_out(&self, x: &Tensor, norm: &NormState) -> Result<Tensor> {
        if let Some(coeff) = &norm.scale {
            return Ok(x.broadcast_div(coeff)?);
        }
        if let Some((mu, std)) = &norm.layer_norm {
            return Ok(x.broadcast_mul(std)?.broadcast_add(mu)?);
        }
        Ok(x.clone())
    }

    /// Moves / casts every weight.
    pub fn to(&self, device: &Device, dtype: DType) -> Result<Self> {
        let mv = |t: &Tensor| t.to_device(device)?.to_dtype(dtype);
        let mut cfg = self.cfg.clone();
        cfg.dtype = dtype;
        Sae::new(
            cfg,
            mv(&self.w_enc)?,
            mv(&self.b_enc)?,
            mv(&self.w_dec)?,
            mv(&self.b_dec)?,
            self.threshold.as_ref().map(mv).transpose()?,
        )
    }
}

fn check_shape(name: &str, t: &Tensor, expected: &[usize]) -> Result<()> {
    if t.dims() == expected {
        return Ok(());
    }
    Err(Error::Weights {
        name: name.to_owned(),
        problem: format!("expected shape {expected:?}, got {:?}", t.dims()),
    })
}

/// Fires `point` on the 2-D `t` seen with the input's leading axes; returns 2-D.
fn fire(point: &HookPoint, t: Tensor, lead: &[usize]) -> Result<Tensor> {
    let width = t.dim(1)?;
    if lead.len() == 1 {
        return Ok(point.fire(t)?);
    }
    let shaped = unflatten(&t, lead)?;
    Ok(point.fire(shaped)?.reshape(((), width))?)
}

fn fire_if(on: Fire, point: &HookPoint, t: Tensor, lead: &[usize]) -> Result<Tensor> {
    match on {
        Fire::Yes => fire(point, t, lead),
        Fire::No => Ok(t),
    }
}

fn unflatten(t: &Tensor, lead: &[usize]) -> Result<Tensor> {
    let mut shape = lead.to_vec();
    shape.push(t.dim(1)?);
    Ok(t.reshape(shape)?)
}

const POINT: Schema = Schema::Point;
const SAE_SCHEMA: Schema = Schema::Struct(&[
    ("hook_sae_input", &POINT),
    ("hook_sae_acts_pre", &POINT),
    ("hook_sae_acts_post", &POINT),
    ("hook_sae_output", &POINT),
    ("hook_sae_recons", &POINT),
    ("hook_sae_error", &POINT),
]);

impl HookedModule for Sae {
    const SCHEMA: Schema = SAE_SCHEMA;

    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        walker.module("auto_hook_sae::Sae");
        walker.child("hook_sae_input", &self.hook_sae_input);
        walker.child("hook_sae_acts_pre", &self.hook_sae_acts_pre);
        walker.child("hook_sae_acts_post", &self.hook_sae_acts_post);
        walker.child("hook_sae_output", &self.hook_sae_output);
        walker.child("hook_sae_recons", &self.hook_sae_recons);
        walker.child("hook_sae_error", &self.hook_sae_error);
    }

    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        walker.child("hook_sae_input", &mut self.hook_sae_input);
        walker.child("hook_sae_acts_pre", &mut self.hook_sae_acts_pre);
        walker.child("hook_sae_acts_post", &mut self.hook_sae_acts_post);
        walker.child("hook_sae_output", &mut self.hook_sae_output);
        walker.child("hook_sae_recons", &mut self.hook_sae_recons);
        walker.child("hook_sae_error", &mut self.hook_sae_error);
    }
}

impl Module for Sae {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        Ok(Sae::forward(self, xs)?)
    }
}
