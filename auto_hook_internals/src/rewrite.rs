//! Rewrites inside the methods of an annotated item:
//! - struct literals of the annotated type (and of hooked types seen before, see
//!   `registry`) go through the type's hidden constructor, which converts each field to
//!   its hooked type and adds the own hook point; struct patterns of them get `..`;
//! - each use of a parameter (`self.field`, `self.field[i]`, a loop variable over
//!   `self.field`, `Some(b)` of `&self.field`) fires the parameter's hook point once:
//!   on the result of the operation it feeds (operators, arithmetic and element-wise
//!   methods), or, when it is only viewed (`self.d.to_dtype(..)?`), on the view itself;
//! - assignments to fields go through `assign`, so a `Tensor` value can be stored into
//!   a parameter field (state such as a cache) and keeps its hook point;
//! - `self.field.clone()` keeps cloning the tensor of a parameter.
//!
//! The macro cannot see field types from an impl block: every probe is resolved by the
//! compiler (autoref specialisation) and is the identity for fields that are not
//! parameters.

use crate::mentions::{chain, loop_bindings, some_binding, Chain};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::visit_mut::{self, VisitMut};
use syn::{BinOp, Expr, ExprMethodCall, ExprStruct, Ident, Member};

use crate::mentions::{ARITHMETIC, FUNCTIONS};

pub struct Rewriter<'a> {
    /// The annotated type's name, to recognise `Name { .. }` beside `Self { .. }`.
    pub self_ident: Option<&'a Ident>,
    /// Local names bound to a parameter (`Some(b)` of an optional field, a loop
    /// variable over a container field), innermost last, with the expression to probe.
    pub aliases: Vec<(Ident, Expr)>,
}

impl VisitMut for Rewriter<'_> {
    fn visit_expr_if_mut(&mut self, node: &mut syn::ExprIf) {
        let alias = match &*node.cond {
            Expr::Let(binding) => some_binding(&binding.pat, &binding.expr),
            _ => None,
        };
        self.visit_expr_mut(&mut node.cond);
        self.with_aliases(alias.into_iter().collect(), |me| {
            me.visit_block_mut(&mut node.then_branch)
        });
        if let Some((_, other)) = &mut node.else_branch {
            self.visit_expr_mut(other);
        }
    }

    fn visit_expr_match_mut(&mut self, node: &mut syn::ExprMatch) {
        let aliases: Vec<Option<(Ident, Expr)>> = node
            .arms
            .iter()
            .map(|arm| some_binding(&arm.pat, &node.expr))
            .collect();
        self.visit_expr_mut(&mut node.expr);
        for (arm, alias) in node.arms.iter_mut().zip(aliases) {
            self.visit_pat_mut(&mut arm.pat);
            self.with_aliases(alias.into_iter().collect(), |me| {
                me.visit_expr_mut(&mut arm.body)
            });
        }
    }

    fn visit_expr_for_loop_mut(&mut self, node: &mut syn::ExprForLoop) {
        let aliases = loop_bindings(&node.pat, &node.expr);
        self.visit_expr_mut(&mut node.expr);
        self.with_aliases(aliases, |me| me.visit_block_mut(&mut node.body));
    }

    fn visit_pat_struct_mut(&mut self, node: &mut syn::PatStruct) {
        visit_mut::visit_pat_struct_mut(self, node);
        if node.rest.is_none() && node.qself.is_none() && self.is_hooked_path(&node.path) {
            node.rest = Some(syn::PatRest {
                attrs: Vec::new(),
                dot2_token: Default::default(),
            });
        }
    }

    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        if let Some(tokens) = self.rewrite(expr) {
            *expr = Expr::Verbatim(tokens);
        }
    }
}

