//! # auto_hook_sae
//!
//! Sparse autoencoders on any hook point of any hooked model (an `#[auto_hook]` model,
//! an `auto_hook_models::HookedTransformer`, anything implementing
//! [`auto_hook::HookedRoot`]): SAELens v6 architectures (`standard`, `topk`,
//! `batchtopk`, `jumprelu`, `gated`, `matryoshka_batchtopk`, and the transcoders
//! `transcoder`, `skip_transcoder`, `jumprelu_transcoder`, `jumprelu_skip_transcoder`),
//! each one module behind one trait; SAELens's folder format, splicing into a model
//! through ordinary hooks, an activation store that stops every forward at the hooked
//! layer (a transcoder's input and output hooks from one forward), training and
//! evaluation.
//!
//! ```
//! use auto_hook_sae::{Architecture, Sae, SaeConfig};
//! use candle_core::{Device, Tensor};
//! let cfg = SaeConfig::new(16, 64, Architecture::TopK { k: 4 }).with_hook("blocks.0.hook_resid_post");
//! let sae = Sae::init(&cfg, Some(0.1), 0, &Device::Cpu)?;
//! let x = Tensor::randn(0f32, 1.0, (3, 16), &Device::Cpu)?;
//! let f = sae.encode(&x)?;                       // [3, 64], 4 non-zero per row at most
//! assert_eq!(sae.decode(&f)?.dims(), [3, 16]);
//! # Ok::<(), auto_hook_sae::Error>(())
//! ```

mod activation;
mod arch;
mod compare;
mod config;
mod corpus;
mod dashboard;
mod error;
mod eval;
mod gemma_scope;
mod io;
mod params;
mod sae;
mod select;
mod splice;
mod store;
mod tokens;
mod train;

pub use compare::{compare_sae_with_reference, REFERENCE_KEYS};
pub use config::{Architecture, Metadata, Normalization, SaeConfig};
pub use corpus::{read_documents, split_documents, Packing};
pub use dashboard::{
    density_histogram_svg, escape_html, Context, Dashboard, FeatureCard, TopActivation,
    TopActivations,
};
pub use error::{Error, Result};
pub use eval::{
    downstream_scores, downstream_scores_ignoring, reconstruction_metrics, DownstreamScores,
    ReconstructionMetrics,
};
pub use gemma_scope::GEMMA_SCOPE_FILENAME;
pub use io::load_sparsity;
pub use params::SaeParams;
pub use sae::{InputNorm, Sae};
pub use splice::Spliced;
pub use store::{ActivationStore, HookSpec, Layout, StoreConfig};
pub use tokens::TokenSource;
pub use train::{
    LrSchedule, SaeTrainConfig, SaeTrainer, SparsityLoss, StepMetrics, TrainRunConfig, TrainedSae,
    Trainer,
};
