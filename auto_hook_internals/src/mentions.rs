//! What counts as a use of a parameter inside an annotated method, read from syntax:
//! `self.field`, `self.field[i]`, a local standing for one (an alias), behind `&`,
//! parentheses, `?` and views (`t()`, `narrow(..)`, `to_dtype(..)`, ...).

use crate::rewrite::self_field;
use syn::{Expr, Ident};

/// Methods whose result is a computation on their receiver and arguments: a parameter
/// among them fires its hook point on that result.
pub const ARITHMETIC: &[&str] = &[
    "matmul",
    "broadcast_matmul",
    "add",
    "sub",
    "mul",
    "div",
    "broadcast_add",
    "broadcast_sub",
    "broadcast_mul",
    "broadcast_div",
    "maximum",
    "minimum",
    "broadcast_maximum",
    "broadcast_minimum",
    "exp",
    "log",
    "neg",
    "sqr",
    "sqrt",
    "abs",
    "recip",
    "relu",
    "silu",
    "gelu",
    "gelu_erf",
    "tanh",
    "sin",
    "cos",
    "powf",
    "affine",
    "clamp",
    "sum_keepdim",
    "mean_keepdim",
    "max_keepdim",
    "min_keepdim",
    "sum",
    "mean",
    "sum_all",
    "mean_all",
    "index_select",
    "gather",
    "embedding",
    "where_cond",
    "conv1d",
    "conv2d",
    "conv_transpose1d",
    "conv_transpose2d",
    "pad_with_zeros",
    "pad_with_same",
    "repeat",
    "cumsum",
    "pow",
    "broadcast_pow",
];

/// Functions (by last path segment) that compute a tensor from tensor arguments:
/// a parameter passed to one (`rms_norm(x, &self.weight, eps)`, `Tensor::cat(&[&self.a,
/// &b], 0)`) fires on its result, which must be a `Result` of a tensor.
pub const FUNCTIONS: &[&str] = &[
    "layer_norm",
    "rms_norm",
    "rope",
    "rope_i",
    "rope_thd",
    "softmax",
    "softmax_last_dim",
    "log_softmax",
    "masked_fill",
    "cat",
    "stack",
    "silu",
    "sigmoid",
    "leaky_relu",
];

/// Methods that view a parameter before its use (`self.w.t()?`); all return a `Result`.
const VIEWS: &[&str] = &[
    "t",
    "transpose",
    "reshape",
    "broadcast_as",
    "broadcast_left",
    "unsqueeze",
    "squeeze",
    "narrow",
    "to_dtype",
    "to_device",
    "contiguous",
    "i",
    "get",
    "permute",
    "flatten_all",
    "flatten_from",
    "flatten_to",
];

/// A use of a parameter: the expression to probe, and whether it was viewed.
pub struct Chain {
    pub base: Expr,
    pub viewed: bool,
}

/// The parameter use that `expr` is, if any. The user's own tokens are kept in `base`,
/// so `self` keeps its hygiene.
pub fn chain(expr: &Expr, aliases: &[(Ident, Expr)]) -> Option<Chain> {
    let bare = |base: Expr| {
        Some(Chain {
            base,
            viewed: false,
        })
    };
    match expr {
        Expr::Field(_) if self_field(expr).is_some() => bare(expr.clone()),
        Expr::Index(index) => match chain(&index.expr, aliases) {
            Some(Chain { viewed: false, .. }) => bare(expr.clone()),
            _ => None,
        },
        Expr::Path(p) => {
            let alias = aliases.iter().rev().find(|(name, _)| p.path.is_ident(name));
            alias.and_then(|(_, field)| bare(field.clone()))
        }
        Expr::Reference(r) if r.mutability.is_none() => chain(&r.expr, aliases),
        Expr::Paren(p) => chain(&p.expr, aliases),
        Expr::Group(g) => chain(&g.expr, aliases),
        Expr::Try(t) => chain(&t.expr, aliases),
        Expr::MethodCall(call) if VIEWS.contains(&call.method.to_string().as_str()) => {
            chain(&call.receiver, aliases).map(|c| Chain { viewed: true, ..c })
        }
        _ => None,
    }
}