impl Rewriter<'_> {
    /// The replacement of `expr`, with its parts rewritten; `None` keeps `expr` (whose
    /// parts were rewritten in place).
    fn rewrite(&mut self, expr: &mut Expr) -> Option<TokenStream> {
        match expr {
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
                self.operand(&mut call.receiver, &mut fields);
                for arg in call.args.iter_mut() {
                    self.operand(arg, &mut fields);
                }
                fire_uses(expr, &fields)
            }
            Expr::Call(call) if is_tensor_function(&call.func) => {
                let mut fields = Vec::new();
                for arg in call.args.iter_mut() {
                    if let Expr::Reference(r) = arg {
                        if let Expr::Array(array) = &mut *r.expr {
                            for elem in array.elems.iter_mut() {
                                self.operand(elem, &mut fields);
                            }
                            continue;
                        }
                    }
                    self.operand(arg, &mut fields);
                }
                fire_uses(expr, &fields)
            }
            Expr::Binary(bin)
                if matches!(
                    bin.op,
                    BinOp::Add(_) | BinOp::Sub(_) | BinOp::Mul(_) | BinOp::Div(_)
                ) =>
            {
                let mut fields = Vec::new();
                self.operand(&mut bin.left, &mut fields);
                self.operand(&mut bin.right, &mut fields);
                fire_uses(expr, &fields)
            }
            // `self.embedding.forward(&self.position_ids)`: a parameter given to a module
            // fires its point on the value passed
            Expr::MethodCall(call) if FORWARDS.contains(&call.method.to_string().as_str()) => {
                self.visit_expr_mut(&mut call.receiver);
                for arg in call.args.iter_mut() {
                    // `Some(&self.mask)` too
                    let inner = match arg {
                        Expr::Call(c) if is_some_call(c) => &mut c.args[0],
                        other => other,
                    };
                    match field_ref(inner).and(arg_read(inner)) {
                        Some(tokens) => *inner = Expr::Verbatim(tokens),
                        None => self.visit_expr_mut(inner),
                    }
                }
                None
            }
            Expr::Assign(assign) if has_field(&assign.left) && !is_none(&assign.right) => {
                visit_mut::visit_expr_mut(self, &mut assign.left);
                self.visit_expr_mut(&mut assign.right);
                let (place, value) = (&assign.left, &assign.right);
                Some(quote! {{
                    let __auto_hook_value = #value;
                    ::auto_hook::__private::assign(&mut #place, __auto_hook_value)
                }})
            }
            _ => {
                if let Some(found) = chain(expr, &self.aliases).filter(|c| c.viewed) {
                    return Some(self.read_chain(expr, found));
                }
                if field_ref(expr).is_some() {
                    if let Expr::Reference(r) = expr {
                        self.visit_chain_args(&mut r.expr);
                    }
                    return field_ref(expr);
                }
                visit_mut::visit_expr_mut(self, expr);
                match expr {
                    Expr::Struct(lit) if self.is_hooked_path(&lit.path) && lit.qself.is_none() => {
                        rewrite_literal(lit)
                    }
                    _ => None,
                }
            }
        }
    }

    /// An operand of an arithmetic operation: a parameter use is recorded (its views
    /// kept), anything else is rewritten as usual.
    fn operand(&mut self, operand: &mut Expr, fields: &mut Vec<Expr>) {
        match chain(operand, &self.aliases) {
            Some(found) => {
                self.visit_chain_args(operand);
                fields.push(found.base);
                if let Some(tokens) = field_ref(operand) {
                    *operand = Expr::Verbatim(tokens);
                }
            }
            None => self.visit_expr_mut(operand),
        }
    }

    /// A viewed parameter that feeds no operation (`let d = self.d.to_dtype(t)?;`):
    /// the view fires the parameter's point. Wraps the innermost `Result` of the chain,
    /// so the expression keeps its type.
    fn read_chain(&mut self, expr: &mut Expr, found: Chain) -> TokenStream {
        self.visit_chain_args(expr);
        fire_read(expr, &found.base)
    }

    /// Rewrites the arguments of the views in a parameter chain (`self.w.narrow(0, n, k)`).
    fn visit_chain_args(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Reference(r) => self.visit_chain_args(&mut r.expr),
            Expr::Paren(p) => self.visit_chain_args(&mut p.expr),
            Expr::Group(g) => self.visit_chain_args(&mut g.expr),
            Expr::Try(t) => self.visit_chain_args(&mut t.expr),
            Expr::MethodCall(call) => {
                self.visit_chain_args(&mut call.receiver);
                for arg in call.args.iter_mut() {
                    self.visit_expr_mut(arg);
                }
            }
            Expr::Index(index) => {
                self.visit_chain_args(&mut index.expr);
                self.visit_expr_mut(&mut index.index);
            }
            _ => {}
        }
    }

    /// Visits `body` with `aliases` standing for parameters.
    fn with_aliases(&mut self, aliases: Vec<(Ident, Expr)>, body: impl FnOnce(&mut Self)) {
        let pushed = aliases.len();
        self.aliases.extend(aliases);
        body(self);
        self.aliases.truncate(self.aliases.len() - pushed);
    }

    /// `Self`, the annotated type, or a hooked type recorded earlier (never a variant
    /// path such as `Self::Variant` or `Enum::Variant`).
    fn is_hooked_path(&self, path: &syn::Path) -> bool {
        let Some(last) = path.segments.last() else {
            return false;
        };
        let n = path.segments.len();
        if n >= 2 {
            let parent = path.segments[n - 2].ident.to_string();
            let module = parent == "crate"
                || parent == "super"
                || parent == "self"
                || parent.starts_with(|c: char| c.is_lowercase() || c == '_');
            if !module {
                return false;
            }
        }
        if last.ident == "Self" {
            return n == 1;
        }
        // A longer path names the type through a module: only this crate's own
        // (`crate::`, `self::`, `super::`) can hold a type annotated here.
        let local = n == 1
            || matches!(
                path.segments[0].ident.to_string().as_str(),
                "crate" | "self" | "super"
            );
        local
            && (self.self_ident.is_some_and(|i| last.ident == *i)
                || crate::registry::is_hooked(&last.ident))
    }
}

