//! The members' parameter values of a stacked or forward-mode pass, looked up by identity.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use std::collections::HashMap;

/// The float tensors of `members` replicas, in the architecture's visiting order (the order of
/// Burn's module visitor, which is how stacks are built), each flattened per member:
/// `[members, numel]`, or `[1, numel]` when every member has the same value (running statistics,
/// or anything not perturbed). A pass matches them to the architecture's parameters by identity
/// ([`Params`]).
#[derive(Debug, Clone)]
pub struct Stack {
    /// One entry per float tensor.
    pub tensors: Vec<Tensor<2>>,
    /// Number of replicas `K`.
    pub members: usize,
}

/// A stack whose tensors are made on demand and dropped once their layer has used them:
/// `make(i)` returns tensor `i` (visiting order) as `[members, numel]` (or `[1, numel]` when
/// shared). A pass over it holds one layer's parameter tensors at a time instead of the whole
/// stack — how forward gradients keep their directions out of memory.
pub struct LazyStack<'a> {
    /// Number of replicas `K`.
    pub members: usize,
    /// Number of float tensors of the architecture.
    pub tensors: usize,
    /// Tensor `i`.
    pub make: &'a mut dyn FnMut(usize) -> Tensor<2>,
}

/// Where a parameter's values sit in a stack.
struct Entry {
    index: usize,
    path: String,
    numel: usize,
}

/// Hands the rules of a pass each parameter's member values, found by the parameter's
/// [`ParamId`]. The first problem (a stack of another architecture, a tensor of the wrong size)
/// is kept and reported when the pass finishes; the rule gets zeros of the right shape meanwhile.
pub struct Params<'a> {
    members: usize,
    entries: HashMap<ParamId, Entry>,
    make: Box<dyn FnMut(usize) -> Tensor<2> + 'a>,
    error: Option<String>,
    device: Device,
}

impl<'a> Params<'a> {
    /// The parameters of `module`'s architecture in `stack`.
    pub fn of<M: Module>(module: &M, stack: &'a Stack) -> Result<Self, String> {
        let lazy = stack.tensors.len();
        Params::build(module, stack.members, lazy, Box::new(move |i| stack.tensors[i].clone()))
    }

    /// The parameters of `module`'s architecture in a stack made on demand.
    pub fn lazy<M: Module>(module: &M, stack: LazyStack<'a>) -> Result<Self, String> {
        let make = stack.make;
        Params::build(module, stack.members, stack.tensors, Box::new(make))
    }

    fn build<M: Module>(
        module: &M,
        members: usize,
        tensors: usize,
        make: Box<dyn FnMut(usize) -> Tensor<2> + 'a>,
    ) -> Result<Self, String> {
        struct Ids {
            path: Vec<String>,
            entries: HashMap<ParamId, Entry>,
            device: Option<Device>,
        }
        impl ModuleVisitor for Ids {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.path.push(name.into());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.path.pop();
            }
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                let index = self.entries.len();
                let numel = p.lazy_shape().num_elements();
                self.device.get_or_insert_with(|| p.lazy_device());
                self.entries.insert(p.id, Entry { index, path: self.path.join("."), numel });
            }
        }
        let mut ids = Ids { path: Vec::new(), entries: HashMap::new(), device: None };
        module.visit(&mut ids);
        if ids.entries.len() != tensors {
            return Err(format!(
                "the stack holds {tensors} tensors, the architecture has {}",
                ids.entries.len()
            ));
        }
        if members == 0 {
            return Err("a stack of no members".into());
        }
        let device = ids.device.unwrap_or_default();
        Ok(Params { members, entries: ids.entries, make, error: None, device })
    }

    /// `K`.
    pub fn members(&self) -> usize {
        self.members
    }

    /// The first problem met, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// `param`'s values as `[K', shape[1..]]`, `K'` their own member count (1 or `K`).
    pub fn take<const P: usize, const E: usize>(
        &mut self,
        param: &Param<Tensor<P>>,
        mut shape: [usize; E],
    ) -> Tensor<E> {
        let per_member: usize = shape[1..].iter().product();
        let Some(entry) = self.entries.get(&param.id) else {
            return self.fail(format!("a parameter of shape {shape:?} is not in the stack"), shape);
        };
        if entry.numel != per_member {
            let problem = format!(
                "`{}` has {} values, the layer asks for {per_member}",
                entry.path, entry.numel
            );
            return self.fail(problem, shape);
        }
        let (index, path) = (entry.index, entry.path.clone());
        let t = (self.make)(index);
        let [rows, numel] = t.dims();
        if numel != per_member || (rows != 1 && rows != self.members) {
            let problem = format!(
                "the stack's `{path}` is [{rows}, {numel}]; expected [1 or {}, {per_member}]",
                self.members
            );
            return self.fail(problem, shape);
        }
        shape[0] = rows;
        t.reshape(shape)
    }

    /// `param`'s values with exactly `K` members (shared values repeated).
    pub fn take_full<const P: usize, const E: usize>(
        &mut self,
        param: &Param<Tensor<P>>,
        shape: [usize; E],
    ) -> Tensor<E> {
        let t = self.take(param, shape);
        let k = self.members;
        if t.dims()[0] == k { t } else { t.repeat_dim(0, k) }
    }

    fn fail<const E: usize>(&mut self, problem: String, mut shape: [usize; E]) -> Tensor<E> {
        self.error.get_or_insert(problem);
        shape[0] = self.members;
        Tensor::zeros(shape, &self.device)
    }
}
