//! Rewrites inside the methods of an annotated impl block:
//! - struct literals of the annotated type convert each field to its hooked type and
//!   add the struct's own hook point;
//! - each arithmetic use of a `self.field` (a parameter when the field is a `Tensor`)
//!   passes its result through that field's hook point;
//! - `self.field.clone()` keeps cloning the tensor of a parameter;
//! - an optional parameter bound by `if let Some(b) = &self.bias` or
//!   `match &self.bias { Some(b) => .. }` counts as `self.bias` inside that branch.

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
    /// Local names bound to the content of an optional field, innermost last.
    pub aliases: Vec<(Ident, Expr)>,
}

impl VisitMut for Rewriter<'_> {
    fn visit_expr_if_mut(&mut self, node: &mut syn::ExprIf) {
        self.visit_expr_mut(&mut node.cond);
        let alias = match &*node.cond {
            Expr::Let(binding) => some_binding(&binding.pat, &binding.expr),
            _ => None,
        };
        self.with_alias(alias, |me| me.visit_block_mut(&mut node.then_branch));
        if let Some((_, other)) = &mut node.else_branch {
            self.visit_expr_mut(other);
        }
    }

    fn visit_expr_match_mut(&mut self, node: &mut syn::ExprMatch) {
        self.visit_expr_mut(&mut node.expr);
        for arm in node.arms.iter_mut() {
            let alias = some_binding(&arm.pat, &node.expr);
            self.with_alias(alias, |me| me.visit_expr_mut(&mut arm.body));
        }
    }

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
                    .for_each(|e| self.param_mention(e, &mut fields));
                fire_uses(expr, &fields)
            }
            Expr::Binary(bin)
                if matches!(
                    bin.op,
                    BinOp::Add(_) | BinOp::Sub(_) | BinOp::Mul(_) | BinOp::Div(_)
                ) =>
            {
                let mut fields = Vec::new();
                self.param_mention(&bin.left, &mut fields);
                self.param_mention(&bin.right, &mut fields);
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
    /// Collects the `self.field` that `expr` is, possibly behind `&`, parentheses, `?`,
    /// views, or a local alias. The user's own tokens are kept, so `self` keeps its hygiene.
    fn param_mention(&self, expr: &Expr, out: &mut Vec<Expr>) {
        match expr {
            Expr::Field(_) if self_field(expr).is_some() => out.push(expr.clone()),
            Expr::Path(p) => {
                let alias = self
                    .aliases
                    .iter()
                    .rev()
                    .find(|(name, _)| p.path.is_ident(name));
                out.extend(alias.map(|(_, field)| field.clone()));
            }
            Expr::Reference(r) => self.param_mention(&r.expr, out),
            Expr::Paren(p) => self.param_mention(&p.expr, out),
            Expr::Group(g) => self.param_mention(&g.expr, out),
            Expr::Try(t) => self.param_mention(&t.expr, out),
            Expr::MethodCall(call) if VIEWS.contains(&call.method.to_string().as_str()) => {
                self.param_mention(&call.receiver, out)
            }
            _ => {}
        }
    }

    /// Visits `body` with `name` standing for the optional field `field`.
    fn with_alias(&mut self, name: Option<(Ident, Expr)>, body: impl FnOnce(&mut Self)) {
        let pushed = name.map(|alias| self.aliases.push(alias)).is_some();
        body(self);
        if pushed {
            self.aliases.pop();
        }
    }

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

/// `Some(name)` matched against `&self.field`, `self.field.as_ref()` or `self.field`:
/// `name` then stands for the field's content.
fn some_binding(pat: &syn::Pat, scrutinee: &Expr) -> Option<(Ident, Expr)> {
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