/// Fires `base`'s point on the innermost `Result` of a view chain, keeping the outer
/// `&`, parentheses and `?` (so the expression keeps its type).
fn fire_read(expr: &Expr, base: &Expr) -> TokenStream {
    match expr {
        Expr::Reference(r) if r.mutability.is_none() => {
            let inner = fire_read(&r.expr, base);
            quote!(&(#inner))
        }
        Expr::Paren(p) => {
            let inner = fire_read(&p.expr, base);
            quote!((#inner))
        }
        Expr::Try(t) => {
            let inner = fire_read(&t.expr, base);
            quote!((#inner)?)
        }
        _ => fire_all(expr, std::slice::from_ref(base)),
    }
}

/// `Name { a: x, b }` → `Name::__auto_hook_new(..)` with the values in field-name
/// order (bound first, in the written order, when that differs); `Name { a: x, ..base }`
/// converts the written fields and takes the rest (the own hook point too) from `base`.
fn rewrite_literal(lit: &mut ExprStruct) -> Option<TokenStream> {
    let has_attrs = lit.fields.iter().any(|f| !f.attrs.is_empty());
    let named: Option<Vec<Ident>> = lit
        .fields
        .iter()
        .map(|f| match &f.member {
            Member::Named(ident) => Some(ident.clone()),
            Member::Unnamed(_) => None,
        })
        .collect();
    let named = named?;
    if lit.rest.is_some() || has_attrs {
        for field in lit.fields.iter_mut() {
            let Member::Named(ident) = &field.member else {
                continue;
            };
            let convert = format_ident!("__auto_hook_field_{}", ident);
            let value = &field.expr;
            let path = &lit.path;
            field.expr = syn::parse_quote!(#path::#convert(#value));
            field.colon_token.get_or_insert_with(Default::default);
        }
        return None;
    }
    let mut order: Vec<usize> = (0..named.len()).collect();
    order.sort_by_key(|&i| named[i].to_string());
    let path = &lit.path;
    let values: Vec<&Expr> = lit.fields.iter().map(|f| &f.expr).collect();
    if order.iter().enumerate().all(|(pos, &i)| pos == i) {
        return Some(quote!(#path::__auto_hook_new(#(#values),*)));
    }
    let locals: Vec<Ident> = (0..values.len())
        .map(|i| format_ident!("__auto_hook_f{}", i))
        .collect();
    let sorted = order.iter().map(|&i| &locals[i]);
    Some(quote! {{
        #(let #locals = #values;)*
        #path::__auto_hook_new(#(#sorted),*)
    }})
}

/// `&self.field` or `&self.field[i]`: read through [`RefParam`](auto_hook::__private),
/// so a parameter is a `&Tensor` again and any other field keeps its type.
fn field_ref(expr: &Expr) -> Option<TokenStream> {
    let Expr::Reference(r) = expr else {
        return None;
    };
    if r.mutability.is_some() || !is_field_place(&r.expr) {
        return None;
    }
    let place = &r.expr;
    Some(quote! {{
        #[allow(unused_imports)]
        use ::auto_hook::__private::{RefOther as _, RefParam as _};
        (&::auto_hook::__private::Probe(&#place)).field_ref()
    }})
}

/// `Some(x)` with one argument.
fn is_some_call(call: &syn::ExprCall) -> bool {
    call.args.len() == 1 && matches!(&*call.func, Expr::Path(p) if p.path.is_ident("Some"))
}

/// Module calls whose tensor arguments are inputs of the module.
const FORWARDS: &[&str] = &["forward", "forward_t", "apply", "apply_t"];

/// `&self.field` given to a module call: a parameter fires its point on its value
/// (a `Cow` of the tensor, passed on as `&Tensor`); any other field is passed as it is.
fn arg_read(expr: &Expr) -> Option<TokenStream> {
    let Expr::Reference(r) = expr else {
        return None;
    };
    let place = &r.expr;
    Some(quote! {
        &*{
            #[allow(unused_imports)]
            use ::auto_hook::__private::{ReadOther as _, ReadParam as _};
            (&::auto_hook::__private::Probe(&#place)).read_arg()?
        }
    })
}

/// `self.field`, `self.field[i]`, `self.field[i][j]`.
fn is_field_place(expr: &Expr) -> bool {
    match expr {
        Expr::Index(i) => is_field_place(&i.expr),
        Expr::Paren(p) => is_field_place(&p.expr),
        _ => self_field(expr).is_some(),
    }
}

/// A call of one of [`FUNCTIONS`].
fn is_tensor_function(func: &Expr) -> bool {
    let Expr::Path(path) = func else { return false };
    path.path
        .segments
        .last()
        .is_some_and(|s| FUNCTIONS.contains(&s.ident.to_string().as_str()))
}

/// `self.field.clone()` with no arguments.
fn is_field_clone(call: &ExprMethodCall) -> bool {
    call.method == "clone" && call.args.is_empty() && self_field(&call.receiver).is_some()
}

/// `self.name` (named field of `self`).
pub fn self_field(expr: &Expr) -> Option<&Ident> {
    let Expr::Field(f) = expr else { return None };
    let Expr::Path(base) = &*f.base else {
        return None;
    };
    match (&f.member, base.path.is_ident("self")) {
        (Member::Named(ident), true) => Some(ident),
        _ => None,
    }
}

/// Whether an assignment's place goes through a field (`self.cache`, `state.hs[i]`).
fn has_field(place: &Expr) -> bool {
    match place {
        Expr::Field(_) => true,
        Expr::Index(i) => has_field(&i.expr),
        Expr::Paren(p) => has_field(&p.expr),
        Expr::Unary(u) => has_field(&u.expr),
        _ => false,
    }
}

/// `None`: assigned as it is (an `Option<Param>` takes it directly; `assign` could not
/// infer which `Option` is meant).
fn is_none(value: &Expr) -> bool {
    matches!(value, Expr::Path(p) if p.path.is_ident("None"))
}

/// Wraps `expr` so its result passes through the hook point of each mentioned field.
fn fire_uses(expr: &Expr, fields: &[Expr]) -> Option<TokenStream> {
    (!fields.is_empty()).then(|| fire_all(expr, fields))
}

fn fire_all(expr: &Expr, fields: &[Expr]) -> TokenStream {
    let mut tokens = quote!(#expr);
    for field in fields {
        tokens = quote!((&::auto_hook::__private::Probe(&#field)).fire_use(#tokens));
    }
    quote! {{
        #[allow(unused_imports)]
        use ::auto_hook::__private::{FireNothing as _, FireParam as _};
        #tokens
    }}
}
