//! `Sae`: weights, SAELens's forward, and the SAE's own hook points.

use crate::config::{Normalization, SaeConfig};
use crate::error::{Error, Result};
use crate::params::SaeParams;
use auto_hook::rng::Rng;
use auto_hook::{HookPoint, HookedRoot};
use candle_core::{DType, Device, Tensor};

mod hooks;
mod norm;

use hooks::{fire, fire_if};

pub use norm::InputNorm;
pub(crate) use norm::NormState;

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
///
/// Its hook points are its `HookPoint` fields, named by `derive(HookedRoot)` after the
/// fields (declaration order): `Sae::hook_names()` lists them. The weights are read by
/// the SAE's own math, not hooked as parameters (`skip`).
#[derive(Debug, Clone, HookedRoot)]
pub struct Sae {
    pub(crate) cfg: SaeConfig,
    #[auto_hook(skip)]
    pub(crate) p: SaeParams<Tensor>,
    hook_sae_input: HookPoint,
    hook_sae_acts_pre: HookPoint,
    hook_sae_acts_post: HookPoint,
    hook_sae_output: HookPoint,
    hook_sae_recons: HookPoint,
    hook_sae_error: HookPoint,
}

/// Whether the SAE's hook points fire (not while computing the clean error term).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Fire {
    Yes,
    No,
}

impl Sae {
    /// An SAE from its weights (architectures with an encoder bias `b_enc`: every one
    /// but gated, see [`Sae::from_params`]); every shape is checked against `cfg`.
    pub fn new(
        cfg: SaeConfig,
        w_enc: Tensor,
        b_enc: Tensor,
        w_dec: Tensor,
        b_dec: Tensor,
        threshold: Option<Tensor>,
    ) -> Result<Self> {
        let mut p = SaeParams::new(w_enc, w_dec, b_dec);
        p.b_enc = Some(b_enc);
        p.threshold = threshold;
        Self::from_params(cfg, p)
    }

