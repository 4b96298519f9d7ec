//! A transformer block's MLP, dense or sparse, transparent in hook names.

use crate::mlp::Mlp;
use crate::moe::SparseMoe;
use auto_hook::{HookedModule, Schema, Walker, WalkerMut};
use candle_core::{Module, Result, Tensor};

/// The MLP of a transformer block: dense ([`Mlp`]) or a sparse mixture of experts
/// ([`SparseMoe`]). Transparent in hook names: its variant's points sit directly under
/// the block's `mlp.` prefix (`mlp.hook_pre` or `mlp.hook_expert_weights`).
///
/// ```
/// use auto_hook::HookedModule;
/// let names = auto_hook_models::FeedForward::hook_names();
/// assert!(names.contains(&"hook_pre".to_string()));
/// assert!(names.contains(&"hook_expert_weights".to_string()));
/// assert!(names.contains(&"experts.*.hook_gate".to_string()));
/// ```
#[derive(Debug, Clone)]
pub enum FeedForward {
    /// A dense MLP (GPT-2, Llama, Mistral, Qwen2).
    Dense(Mlp),
    /// Mixtral's sparse mixture of experts.
    Sparse(SparseMoe),
}

impl Module for FeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            FeedForward::Dense(mlp) => mlp.forward(x),
            FeedForward::Sparse(moe) => moe.forward(x),
        }
    }
}

type Entry = (&'static str, &'static Schema);

const fn fields(schema: &'static Schema) -> &'static [Entry] {
    match schema {
        Schema::Struct(fields) => fields,
        _ => &[],
    }
}

const DENSE: &[Entry] = fields(&<Mlp as HookedModule>::SCHEMA);
const SPARSE: &[Entry] = fields(&<SparseMoe as HookedModule>::SCHEMA);

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn in_dense(name: &str) -> bool {
    let mut i = 0;
    while i < DENSE.len() {
        if same(DENSE[i].0, name) {
            return true;
        }
        i += 1;
    }
    false
}

const fn union_len() -> usize {
    let (mut n, mut i) = (DENSE.len(), 0);
    while i < SPARSE.len() {
        if !in_dense(SPARSE[i].0) {
            n += 1;
        }
        i += 1;
    }
    n
}

const UNION_LEN: usize = union_len();

/// Both variants' names (the shared `hook_point` once): what `hook_names` lists and
/// `hook_name!` accepts.
const UNION: [Entry; UNION_LEN] = {
    let mut out: [Entry; UNION_LEN] = [("", &Schema::Point); UNION_LEN];
    let mut n = 0;
    while n < DENSE.len() {
        out[n] = DENSE[n];
        n += 1;
    }
    let mut i = 0;
    while i < SPARSE.len() {
        if !in_dense(SPARSE[i].0) {
            out[n] = SPARSE[i];
            n += 1;
        }
        i += 1;
    }
    out
};

impl HookedModule for FeedForward {
    const SCHEMA: Schema = Schema::Struct(&UNION);

    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        match self {
            FeedForward::Dense(mlp) => mlp.visit_hooks(walker),
            FeedForward::Sparse(moe) => moe.visit_hooks(walker),
        }
    }

    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        match self {
            FeedForward::Dense(mlp) => mlp.visit_hooks_mut(walker),
            FeedForward::Sparse(moe) => moe.visit_hooks_mut(walker),
        }
    }
}
