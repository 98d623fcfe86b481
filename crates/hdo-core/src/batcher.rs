//! Cross-node batching: the perturbed passes of many nodes' steps run as one stacked pass.
//!
//! With `batch_nodes = true`, the zeroth-order nodes stepping in a round each run on a thread of
//! their own and hand their perturbed evaluations ("the losses of these copies of my model on my
//! minibatch") to a shared [`Batcher`] instead of running them. When every node still stepping is
//! waiting, the batcher evaluates all waiting requests as one stacked pass — each node's copies are
//! members with that node's minibatch ([`StackInput::PerMember`]) — and hands every node its
//! losses. Estimators are unchanged: they still ask [`perturbed_losses`](super::estimator) for
//! the losses of their probes and do not know who evaluated them.
//!
//! Determinism: a flush happens only when all remaining nodes wait, so flush `t` holds the `t`-th
//! request of every node that makes one, ordered by node id — the same passes on every run.
//! Memory: a flush holds every node's copies at once (up to `stack` per node).

use crate::data::Batch;
use crate::error::Error;
use burn::prelude::*;
use hdo_models::{ForwardCtx, Input, Model, Stack, StackInput};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

/// One node's perturbed copies waiting for their losses.
struct Request {
    node: usize,
    ticket: u64,
    /// The node's model (its architecture; parameters come from `stack`).
    model: Model,
    stack: Stack,
    batch: Batch,
}

#[derive(Default)]
struct State {
    /// Nodes that may still submit a request.
    active: usize,
    queue: Vec<Request>,
    results: HashMap<u64, Result<Vec<f32>, String>>,
    next_ticket: u64,
    /// A flush panicked: the waiting nodes give up too.
    failed: bool,
}

/// Rendezvous of the nodes stepping together; see the module documentation.
pub struct Batcher {
    state: Mutex<State>,
    wake: Condvar,
    /// Largest buffer of a joint pass, in floats.
    max_floats: usize,
}

impl Default for Batcher {
    fn default() -> Self {
        Batcher::with_limit(MAX_FLOATS)
    }
}

/// A node's membership: dropping it (when the node's step ends, or unwinds) lets the others'
/// flushes go on without it.
pub struct Membership<'a> {
    batcher: &'a Batcher,
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        let mut st = self.batcher.lock();
        st.active -= 1;
        drop(st);
        self.batcher.wake.notify_all();
    }
}

impl Batcher {
    /// An empty batcher; each node that steps through it must [`join`](Batcher::join) first.
    pub fn new() -> Self {
        Batcher::default()
    }

    /// A batcher whose joint passes keep every buffer below `max_floats` floats (a node's request
    /// is never split, so a request larger than that runs alone).
    pub fn with_limit(max_floats: usize) -> Self {
        Batcher { state: Mutex::default(), wake: Condvar::new(), max_floats }
    }

    /// Register one node; call before any node of the round submits.
    pub fn join(&self) -> Membership<'_> {
        self.lock().active += 1;
        Membership { batcher: self }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // a panic while holding the lock only happens in this module's bookkeeping; the state
        // stays consistent enough to let the other nodes fail cleanly
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Losses (mean cross-entropy on `batch`) of the members of `stack`, copies of `model`
    /// belonging to node `node`; blocks until a flush has evaluated them.
    ///
    /// # Panics
    /// When another node's flush panicked (a programming error, reported by that node first).
    pub fn losses(
        &self,
        node: usize,
        model: &Model,
        stack: Stack,
        batch: &Batch,
    ) -> Result<Vec<f32>, Error> {
        let mut st = self.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queue.push(Request { node, ticket, model: model.clone(), stack, batch: batch.clone() });
        loop {
            if let Some(losses) = st.results.remove(&ticket) {
                return losses.map_err(Error::Device);
            }
            assert!(!st.failed, "a batched pass of another node failed");
            if !st.queue.is_empty() && st.queue.len() == st.active {
                let requests = std::mem::take(&mut st.queue);
                drop(st);
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    flush(requests, self.max_floats)
                }));
                st = self.lock();
                match outcome {
                    Ok(done) => st.results.extend(done),
                    Err(panic) => {
                        st.failed = true;
                        drop(st);
                        self.wake.notify_all();
                        std::panic::resume_unwind(panic);
                    }
                }
                self.wake.notify_all();
                continue;
            }
            st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Largest buffer a joint pass builds (a stacked parameter tensor, the repeated inputs), in
/// floats: 128 MiB, the storage-buffer size every wgpu adapter supports (a 256-node logistic
/// population at `stack = 128` would otherwise ask for 1 GB, which lavapipe refuses).
const MAX_FLOATS: usize = 32 << 20;