    /// An SAE from its parameters by name; the architecture's own parameters must be
    /// there (gated: `b_gate`, `r_mag`, `b_mag`; jumprelu: `threshold`; the others
    /// `b_enc`) and every shape is checked against `cfg`.
    pub fn from_params(cfg: SaeConfig, p: SaeParams<Tensor>) -> Result<Self> {
        cfg.validate()?;
        let (d_in, d_sae, d_out) = (cfg.d_in, cfg.d_sae, cfg.d_out());
        let arch = cfg.architecture.imp();
        let mut required = arch.encoder_params().to_vec();
        if arch.needs_threshold() {
            required.push("threshold");
        }
        if arch.skip_connection() {
            required.push("W_skip");
        }
        for name in required {
            if p.get(name).is_none() {
                return Err(Error::Weights {
                    name: name.into(),
                    problem: format!("missing ({} SAEs need it)", arch.name()),
                });
            }
        }
        for (name, t) in p.iter() {
            let expected = match name {
                "W_enc" => vec![d_in, d_sae],
                "W_dec" => vec![d_sae, d_out],
                "b_dec" => vec![d_out],
                "W_skip" => vec![d_out, d_in],
                _ => vec![d_sae],
            };
            check_shape(name, t, &expected)?;
        }
        Ok(Self {
            cfg,
            p,
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
        let (d_in, d_sae, d_out) = (cfg.d_in, cfg.d_sae, cfg.d_out());
        let mut rng = Rng::new(seed);
        let dtype = cfg.dtype;
        let w = kaiming_rows(&mut rng, d_sae, d_out, decoder_init_norm);
        let w_dec = Tensor::from_vec(w, (d_sae, d_out), device)?.to_dtype(dtype)?;
        let w_enc = if d_out == d_in {
            w_dec.t()?.contiguous()?
        } else {
            let w = kaiming_rows(&mut rng, d_in, d_sae, None);
            Tensor::from_vec(w, (d_in, d_sae), device)?.to_dtype(dtype)?
        };
        let zeros = |n: usize| Tensor::zeros(n, dtype, device);
        let arch = cfg.architecture.imp();
        let mut p = SaeParams::new(w_enc, w_dec, zeros(d_out)?);
        for name in arch.encoder_params() {
            p.insert(name, zeros(d_sae)?)?;
        }
        p.threshold = arch.init_threshold(d_sae, dtype, device)?;
        if arch.skip_connection() {
            p.w_skip = Some(Tensor::zeros((d_out, d_in), dtype, device)?);
        }
        Self::from_params(cfg.clone(), p)
    }

    /// The configuration.
    pub fn cfg(&self) -> &SaeConfig {
        &self.cfg
    }

    /// Every weight, by name.
    pub fn params(&self) -> &SaeParams<Tensor> {
        &self.p
    }
    /// `W_enc [d_in, d_sae]`.
    pub fn w_enc(&self) -> &Tensor {
        &self.p.w_enc
    }
    /// `b_enc [d_sae]` (gated SAEs have none).
    pub fn b_enc(&self) -> Option<&Tensor> {
        self.p.b_enc.as_ref()
    }
    /// `W_dec [d_sae, d_in]`.
    pub fn w_dec(&self) -> &Tensor {
        &self.p.w_dec
    }
    /// `b_dec [d_in]`.
    pub fn b_dec(&self) -> &Tensor {
        &self.p.b_dec
    }
    /// The jumprelu / batchtopk threshold `[d_sae]`.
    pub fn threshold(&self) -> Option<&Tensor> {
        self.p.threshold.as_ref()
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.p.w_enc.device()
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
    /// the encoded input's statistics: use [`Sae::forward`], or
    /// [`Sae::encode_with_norm`] then [`Sae::decode_with_norm`] (an error otherwise).
    pub fn decode(&self, f: &Tensor) -> Result<Tensor> {
        if matches!(
            self.cfg.normalize_activations,
            Normalization::ConstantNormRescale | Normalization::LayerNorm
        ) {
            return Err(Error::Invalid(format!(
                "decode alone cannot undo normalize_activations = {} (it needs the encoded \
                 input's statistics): use forward, or encode_with_norm then decode_with_norm",
                self.cfg.normalize_activations.name()
            )));
        }
        self.decode_checked(f, None)
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
        let d_out = [self.cfg.d_out()];
        let transcoder = self.cfg.architecture.imp().is_transcoder();
        let tail = if transcoder {
            &d_out[..]
        } else {
            &x.dims()[lead.len()..]
        };
        if transcoder && error_term {
            return Err(Error::Invalid(
                "a transcoder's error term needs its output hook's activation: splice it \
                 with Spliced::with_transcoder"
                    .into(),
            ));
        }
        let mut norm = NormState::default();
        let (f, _) = self.encode_2d(&x2, &lead, &mut norm, Fire::Yes)?;
        let mut out = self.decode_2d(&f, &lead, &norm, Fire::Yes)?;
        if let Some(w_skip) = &self.p.w_skip {
            out = (out + x2.matmul(&w_skip.t()?)?)?;
        }
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

    pub(crate) fn unflatten_output(&self, out: &Tensor, lead: &[usize]) -> Result<Tensor> {
        let mut shape = lead.to_vec();
        shape.push(self.cfg.d_out());
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
            x2.broadcast_sub(&self.p.b_dec)?
        } else {
            x2
        };
        let arch = self.cfg.architecture.imp();
        let h = arch.pre_activation(&self.p, &x2)?;
        let h = fire_if(on, &self.hook_sae_acts_pre, h, lead)?;
        let f = arch.activate(self, &x2, &h)?;
        let f = fire_if(on, &self.hook_sae_acts_post, f, lead)?;
        Ok((f, h))
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
        Ok(self.p.w_dec.sqr()?.sum(1)?.sqrt()?)
    }

    /// `f W_dec` (latents divided by the decoder norms first when rescaling), no bias.
    pub(crate) fn latents_times_w_dec(&self, f: &Tensor) -> Result<Tensor> {
        let rescale = self.cfg.rescale_acts_by_decoder_norm
            && self.cfg.architecture.imp().rescales_by_decoder_norm();
        let f = if rescale {
            f.broadcast_div(&self.decoder_norms()?)?
        } else {
            f.clone()
        };
        Ok(f.matmul(&self.p.w_dec)?)
    }

    pub(crate) fn decode_2d(
        &self,
        f: &Tensor,
        lead: &[usize],
        norm: &NormState,
        on: Fire,
    ) -> Result<Tensor> {
        let out = self.latents_times_w_dec(f)?.broadcast_add(&self.p.b_dec)?;
        let out = fire_if(on, &self.hook_sae_recons, out, lead)?;
        self.normalize_out(&out, norm)
    }

    /// Moves / casts every weight.
    pub fn to(&self, device: &Device, dtype: DType) -> Result<Self> {
        let mv = |t: &Tensor| t.to_device(device)?.to_dtype(dtype);
        let mut cfg = self.cfg.clone();
        cfg.dtype = dtype;
        Sae::from_params(cfg, self.p.try_map(|_, t| Ok(mv(t)?))?)
    }
}

/// `rows × width` values as torch's `kaiming_uniform_` draws them (gain `sqrt(2)`, bound
/// `sqrt(6 / width)`), each row scaled to norm `row_norm` when given.
fn kaiming_rows(rng: &mut Rng, rows: usize, width: usize, row_norm: Option<f64>) -> Vec<f32> {
    let bound = (6.0 / width as f64).sqrt();
    let mut w: Vec<f32> = (0..rows * width)
        .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
        .collect();
    if let Some(norm) = row_norm {
        for row in w.chunks_mut(width) {
            let n = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|v| *v *= norm as f32 / n);
        }
    }
    w
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

pub(crate) fn unflatten(t: &Tensor, lead: &[usize]) -> Result<Tensor> {
    let mut shape = lead.to_vec();
    shape.push(t.dim(1)?);
    Ok(t.reshape(shape)?)
}
