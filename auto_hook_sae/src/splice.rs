//! Splicing SAEs into a model through ordinary hooks.

use crate::error::{Error, Result};
use crate::sae::Sae;
use auto_hook::{HookInfo, HookedModule, HookedRoot, Hooks, Schema, Walker, WalkerMut};
use candle_core::Tensor;
use std::cell::RefCell;

impl Sae {
    /// Replaces `x` (the activation at the SAE's hook point) by the SAE's reconstruction
    /// in `x`'s shape and dtype; with `error_term`, adds the detached error `x - x̂` so the
    /// output equals `x` and only edits of the SAE's latents change it. With
    /// `metadata.hook_head_index = Some(h)` and a `[.., heads, d_head]` activation, only
    /// head `h` is replaced.
    ///
    /// ```
    /// # use auto_hook_sae::{Architecture, Sae, SaeConfig};
    /// # use candle_core::{Device, Tensor};
    /// let sae = Sae::init(&SaeConfig::new(4, 16, Architecture::Standard), Some(0.1), 0, &Device::Cpu)?;
    /// let x = Tensor::randn(0f32, 1.0, (2, 3, 4), &Device::Cpu)?;
    /// assert_eq!(sae.splice(&x, false)?.dims(), [2, 3, 4]);
    /// let kept = sae.splice(&x, true)?;
    /// assert!((kept - &x)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-5);
    /// # Ok::<(), auto_hook_sae::Error>(())
    /// ```
    pub fn splice(&self, x: &Tensor, error_term: bool) -> Result<Tensor> {
        if let Some(head) = self.cfg.metadata.hook_head_index {
            if x.rank() >= 2 && !self.cfg.reshape_hook_z {
                return self.splice_head(x, head, error_term);
            }
        }
        let out = if error_term {
            self.forward_with_error(x)?
        } else {
            self.forward(x)?
        };
        Ok(out.to_dtype(x.dtype())?)
    }

    /// [`Sae::splice`] at the hook point `hook`: an activation whose width is not the
    /// SAE's `d_in` is an [`Error::DInMismatch`] naming the hook.
    pub(crate) fn splice_at(&self, hook: &str, x: &Tensor, error_term: bool) -> Result<Tensor> {
        let dims = x.dims();
        let tail = if self.cfg.reshape_hook_z { 2 } else { 1 };
        let width: usize = dims[dims.len().saturating_sub(tail)..].iter().product();
        if dims.len() < tail || width != self.cfg.d_in {
            return Err(Error::DInMismatch {
                hook: hook.to_owned(),
                d_in: self.cfg.d_in,
                width,
            });
        }
        self.splice(x, error_term)
    }

    fn splice_head(&self, x: &Tensor, head: usize, error_term: bool) -> Result<Tensor> {
        let axis = x.rank() - 2;
        let heads = x.dim(axis)?;
        if head >= heads {
            return Err(Error::Shape {
                what: "spliced activation".into(),
                problem: format!("hook_head_index {head} but the activation has {heads} heads"),
            });
        }
        let one = x.narrow(axis, head, 1)?.squeeze(axis)?;
        let out = if error_term {
            self.forward_with_error(&one)?
        } else {
            self.forward(&one)?
        };
        let out = out.to_dtype(x.dtype())?.unsqueeze(axis)?;
        let mut parts = Vec::with_capacity(3);
        if head > 0 {
            parts.push(x.narrow(axis, 0, head)?);
        }
        parts.push(out);
        if head + 1 < heads {
            parts.push(x.narrow(axis, head + 1, heads - head - 1)?);
        }
        Ok(Tensor::cat(&parts, axis)?)
    }

    /// A hook that splices this SAE in at `hook_name` for one `run_with_hooks` call. An
    /// activation whose width is not `d_in` fails the run with [`Error::DInMismatch`].
    ///
    /// ```no_run
    /// # fn demo(model: &auto_hook_models::HookedTransformer, sae: &auto_hook_sae::Sae, ids: &candle_core::Tensor) -> Result<(), auto_hook::Error> {
    /// use auto_hook::HookedRoot;
    /// let logits = model.run_with_hooks(sae.splice_hooks("blocks.0.hook_resid_post", false), |m| m.forward(ids, None))?;
    /// # Ok(()) }
    /// ```
    pub fn splice_hooks<'a>(&'a self, hook_name: &str, error_term: bool) -> Hooks<'a> {
        Hooks::new().add(hook_name.to_owned(), move |x: &Tensor, info: &HookInfo| {
            self.splice_at(info.name(), x, error_term)
                .map_err(candle_core::Error::from)
        })
    }
}

