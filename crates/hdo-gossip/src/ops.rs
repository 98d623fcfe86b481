//! A round's work as values: the operations a runtime executes, in order.
//!
//! Operations name nodes by index and auxiliary variables by [`Slot::Aux`]; they carry weights
//! and radii but no tensors. Their arithmetic is fixed here (documented per variant) so that any
//! runtime — one process, or many over MPI — computes the same sums in the same order.

/// Which of a node's gradient oracles a step uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Oracle {
    /// The node's own estimator: backprop for FO nodes, the `[zo]` estimator for ZO nodes.
    #[default]
    Own,
    /// A minibatch gradient by backprop (a hybrid-order protocol's first-order iteration).
    First,
    /// The `[zo]` section's estimator, whatever the node's kind (a zeroth-order iteration).
    Zeroth,
}

/// The smoothing radius ν of a zeroth-order estimate.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Smoothing {
    /// The group's configured `nu`.
    #[default]
    Configured,
    /// `ν_i = scale · r̄_i / √d` from the node's mixed radius proxy (D-POEM).
    Radius {
        /// Multiplier of `r̄_i/√d`.
        scale: f64,
    },
}

/// How a node turns its pending estimate `g` into a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rule {
    /// Its optimizer: learning-rate schedule, momentum, sign.
    #[default]
    Optimizer,
    /// Distance over gradients (DoG, D-POEM): `G_i ← G_i + ‖g‖²`, `x ← x − (r̄_i/√G_i)·g`.
    /// Parameter-free: no learning rate.
    DistanceOverGradients,
    /// Count the step and fold its batch statistics into running statistics, but leave the
    /// parameters alone: the estimate went to a server.
    Discard,
}

/// A replica's parameter vector, or an auxiliary one (a centre, a server) held by the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// Node `i`'s parameters.
    Node(usize),
    /// Auxiliary vector `k` (see [`Protocol::aux_vectors`](crate::Protocol::aux_vectors)); it
    /// starts as the initial model.
    Aux(usize),
}

/// What a [`Op::Mix`] mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quantity {
    /// Every float tensor of the model (running statistics included).
    #[default]
    Parameters,
    /// The node's radius proxy `r_i` (one scalar; D-POEM).
    Radius,
    /// The trainable parameters only: each target keeps its own normalisation statistics (a
    /// parameter server, which applies gradients, has none worth copying).
    Trainable,
}

/// One row of a mixing matrix: `target ← Σ_j w_j · source_j`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The vector written.
    pub target: Slot,
    /// `(source, weight)` in ascending source order; the sum is taken in this order, in f32.
    pub weights: Vec<(Slot, f64)>,
}

/// `node ← node − strength·(node − toward)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pull {
    /// The vector moved.
    pub node: Slot,
    /// Where it is pulled.
    pub toward: Slot,
    /// `λ` in `[0, 1]`.
    pub strength: f64,
}

/// One operation of a round.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Each node of `nodes` (distinct, ascending) takes one local step: estimate with `oracle`,
    /// then apply with its optimizer. Steps are independent and may run in parallel.
    Step {
        /// The nodes.
        nodes: Vec<usize>,
        /// Which estimator.
        oracle: Oracle,
    },
    /// Each node of `nodes` computes a gradient estimate at its current parameters and keeps it
    /// pending (for [`Op::Share`] and [`Op::Apply`]).
    Estimate {
        /// The nodes.
        nodes: Vec<usize>,
        /// Which estimator.
        oracle: Oracle,
        /// ν of zeroth-order estimates.
        smoothing: Smoothing,
    },
    /// Exchange of gradient estimates: in each group every member's pending estimate becomes the
    /// group's mean `(g₁ + g₂ + …)/k`, summed in member order — so every member applies the
    /// same update. Each member sends its estimate once to the group: dense vectors, or for
    /// seeded zeroth-order estimates only their coefficients (the directions' seeds are shared).
    Share {
        /// Disjoint groups.
        groups: Vec<Vec<usize>>,
    },
    /// Each node of `nodes` applies its pending estimate by `rule`.
    Apply {
        /// The nodes.
        nodes: Vec<usize>,
        /// The step rule.
        rule: Rule,
    },
    /// Each group's members replace every float tensor by the group mean `((x₁+x₂)+…)/k`
    /// (equal weights; a pair or an all-reduce). Groups of one `Average` are disjoint; several
    /// `Average`s run one after another.
    Average {
        /// Disjoint groups.
        groups: Vec<Vec<usize>>,
    },
    /// Simultaneous mixing `x_i ← Σ_j W_ij x_j`: every row reads the values from before the
    /// operation, so overlapping rows do not see each other's results.
    Mix {
        /// Sparse rows of `W`; a slot without a row keeps its value.
        rows: Vec<Row>,
        /// What is mixed.
        quantity: Quantity,
    },
    /// Pulls, simultaneous like [`Op::Mix`]: `x_i ← x_i − λ(x_i − x_j)`.
    Pull {
        /// The pulls.
        pulls: Vec<Pull>,
    },
    /// Send copies of pending estimates to `target` (a server), each to be applied at its due
    /// round: `(node, due)` (DOWNPOUR's pushes with staleness). The runtime queues them.
    Push {
        /// `(node, due round)`.
        pushes: Vec<(usize, u64)>,
        /// The server.
        target: Slot,
    },
    /// Apply to `target` every estimate queued for it that is due by `round`, in (due, node)
    /// order: `target ← target − step·g`, one estimate after another.
    ServerApply {
        /// The server.
        target: Slot,
        /// This round.
        round: u64,
        /// The server's step size.
        step: f64,
    },
    /// D-POEM's radius proxy: `r_i ← max(r_i, ‖x_i − x_0‖)` with `x_0` the initial model.
    TrackRadius {
        /// The nodes.
        nodes: Vec<usize>,
    },
    /// Euclidean projection of the trainable parameters onto the ball `‖x‖ ≤ radius`.
    Project {
        /// The nodes.
        nodes: Vec<usize>,
        /// The ball's radius.
        radius: f64,
    },
    /// D-POEM's output: add `r̄_i · x_i` to node i's weighted sum of iterates (and `r̄_i` to its
    /// weight), whose ratio is reported as the radius-weighted average.
    Accumulate {
        /// The nodes.
        nodes: Vec<usize>,
    },
}

impl Op {
    /// Whether the operation moves data between nodes (skipped during `local_rounds`).
    pub fn communicates(&self) -> bool {
        matches!(
            self,
            Op::Share { .. }
                | Op::Average { .. }
                | Op::Mix { .. }
                | Op::Pull { .. }
                | Op::Push { .. }
        )
    }

    /// The nodes whose estimators run in this operation.
    pub fn estimating(&self) -> &[usize] {
        match self {
            Op::Step { nodes, .. } | Op::Estimate { nodes, .. } => nodes,
            _ => &[],
        }
    }
}

/// Everything that happens in one round, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Round {
    /// The operations, executed one after the other.
    pub ops: Vec<Op>,
    /// Interactions this round counts for, in the sense of the HDO analysis (one interaction =
    /// two nodes step and average). `parallel_time = Σ interactions / n`.
    pub interactions: f64,
}

impl Round {
    /// How many times each of `n` nodes estimates a gradient this round.
    pub fn steps_per_node(&self, n: usize) -> Vec<u32> {
        let mut counts = vec![0; n];
        for op in &self.ops {
            for &i in op.estimating() {
                counts[i] += 1;
            }
        }
        counts
    }
}
