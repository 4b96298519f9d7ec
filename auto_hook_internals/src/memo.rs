//! Values a model memoizes from its parameters (issue 19 item 5).
//!
//! A method such as falcon's
//!
//! ```text
//! fn cos_sin(&mut self, seq_len: usize, ..) -> Result<(Tensor, Tensor)> {
//!     if let Some((s, cos, sin)) = &self.cache { if *s == seq_len { return .. } }
//!     let inv_freq = self.inv_freq.to_dtype(dtype)?;   // a parameter, hooked
//!     ..
//!     self.cache = Some((seq_len, cos.clone(), sin.clone()));
//! ```
//!
//! would keep a per-call edit of `inv_freq` in `cache` for every later run, and a later
//! hooked run would return the memo without firing `inv_freq`'s point. A **memo store**
//! is `self.field = Some(value)` in a `&mut self` method where `value` depends (through
//! the method's `let` bindings) on a `self.*` field and on no input: no argument whose
//! type is more than a scalar, a `DType` or a `Device`. State computed from the inputs
//! (a KV cache written by an edited prefill) is not a memo: it stays as the run left it.
//!
//! When one of the fields the memo depends on is a parameter whose hook point is hooked
//! in the current call, the method runs with its memo fields set to `None` and puts
//! them back afterwards: the hooks fire, the edit is used for this call only, and the
//! model memoizes exactly what it did before.

use crate::rewrite::self_field;
use quote::quote;
use std::collections::{BTreeSet, HashMap};
use syn::visit::{self, Visit};
use syn::{Expr, FnArg, Ident, ImplItemFn, Pat, ReturnType, Type};

/// What a method memoizes: the memo fields and the fields their values depend on.
#[derive(Debug, Default, PartialEq)]
pub struct Memo {
    pub fields: BTreeSet<Ident>,
    pub sources: BTreeSet<Ident>,
}

/// The memo stores of `method` (before its body is rewritten); `None` when it has none
/// or cannot be guarded (no `&mut self`, an async method, a borrowed or `impl` output).
pub fn find(method: &ImplItemFn) -> Option<Memo> {
    let Some(FnArg::Receiver(receiver)) = method.sig.inputs.first() else {
        return None;
    };
    if !matches!(receiver.kind, syn::ReceiverKind::Reference(_, _, Some(_))) {
        return None;
    }
    if method.sig.asyncness.is_some() || borrows(&method.sig.output) {
        return None;
    }
    let inputs: BTreeSet<Ident> = method
        .sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(t) if !is_scalar(&t.ty) => Some(t),
            _ => None,
        })
        .flat_map(|t| bound_idents(&t.pat))
        .collect();
    let mut flow = Flow::default();
    flow.visit_block(&method.block);
    let mut memo = Memo::default();
    for (field, value) in &flow.stores {
        let (locals, fields) = flow.closure(value);
        if fields.is_empty() || locals.iter().any(|l| inputs.contains(l)) {
            continue;
        }
        memo.fields.insert(field.clone());
        memo.sources.extend(fields);
    }
    memo.sources.retain(|f| !memo.fields.contains(f));
    (!memo.fields.is_empty() && !memo.sources.is_empty()).then_some(memo)
}