/// One SAE spliced in at a hook point.
#[derive(Debug, Clone)]
struct Splice {
    hook: String,
    sae: Sae,
    error_term: bool,
    /// A transcoder's output hook: the SAE reads `hook` and its output replaces this one.
    out: Option<String>,
}

/// A model with SAEs spliced in at their hook points (SAELens's `HookedSAETransformer`).
/// It borrows the model, so the clean model stays usable beside it. It is itself a
/// hooked model: the model's hook names, then each SAE's under its hook point
/// (`blocks.0.hook_resid_post.hook_sae_acts_post`, as in SAELens), so one
/// `run_with_cache` captures both. Run the model through [`Spliced::run`].
///
/// Persistent hooks (`add_hook`) added through a `Spliced` reach the SAEs' points only:
/// the model is borrowed, so its points cannot be changed through it and a persistent
/// hook named at one has no effect. Add those on the model itself before splicing; they
/// fire in spliced runs too. Per-run hooks (`run_with_hooks`, `run_with_cache`) reach
/// every point.
///
/// ```
/// use auto_hook::prelude::*;
/// use auto_hook_sae::{Architecture, Sae, SaeConfig, Spliced};
/// use candle_core::{DType, Device, Module, Tensor};
/// use candle_nn::{Linear, VarBuilder, VarMap};
///
/// #[auto_hook]
/// struct Mlp { fc1: Linear, fc2: Linear }
/// #[auto_hook]
/// impl Mlp {
///     fn new(vb: VarBuilder) -> candle_core::Result<Self> {
///         Ok(Self { fc1: candle_nn::linear(4, 8, vb.pp("fc1"))?, fc2: candle_nn::linear(8, 4, vb.pp("fc2"))? })
///     }
/// }
/// # let map = VarMap::new();
/// let mlp = Mlp::new(VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu))?;
/// let sae = Sae::init(&SaeConfig::new(8, 32, Architecture::TopK { k: 2 }), Some(0.1), 0, &Device::Cpu)?;
/// let spliced = Spliced::new(&mlp).with_sae("fc1.hook_point", sae, false)?;
/// let x = Tensor::randn(0f32, 1.0, (3, 4), &Device::Cpu)?;
/// let (out, cache) = spliced.run_with_cache(
///     ["fc1.hook_point", "fc1.hook_point.hook_sae_acts_post"],
///     |s| s.run(|m| m.fc2.forward(&m.fc1.forward(&x)?)),
/// )?;
/// assert_eq!(cache.get("fc1.hook_point.hook_sae_acts_post")?.dims(), [3, 32]);
/// let clean = mlp.fc2.forward(&mlp.fc1.forward(&x)?)?; // the model is still ours
/// # let _ = (out, clean); Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Spliced<'m, M> {
    model: &'m M,
    splices: Vec<Splice>,
}

impl<'m, M: HookedRoot> Spliced<'m, M> {
    /// The model with no SAE spliced in yet.
    pub fn new(model: &'m M) -> Self {
        Self {
            model,
            splices: Vec::new(),
        }
    }

    /// Splices `sae` in at `hook_name` (checked against the model's hook names).
    pub fn with_sae(mut self, hook_name: &str, sae: Sae, error_term: bool) -> Result<Self> {
        self.check_hook(hook_name)?;
        self.splices.push(Splice {
            hook: hook_name.to_owned(),
            sae,
            error_term,
            out: None,
        });
        Ok(self)
    }

