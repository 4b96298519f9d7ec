//! Rewrites inside the methods of an annotated impl block:
//! - struct literals of the annotated type convert each field to its hooked type and
//!   add the struct's own hook point;
//! - each arithmetic use of a `self.field` (a parameter when the field is a `Tensor`)
//!   passes its result through that field's hook point;
//! - `self.field.clone()` keeps cloning the tensor of a parameter.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::visit_mut::{self, VisitMut};
use syn::{BinOp, Expr, ExprMethodCall, ExprStruct, Ident, Member};

/// Methods whose result is an arithmetic use of their receiver and arguments.
const ARITHMETIC: &[&str] = &[
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
];
/// Methods that view a parameter before its arithmetic use (`self.w.t()?`).
const VIEWS: &[&str] = &[
    "t",
    "transpose",
    "reshape",
    "broadcast_as",
    "unsqueeze",
    "narrow",
    "to_dtype",
    "contiguous",
];

pub struct Rewriter<'a> {
    /// The annotated type's name, to recognise `Name { .. }` beside `Self { .. }`.
    pub self_ident: Option<&'a Ident>,
}

impl VisitMut for Rewriter<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        visit_mut::visit_expr_mut(self, expr);
        let replacement = match expr {
            Expr::Struct(lit) if self.is_self_literal(lit) => {
                rewrite_literal(lit);
                None
            }
            Expr::MethodCall(call) if is_field_clone(call) => {
                let field = &call.receiver;
                Some(quote! {{
                    #[allow(unused_imports)]
                    use ::auto_hook::__private::{CloneOther as _, CloneParam as _};
                    (&::auto_hook::__private::Probe(&#field)).clone_field()
                }})
            }
            Expr::MethodCall(call) if ARITHMETIC.contains(&call.method.to_string().as_str()) => {
                let mut fields = Vec::new();
                std::iter::once(&*call.receiver)
                    .chain(call.args.iter())
                    .for_each(|e| param_mention(e, &mut fields));
                fire_uses(expr, &fields)
            }
            Expr::Binary(bin)
                if matches!(
                    bin.op,
                    BinOp::Add(_) | BinOp::Sub(_) | BinOp::Mul(_) | BinOp::Div(_)
                ) =>
            {
                let mut fields = Vec::new();
                param_mention(&bin.left, &mut fields);
                param_mention(&bin.right, &mut fields);
                fire_uses(expr, &fields)
            }
            _ => None,
        };
        if let Some(tokens) = replacement {
            *expr = Expr::Verbatim(tokens);
        }
    }
}

impl Rewriter<'_> {
    fn is_self_literal(&self, lit: &ExprStruct) -> bool {
        if lit.qself.is_some() {
            return false;
        }
        let Some(last) = lit.path.segments.last() else {
            return false;
        };
        last.ident == "Self" || self.self_ident.is_some_and(|i| last.ident == *i)
    }
}

fn rewrite_literal(lit: &mut ExprStruct) {
    for field in lit.fields.iter_mut() {
        let Member::Named(ident) = &field.member else {
            continue;
        };
        let convert = format_ident!("__auto_hook_field_{}", ident);
        let value = &field.expr;
        field.expr = syn::parse_quote!(Self::#convert(#value));
        field.colon_token.get_or_insert_with(Default::default);
    }
    if lit.rest.is_none() {
        lit.fields
            .push(syn::parse_quote!(__auto_hook_point: ::auto_hook::HookPoint::new()));
    }
}

/// `self.field.clone()` with no arguments.
fn is_field_clone(call: &ExprMethodCall) -> bool {
    call.method == "clone" && call.args.is_empty() && self_field(&call.receiver).is_some()
}

/// `self.name` (named field of `self`).
fn self_field(expr: &Expr) -> Option<&Ident> {
    let Expr::Field(f) = expr else { return None };
    let Expr::Path(base) = &*f.base else {
        return None;
    };
    match (&f.member, base.path.is_ident("self")) {
        (Member::Named(ident), true) => Some(ident),
        _ => None,
    }
}

/// Collects the `self.field` that `expr` is, possibly behind `&`, parentheses, `?` and
/// views. The user's own tokens are kept, so `self` keeps its hygiene.
fn param_mention(expr: &Expr, out: &mut Vec<Expr>) {
    match expr {
        Expr::Field(_) if self_field(expr).is_some() => out.push(expr.clone()),
        Expr::Reference(r) => param_mention(&r.expr, out),
        Expr::Paren(p) => param_mention(&p.expr, out),
        Expr::Group(g) => param_mention(&g.expr, out),
        Expr::Try(t) => param_mention(&t.expr, out),
        Expr::MethodCall(call) if VIEWS.contains(&call.method.to_string().as_str()) => {
            param_mention(&call.receiver, out)
        }
        _ => {}
    }
}

/// Wraps `expr` so its result passes through the hook point of each mentioned field.
fn fire_uses(expr: &Expr, fields: &[Expr]) -> Option<TokenStream> {
    if fields.is_empty() {
        return None;
    }
    let mut tokens = quote!(#expr);
    for field in fields {
        tokens = quote!((&::auto_hook::__private::Probe(&#field)).fire_use(#tokens));
    }
    Some(quote! {{
        #[allow(unused_imports)]
        use ::auto_hook::__private::{FireNothing as _, FireParam as _};
        #tokens
    }})
}