/// Wraps the (rewritten) body: when a source parameter is hooked now, the memo fields
/// are taken out for the call and put back after it.
pub fn wrap(method: &mut ImplItemFn, memo: &Memo) {
    let Some(FnArg::Receiver(receiver)) = method.sig.inputs.first() else {
        return;
    };
    let this = receiver.self_token;
    let ret = match &method.sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let sources = memo.sources.iter();
    let fields: Vec<&Ident> = memo.fields.iter().collect();
    let run = crate::expand_impl::run_body(quote!(__auto_hook_memo_out), ret, &method.block);
    method.block = syn::parse_quote!({
        let __auto_hook_memo = {
            #[allow(unused_imports)]
            use ::auto_hook::__private::{ParamHooked as _, OtherHooked as _};
            false #(|| (&::auto_hook::__private::Probe(&#this.#sources)).param_hooked())*
        };
        let __auto_hook_saved = __auto_hook_memo
            .then(|| (#(::std::mem::take(&mut #this.#fields),)*));
        #run
        if let Some((#(#fields,)*)) = __auto_hook_saved {
            #(#this.#fields = #fields;)*
        }
        __auto_hook_memo_out
    });
}

/// The output type holds a borrow or an opaque type, which the body's closure could
/// not return.
fn borrows(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    let text = quote!(#ty).to_string();
    text.contains('&') || text.contains('\'') || text.contains("impl ")
}

/// A scalar, a `DType` or a `Device` (by value or by reference): an argument that says
/// how much or where to compute, not what from.
fn is_scalar(ty: &Type) -> bool {
    const SCALARS: &[&str] = &[
        "usize", "isize", "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f32", "f64",
        "bool", "DType", "Device",
    ];
    match ty {
        Type::Reference(r) => is_scalar(&r.elem),
        Type::Paren(p) => is_scalar(&p.elem),
        Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.arguments.is_none() && SCALARS.contains(&&*s.ident.to_string())),
        _ => false,
    }
}

fn bound_idents(pat: &Pat) -> Vec<Ident> {
    struct Names(Vec<Ident>);
    impl Visit<'_> for Names {
        fn visit_pat_ident(&mut self, p: &syn::PatIdent) {
            self.0.push(p.ident.clone());
            visit::visit_pat_ident(self, p);
        }
    }
    let mut names = Names(Vec::new());
    names.visit_pat(pat);
    names.0
}

/// The locals and `self` fields an expression mentions.
fn mentions(expr: &Expr) -> (BTreeSet<Ident>, BTreeSet<Ident>) {
    #[derive(Default)]
    struct Mentions(BTreeSet<Ident>, BTreeSet<Ident>);
    impl Visit<'_> for Mentions {
        fn visit_expr(&mut self, e: &Expr) {
            if let Some(field) = self_field(e) {
                self.1.insert(field.clone());
                return;
            }
            if let Expr::Path(p) = e {
                if let Some(ident) = p.path.get_ident() {
                    self.0.insert(ident.clone());
                }
            }
            visit::visit_expr(self, e);
        }
    }
    let mut m = Mentions::default();
    m.visit_expr(expr);
    (m.0, m.1)
}

/// Local data flow of a method body: what each local is computed from, and the
/// `self.field = Some(..)` stores.
#[derive(Default)]
struct Flow {
    deps: HashMap<Ident, (BTreeSet<Ident>, BTreeSet<Ident>)>,
    stores: Vec<(Ident, Expr)>,
}

impl Flow {
    fn bind(&mut self, names: Vec<Ident>, from: &Expr) {
        let (locals, fields) = mentions(from);
        for name in names {
            let entry = self.deps.entry(name).or_default();
            entry.0.extend(locals.iter().cloned());
            entry.1.extend(fields.iter().cloned());
        }
    }

    /// The locals and fields `value` depends on, through the bindings seen.
    fn closure(&self, value: &Expr) -> (BTreeSet<Ident>, BTreeSet<Ident>) {
        let (mut locals, mut fields) = mentions(value);
        let mut todo: Vec<Ident> = locals.iter().cloned().collect();
        while let Some(local) = todo.pop() {
            if let Some((more_locals, more_fields)) = self.deps.get(&local) {
                fields.extend(more_fields.iter().cloned());
                for l in more_locals {
                    if locals.insert(l.clone()) {
                        todo.push(l.clone());
                    }
                }
            }
        }
        (locals, fields)
    }
}

impl Visit<'_> for Flow {
    fn visit_local(&mut self, local: &syn::Local) {
        if let Some(init) = &local.init {
            self.bind(bound_idents(&local.pat), &init.expr);
        }
        visit::visit_local(self, local);
    }

    fn visit_expr_for_loop(&mut self, node: &syn::ExprForLoop) {
        self.bind(bound_idents(&node.pat), &node.expr);
        visit::visit_expr_for_loop(self, node);
    }

    fn visit_expr_assign(&mut self, node: &syn::ExprAssign) {
        if let Some(field) = self_field(&node.left) {
            if let Expr::Call(call) = &*node.right {
                if matches!(&*call.func, Expr::Path(p) if p.path.is_ident("Some")) {
                    self.stores.push((field.clone(), (*node.right).clone()));
                }
            }
        } else if let Expr::Path(p) = &*node.left {
            if let Some(ident) = p.path.get_ident() {
                self.bind(vec![ident.clone()], &node.right);
            }
        }
        visit::visit_expr_assign(self, node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memo_of(src: &str) -> Option<Memo> {
        find(&syn::parse_str::<ImplItemFn>(src).unwrap())
    }

    fn names(set: &BTreeSet<Ident>) -> Vec<String> {
        set.iter().map(Ident::to_string).collect()
    }

    #[test]
    fn falcon_cos_sin_is_a_memo_of_inv_freq() {
        let memo = memo_of(
            "fn cos_sin(&mut self, seq_len: usize, device: &Device, dtype: DType) -> Result<(Tensor, Tensor)> {
                match &self.cache {
                    Some((s, cos, sin)) if *s == seq_len => return Ok((cos.clone(), sin.clone())),
                    _ => {}
                }
                let t = Tensor::arange(0, seq_len as u32, device)?.to_dtype(dtype)?;
                let inv_freq = self.inv_freq.to_dtype(dtype)?;
                let freqs = t.unsqueeze(1)?.matmul(&inv_freq.unsqueeze(0)?)?;
                let emb = Tensor::cat(&[&freqs, &freqs], D::Minus1)?;
                let (cos, sin) = (emb.cos()?, emb.sin()?);
                self.cache = Some((seq_len, cos.clone(), sin.clone()));
                Ok((cos, sin))
            }",
        )
        .expect("a memo");
        assert_eq!(names(&memo.fields), ["cache"]);
        assert_eq!(names(&memo.sources), ["inv_freq"]);
    }

    #[test]
    fn a_kv_cache_written_from_the_input_is_state_not_a_memo() {
        let src = "fn forward(&mut self, x: &Tensor, pos: usize) -> Result<Tensor> {
            let k = x.matmul(&self.w_k)?;
            let k = match &self.kv { Some((pk, _)) => Tensor::cat(&[pk, &k], 1)?, None => k };
            self.kv = Some((k.clone(), k.clone()));
            Ok(k)
        }";
        assert_eq!(memo_of(src), None);
        // token ids in a slice are an input as much as a tensor is
        let src = "fn forward(&mut self, ids: &[u32]) -> Result<Tensor> {
            let t = Tensor::new(ids, &self.device)?;
            let e = t.matmul(&self.w)?;
            self.last = Some(e.clone());
            Ok(e)
        }";
        assert_eq!(memo_of(src), None);
    }

    #[test]
    fn methods_that_cannot_be_guarded_are_left_alone() {
        let by_shared_ref = "fn f(&self, n: usize) -> Result<Tensor> {
            let a = self.w.narrow(0, 0, n)?; self.c.set(Some(a.clone())); Ok(a) }";
        assert_eq!(memo_of(by_shared_ref), None);
        let borrowed = "fn f(&mut self, n: usize) -> &Tensor {
            let a = self.w.clone(); self.c = Some(a); self.c.as_ref().unwrap() }";
        assert_eq!(memo_of(borrowed), None);
        let constant = "fn f(&mut self, n: usize) { self.c = Some(n); }";
        assert_eq!(memo_of(constant), None);
    }
}