/// Floats one member adds to the largest buffer of a joint pass.
fn member_floats(r: &Request) -> usize {
    let params = r.stack.tensors.iter().map(|t| t.dims()[1]).max().unwrap_or(0);
    let input: usize = match &r.batch.input {
        Input::Images(x) => x.dims().iter().product(),
        Input::Tokens(x) => x.dims().iter().product(),
    };
    params.max(input)
}

/// Evaluate waiting requests, members ordered by node id: one stacked pass per batch size (a
/// population's nodes share one), split so that no buffer exceeds `max_floats` (a node's request
/// is never split). Returns each request's losses by ticket.
fn flush(mut requests: Vec<Request>, max_floats: usize) -> Vec<(u64, Result<Vec<f32>, String>)> {
    requests.sort_by_key(|r| r.node);
    let mut out = Vec::with_capacity(requests.len());
    let mut sizes: Vec<usize> = requests.iter().map(|r| r.batch.input.batch_size()).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        let mut pass: Vec<&Request> = Vec::new();
        let mut floats = 0;
        for r in requests.iter().filter(|r| r.batch.input.batch_size() == size) {
            let more = r.stack.members * member_floats(r);
            if !pass.is_empty() && floats + more > max_floats {
                out.extend(evaluate_pass(&pass));
                pass.clear();
                floats = 0;
            }
            pass.push(r);
            floats += more;
        }
        if !pass.is_empty() {
            out.extend(evaluate_pass(&pass));
        }
    }
    out
}

/// [`evaluate`] one pass and hand each request its members' losses.
fn evaluate_pass(pass: &[&Request]) -> Vec<(u64, Result<Vec<f32>, String>)> {
    let losses = evaluate(pass).map_err(|e| e.to_string());
    let mut at = 0;
    pass.iter()
        .map(|r| {
            let k = r.stack.members;
            at += k;
            (r.ticket, losses.clone().map(|l| l[at - k..at].to_vec()))
        })
        .collect()
}

/// One stacked pass over the members of `group` (same batch size), each on its node's batch.
fn evaluate(group: &[&Request]) -> Result<Vec<f32>, Error> {
    let members: usize = group.iter().map(|r| r.stack.members).sum();
    let tensors = (0..group[0].stack.tensors.len())
        .map(|j| {
            let parts: Vec<Tensor<2>> = group
                .iter()
                .map(|r| {
                    // shared values (running statistics) differ between nodes: give each member
                    // its own row
                    let t = r.stack.tensors[j].clone();
                    let k = r.stack.members;
                    if t.dims()[0] == k { t } else { t.repeat_dim(0, k) }
                })
                .collect();
            Tensor::cat(parts, 0)
        })
        .collect();
    let stack = Stack { tensors, members };
    let repeat = |r: &Request| r.stack.members;
    let input = match &group[0].batch.input {
        Input::Images(_) => Input::Images(Tensor::cat(
            group
                .iter()
                .map(|r| {
                    let Input::Images(x) = &r.batch.input else { unreachable!("one architecture") };
                    member_major(x.clone(), repeat(r))
                })
                .collect(),
            0,
        )),
        Input::Tokens(_) => Input::Tokens(Tensor::cat(
            group
                .iter()
                .map(|r| {
                    let Input::Tokens(x) = &r.batch.input else { unreachable!("one architecture") };
                    let [b, t] = x.dims();
                    x.clone()
                        .unsqueeze_dim::<3>(0)
                        .repeat_dim(0, repeat(r))
                        .reshape([repeat(r) * b, t])
                })
                .collect(),
            0,
        )),
    };
    let targets = Tensor::cat(
        group
            .iter()
            .map(|r| {
                let b = r.batch.targets.dims()[0];
                r.batch
                    .targets
                    .clone()
                    .unsqueeze_dim::<2>(0)
                    .repeat_dim(0, repeat(r))
                    .reshape([repeat(r) * b])
            })
            .collect(),
        0,
    );
    // no dropout: models with dropout are not batched across nodes (`Model::has_dropout`)
    let ctx = ForwardCtx::train();
    let logits = group[0]
        .model
        .forward_stacked(&stack, StackInput::PerMember(&input), &ctx)
        .map_err(Error::Model)?;
    crate::params::download(crate::estimator::stacked_loss(&group[0].model, logits, &targets))
}

/// `[B, …]` repeated `k` times, member-major: `[k·B, …]`.
fn member_major(x: Tensor<4>, k: usize) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.unsqueeze_dim::<5>(0).repeat_dim(0, k).reshape([k * b, c, h, w])
}
