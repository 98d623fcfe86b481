//! What each operation sends, from whom to whom: the data a runtime moves, and what
//! `bytes_sent` counts.
//!
//! A message is one transmission of a payload from one slot to one or more recipients; its size
//! is counted once (point-to-point when it has one recipient, a broadcast or all-gather
//! contribution when it has several). Payloads are symbolic — the plan knows no tensor sizes —
//! and a runtime sizes them with [`Sizes`].

use crate::ops::{Op, Quantity, Round, Slot};

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// A whole parameter vector (every float tensor, running statistics included).
    Parameters,
    /// The trainable parameters only.
    Trainable,
    /// The sender's pending gradient estimate: dense, or a seeded estimate's coefficients.
    Estimate,
    /// This many f32 scalars (a radius proxy, a loss).
    Scalars(u64),
}

/// One transmission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Sender.
    pub from: Slot,
    /// Recipients (distinct, none equal to the sender).
    pub to: Vec<Slot>,
    /// Contents.
    pub payload: Payload,
}

/// The sizes a runtime gives payloads, in f32 values.
pub trait Sizes {
    /// Values of a parameter vector.
    fn parameters(&self) -> u64;
    /// Values of its trainable part (all of it unless the model has running statistics).
    fn trainable(&self) -> u64 {
        self.parameters()
    }
    /// Values of `node`'s pending estimate (trainable numel when dense, its coefficients when
    /// seeded).
    fn estimate(&self, node: usize) -> u64;
}

impl Message {
    /// Size in f32 values.
    pub fn values(&self, sizes: &dyn Sizes) -> u64 {
        match self.payload {
            Payload::Parameters => sizes.parameters(),
            Payload::Trainable => sizes.trainable(),
            Payload::Estimate => match self.from {
                Slot::Node(i) => sizes.estimate(i),
                Slot::Aux(_) => sizes.parameters(),
            },
            Payload::Scalars(k) => k,
        }
    }
}

impl Op {
    /// The messages this operation sends.
    ///
    /// - [`Op::Average`]: each other member sends its vector to the group's first member, which
    ///   sends the mean back to each: `2(k−1)` vectors for a group of `k` — as many as a ring
    ///   all-reduce moves in total, and 2 for a pair.
    /// - [`Op::Mix`]: for each row, one vector from every source with a non-zero weight other
    ///   than the target itself (point to point, as a neighbour exchange does).
    /// - [`Op::Share`]: each member broadcasts its estimate to the rest of its group once (an
    ///   all-gather contribution; HO-SGD's accounting).
    /// - [`Op::Pull`]: the vector pulled toward, to the node pulled (unless it is its own).
    /// - [`Op::Push`]: each node's estimate, to the server.
    /// - Steps, radius tracking, projection and accumulation are local: no message.
    pub fn messages(&self) -> Vec<Message> {
        match self {
            Op::Average { groups } => groups
                .iter()
                .filter(|g| g.len() > 1)
                .flat_map(|g| {
                    let head = Slot::Node(g[0]);
                    g[1..].iter().flat_map(move |&m| {
                        let m = Slot::Node(m);
                        [
                            Message { from: m, to: vec![head], payload: Payload::Parameters },
                            Message { from: head, to: vec![m], payload: Payload::Parameters },
                        ]
                    })
                })
                .collect(),
            Op::Mix { rows, quantity } => {
                let payload = match quantity {
                    Quantity::Parameters => Payload::Parameters,
                    Quantity::Trainable => Payload::Trainable,
                    Quantity::Radius => Payload::Scalars(1),
                };
                rows.iter()
                    .flat_map(|row| {
                        row.weights
                            .iter()
                            .filter(move |(s, w)| *s != row.target && *w != 0.0)
                            .map(move |&(s, _)| Message { from: s, to: vec![row.target], payload })
                    })
                    .collect()
            }
            Op::Share { groups } => groups
                .iter()
                .filter(|g| g.len() > 1)
                .flat_map(|g| {
                    g.iter().map(move |&m| Message {
                        from: Slot::Node(m),
                        to: g.iter().filter(|&&o| o != m).map(|&o| Slot::Node(o)).collect(),
                        payload: Payload::Estimate,
                    })
                })
                .collect(),
            Op::Pull { pulls } => pulls
                .iter()
                .filter(|p| p.node != p.toward && p.strength != 0.0)
                .map(|p| Message { from: p.toward, to: vec![p.node], payload: Payload::Parameters })
                .collect(),
            Op::Push { pushes, target } => pushes
                .iter()
                .filter(|(n, _)| Slot::Node(*n) != *target)
                .map(|&(n, _)| Message {
                    from: Slot::Node(n),
                    to: vec![*target],
                    payload: Payload::Estimate,
                })
                .collect(),
            Op::Step { .. }
            | Op::ServerApply { .. }
            | Op::Estimate { .. }
            | Op::Apply { .. }
            | Op::TrackRadius { .. }
            | Op::Project { .. }
            | Op::Accumulate { .. } => Vec::new(),
        }
    }

    /// f32 values this operation sends.
    pub fn values_sent(&self, sizes: &dyn Sizes) -> u64 {
        self.messages().iter().map(|m| m.values(sizes)).sum()
    }
}

impl Round {
    /// Every message of the round, operation by operation.
    pub fn messages(&self) -> Vec<Message> {
        self.ops.iter().flat_map(Op::messages).collect()
    }

    /// f32 values the round sends.
    pub fn values_sent(&self, sizes: &dyn Sizes) -> u64 {
        self.ops.iter().map(|op| op.values_sent(sizes)).sum()
    }
}

/// Sizes for tests and for counting whole vectors: parameters are `d` values, estimates too.
#[derive(Debug, Clone, Copy)]
pub struct Uniform(pub u64);

impl Sizes for Uniform {
    fn parameters(&self) -> u64 {
        self.0
    }
    fn estimate(&self, _node: usize) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Row;

    #[test]
    fn averaging_sends_as_much_as_a_ring_all_reduce() {
        for k in 2..9usize {
            let op = Op::Average { groups: vec![(0..k).collect()] };
            assert_eq!(op.values_sent(&Uniform(1)), 2 * (k as u64 - 1));
        }
        let single = Op::Average { groups: vec![vec![3]] };
        assert!(single.messages().is_empty());
    }

    #[test]
    fn mixing_sends_one_vector_per_off_diagonal_weight() {
        let row = |t: usize, ws: &[(usize, f64)]| Row {
            target: Slot::Node(t),
            weights: ws.iter().map(|&(s, w)| (Slot::Node(s), w)).collect(),
        };
        let op = Op::Mix {
            rows: vec![row(0, &[(0, 0.5), (1, 0.5)]), row(1, &[(0, 0.25), (1, 0.5), (2, 0.25)])],
            quantity: Quantity::Parameters,
        };
        assert_eq!(op.values_sent(&Uniform(10)), 30);
        let radius =
            Op::Mix { rows: vec![row(0, &[(0, 0.5), (1, 0.5)])], quantity: Quantity::Radius };
        assert_eq!(radius.values_sent(&Uniform(10)), 1);
    }
}