    /// Splices a transcoder in: it reads its `metadata.hook_name` (Gemma Scope's
    /// `blocks.{l}.ln2.hook_normalized`, left as it is) and its output replaces
    /// [`Sae::hook_name_out`] (`blocks.{l}.hook_mlp_out`), as SAELens's transcoders do.
    /// With `error_term` the replaced activation keeps its value and only edits of the
    /// transcoder's latents change it. Both hooks are checked against the model's names;
    /// the output hook may have another width than the input (`d_out`, SAELens's
    /// transcoders): an output of the wrong shape fails the run with [`Error::Shape`].
    pub fn with_transcoder(mut self, transcoder: Sae, error_term: bool) -> Result<Self> {
        let (Some(input), Some(out)) = (
            transcoder.cfg().metadata.hook_name.clone(),
            transcoder.hook_name_out().map(str::to_owned),
        ) else {
            return Err(Error::Invalid(
                "a transcoder needs metadata.hook_name and hook_name_out (see \
                 Sae::load_gemma_scope_transcoder)"
                    .into(),
            ));
        };
        self.check_hook(&input)?;
        self.check_hook(&out)?;
        self.splices.push(Splice {
            hook: input,
            sae: transcoder,
            error_term,
            out: Some(out),
        });
        Ok(self)
    }

    fn check_hook(&self, hook_name: &str) -> Result<()> {
        let names = self.model.hook_point_names();
        auto_hook::Filter::Exact(hook_name.to_owned())
            .validate(names.iter().map(String::as_str))?;
        Ok(())
    }

    /// The model.
    pub fn model(&self) -> &'m M {
        self.model
    }

    /// The spliced SAEs with their hook names.
    pub fn saes(&self) -> impl Iterator<Item = (&str, &Sae)> {
        self.splices.iter().map(|s| (s.hook.as_str(), &s.sae))
    }

    /// Gives back the SAEs with their hook names.
    pub fn into_saes(self) -> Vec<(String, Sae)> {
        self.splices.into_iter().map(|s| (s.hook, s.sae)).collect()
    }

    /// Runs `run` on the model with every SAE spliced in.
    pub fn run<T, E: Into<auto_hook::Error>>(
        &self,
        run: impl FnOnce(&M) -> std::result::Result<T, E>,
    ) -> auto_hook::Result<T> {
        // A transcoder's output, from its input hook to its output hook.
        let slots: Vec<RefCell<Option<Tensor>>> =
            self.splices.iter().map(|_| RefCell::new(None)).collect();
        let mut hooks = Hooks::new();
        for (splice, slot) in self.splices.iter().zip(&slots) {
            let (sae, error_term) = (&splice.sae, splice.error_term);
            let Some(out) = &splice.out else {
                hooks = hooks.add(splice.hook.clone(), move |x: &Tensor, info: &HookInfo| {
                    sae.splice_at(info.name(), x, error_term)
                        .map_err(candle_core::Error::from)
                });
                continue;
            };
            hooks = hooks.add(splice.hook.clone(), move |x: &Tensor, info: &HookInfo| {
                let y = sae
                    .splice_at(info.name(), x, false)
                    .map_err(candle_core::Error::from)?;
                *slot.borrow_mut() = Some(y);
                Ok::<_, candle_core::Error>(())
            });
            hooks = hooks.add(out.clone(), move |x: &Tensor, info: &HookInfo| {
                let y = slot.borrow_mut().take().ok_or_else(|| {
                    candle_core::Error::Msg(format!(
                        "transcoder output hook `{}` fired before its input hook `{}`",
                        info.name(),
                        splice.hook
                    ))
                })?;
                if y.dims() != x.dims() {
                    return Err(candle_core::Error::from(Error::Shape {
                        what: format!("transcoder output at `{}`", info.name()),
                        problem: format!(
                            "the transcoder gives {:?} (d_out = {}), the hook carries {:?}",
                            y.dims(),
                            sae.cfg().d_out(),
                            x.dims()
                        ),
                    }));
                }
                let y = y.to_dtype(x.dtype())?;
                if error_term {
                    &y + (x - &y)?.detach()
                } else {
                    Ok(y)
                }
            });
        }
        self.model.run_with_hooks(hooks, run)
    }
}

impl<M: HookedModule> HookedModule for Spliced<'_, M> {
    /// The type-level listing is the model's; the SAE names exist per instance.
    const SCHEMA: Schema = M::SCHEMA;

    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        self.model.visit_hooks(walker);
        for splice in &self.splices {
            walker.child(&splice.hook, &splice.sae);
        }
    }

    /// The SAEs' points only: the borrowed model's points are not reachable mutably.
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        for splice in &mut self.splices {
            walker.child(&splice.hook, &mut splice.sae);
        }
    }
}
