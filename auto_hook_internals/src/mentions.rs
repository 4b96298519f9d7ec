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
    "expand",
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

/// Methods that give a parameter's tensor itself (`Param::tensor`, `AsRef::as_ref`):
/// transparent in a use, and no view (they return no `Result`).
const TENSOR_OF: &[&str] = &["tensor", "as_ref"];

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
        // `*self.b` (the tensor behind a parameter): `x + &*self.b`
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) => chain(&u.expr, aliases),
        // `self.c.tensor()`, `self.c.as_ref()`: the parameter's tensor, not a new value
        Expr::MethodCall(call)
            if call.args.is_empty() && TENSOR_OF.contains(&call.method.to_string().as_str()) =>
        {
            chain(&call.receiver, aliases)
        }
        Expr::Paren(p) => chain(&p.expr, aliases),
        Expr::Group(g) => chain(&g.expr, aliases),
        Expr::Try(t) => chain(&t.expr, aliases),
        Expr::MethodCall(call) if VIEWS.contains(&call.method.to_string().as_str()) => {
            chain(&call.receiver, aliases).map(|c| Chain { viewed: true, ..c })
        }
        _ => None,
    }
}

/// `Some(name)` matched against `&self.field`, `self.field.as_ref()` or `self.field`:
/// `name` then stands for the field's content.
pub fn some_binding(pat: &syn::Pat, scrutinee: &Expr) -> Option<(Ident, Expr)> {
    let syn::Pat::TupleStruct(tuple) = pat else {
        return None;
    };
    if !tuple.path.is_ident("Some") || tuple.elems.len() != 1 {
        return None;
    }
    let syn::Pat::Ident(name) = &tuple.elems[0] else {
        return None;
    };
    let mut field = scrutinee;
    loop {
        field = match field {
            Expr::Reference(r) => &r.expr,
            Expr::Paren(p) => &p.expr,
            Expr::MethodCall(call) if call.method == "as_ref" && call.args.is_empty() => {
                &call.receiver
            }
            _ => break,
        };
    }
    self_field(field).map(|_| (name.ident.clone(), field.clone()))
}

/// Iterator adaptors that keep the elements they pass on (`for w in self.ws.iter().skip(1)`).
const KEEP_ELEMENTS: &[&str] = &[
    "iter",
    "skip",
    "take",
    "step_by",
    "rev",
    "skip_while",
    "take_while",
    "peekable",
    "by_ref",
    "into_iter",
];

/// The container field an iterator expression walks (`&self.ws`, `self.ws.iter().rev()`),
/// and whether it is enumerated (elements come as `(i, w)`).
fn iterated_field(iter: &Expr) -> Option<(&Expr, bool)> {
    let mut source = iter;
    let mut enumerated = false;
    loop {
        source = match source {
            Expr::Reference(r) if r.mutability.is_none() => &r.expr,
            Expr::Paren(p) => &p.expr,
            Expr::MethodCall(call) if KEEP_ELEMENTS.contains(&call.method.to_string().as_str()) => {
                &call.receiver
            }
            Expr::MethodCall(call) if call.args.is_empty() && call.method == "enumerate" => {
                enumerated = true;
                &call.receiver
            }
            _ => break,
        };
    }
    self_field(source).map(|_| (source, enumerated))
}

/// `for w in &self.ws`, `for w in self.ws.iter().skip(1)`, `for (i, w) in
/// self.ws.iter().enumerate()`, `for (w, b) in self.ws.iter().zip(&self.bs)`: `w` (and
/// `b`) is an element of the field (`*w` is probed).
pub fn loop_bindings(pat: &syn::Pat, iter: &Expr) -> Vec<(Ident, Expr)> {
    let alias = |p: &syn::Pat| match p {
        syn::Pat::Ident(name) => {
            let ident = &name.ident;
            Some((ident.clone(), syn::parse_quote!((*#ident))))
        }
        _ => None,
    };
    // `a.zip(b)` over two fields (under adaptors): one alias per side of the tuple pattern
    let mut zipped = iter;
    while let Expr::MethodCall(call) = zipped {
        if call.method == "zip" || !KEEP_ELEMENTS.contains(&call.method.to_string().as_str()) {
            break;
        }
        zipped = &call.receiver;
    }
    if let (Expr::MethodCall(call), syn::Pat::Tuple(tuple)) = (zipped, pat) {
        if call.method == "zip" && call.args.len() == 1 && tuple.elems.len() == 2 {
            let sides = [&*call.receiver, &call.args[0]];
            return sides
                .iter()
                .zip(&tuple.elems)
                .filter(|(side, _)| iterated_field(side).is_some_and(|(_, e)| !e))
                .filter_map(|(_, p)| alias(p))
                .collect();
        }
    }
    let Some((_, enumerated)) = iterated_field(iter) else {
        return Vec::new();
    };
    let element = match (pat, enumerated) {
        (p @ syn::Pat::Ident(_), false) => alias(p),
        (syn::Pat::Tuple(tuple), true) if tuple.elems.len() == 2 => alias(&tuple.elems[1]),
        _ => None,
    };
    element.into_iter().collect()
}
