//! Checkpoints: the whole state of a run after a round, so that an interrupted run resumes where
//! it stopped and ends exactly as it would have without the interruption.
//!
//! A run's state is small once its randomness is accounted for: directions, minibatch orders and
//! gossip pairs are pure functions of the seed and counters, so besides every node's tensors
//! (parameters and BatchNorm running statistics) and momentum buffers, a checkpoint holds only
//! counters — each node's step and sampler position, the run's round, traffic and loss sums — and
//! the metrics records so far.
//!
//! `OUT/checkpoint.bin`, written atomically (temporary file, then rename): the magic `HDOCKPT1`,
//! the length of a TOML header (u64, little-endian), the header, every node's float tensors then
//! momentum buffers as little-endian f32 in layout order, and the SHA-256 of everything before it,
//! so that a truncated or damaged file is refused instead of resumed from.

use crate::error::Error;
use crate::metrics::{Record, write_atomic_with};
use crate::node::Node;
use crate::params::{self, Layout};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// The checkpoint's file name in a run's output directory.
pub const FILE: &str = "checkpoint.bin";
const MAGIC: &[u8; 8] = b"HDOCKPT1";
const DIGEST: usize = 32;

/// Where a run stands after a round: everything but the nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Rounds completed.
    pub round: u64,
    /// Forward and backward passes, bytes sent and interactions so far.
    pub totals: Totals,
    /// Sum and count of training losses since the last evaluation.
    pub loss: (f64, u64),
    /// Wall-clock seconds spent before this point (the `elapsed_s` of later records continues it).
    pub elapsed_s: f64,
    /// The metrics records so far.
    pub records: Vec<Record>,
    /// Nodes that left the population (`on_divergence = "drop"`), in the order they left.
    #[serde(default)]
    pub dropped: Vec<usize>,
    /// Each node's most recent training losses, oldest first (what protocols may look at).
    #[serde(default)]
    pub losses: Vec<Vec<f32>>,
}

/// Running counters of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Forward passes.
    pub forward: u64,
    /// Backward passes.
    pub backward: u64,
    /// Bytes sent by gossip.
    pub bytes: u64,
    /// Pairwise interactions (the parallel-time clock).
    pub interactions: f64,
    /// Seconds spent in training rounds (evaluation excluded).
    pub train_s: f64,
    /// Diagnostics since the last record: (Σ cosine, Σ norm ratio, count).
    pub diag: (f64, f64, u64),
    /// Nodes restarted from their peers' mean (`on_divergence = "reset"`).
    #[serde(default)]
    pub resets: u64,
}

/// One node's state.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    /// Local steps taken.
    pub steps: u64,
    /// Its sampler's `(epoch, position)`.
    pub sampler: (u64, usize),
    /// Every float tensor, flat, in layout order.
    pub tensors: Vec<Vec<f32>>,
    /// Momentum buffers, one per trainable tensor (empty before the first step).
    pub velocity: Vec<Option<Vec<f32>>>,
    /// D-POEM: radius proxy, squared-gradient sum, iterate weight.
    pub dog: (f64, f64, f64),
    /// D-POEM: the radius-weighted sum of iterates, every float tensor (empty if none).
    pub iterate: Vec<Vec<f32>>,
}

/// A run's whole state.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The resolved config (as in `OUT/config.toml`) that the run was started with.
    pub config: String,
    /// Counters and records.
    pub run: RunState,
    /// The nodes, in population order.
    pub nodes: Vec<NodeState>,
    /// The protocol's auxiliary vectors, every float tensor flat.
    pub aux: Vec<Vec<Vec<f32>>>,
    /// Estimates pushed to a server and not applied yet, in queue order.
    pub queue: Vec<QueuedState>,
}

/// A queued estimate (`Op::Push`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedState {
    /// The round it is applied in.
    pub due: u64,
    /// Who sent it.
    pub from: usize,
    /// The server: `Some(k)` for auxiliary vector k, `None` for node `node`.
    pub aux: Option<usize>,
    /// The server node when `aux` is `None`.
    pub node: usize,
    /// The estimate.
    pub estimate: EstimateState,
}

/// An estimate on the host.
#[derive(Debug, Clone, PartialEq)]
pub enum EstimateState {
    /// One flat tensor per trainable tensor.
    Dense(Vec<Vec<f32>>),
    /// Coefficients of directions regenerated from a noise stream's key and step.
    Seeded {
        /// The stream's key.
        key: [u32; 2],
        /// The stream's step.
        step: u32,
        /// Directions.
        directions: u32,
        /// Coefficient blocks per direction.
        blocks: usize,
        /// `directions × blocks` coefficients.
        coefficients: Vec<f32>,
    },
}

/// The header: the state without the tensors, whose lengths it records instead. TOML rather than
/// JSON because its floats read back bit for bit (the records' metrics must, for a resumed run to
/// equal an uninterrupted one) and it spells NaN.
#[derive(Serialize, Deserialize)]
struct Header {
    config: String,
    run: RunState,
    nodes: Vec<NodeHeader>,
    #[serde(default)]
    aux: Vec<Vec<usize>>,
    #[serde(default)]
    queue: Vec<QueuedHeader>,
}

#[derive(Serialize, Deserialize)]
struct QueuedHeader {
    due: u64,
    from: usize,
    #[serde(default)]
    aux: Option<usize>,
    #[serde(default)]
    node: usize,
    /// Dense: the tensors' lengths.
    #[serde(default)]
    dense: Vec<usize>,
    #[serde(default)]
    seeded: Option<SeededHeader>,
}

#[derive(Serialize, Deserialize)]
struct SeededHeader {
    key: [u32; 2],
    step: u32,
    directions: u32,
    blocks: usize,
    coefficients: usize,
}

#[derive(Serialize, Deserialize)]
struct NodeHeader {
    steps: u64,
    sampler: (u64, usize),
    tensors: Vec<usize>,
    velocity: Vec<Buffer>,
    #[serde(default)]
    dog: (f64, f64, f64),
    #[serde(default)]
    iterate: Vec<usize>,
}

/// A momentum buffer's length; absent before the tensor's first step (TOML has no null).
#[derive(Serialize, Deserialize)]
struct Buffer {
    len: Option<usize>,
}

impl NodeState {
    /// Copy `node`'s state to the host.
    pub fn capture(node: &Node, layout: &Layout) -> Result<NodeState, String> {
        let host = |t: burn::prelude::Tensor<1>| params::download(t).map_err(|e| e.to_string());
        let state = NodeState {
            steps: node.steps,
            sampler: node.sampler.position(),
            tensors: params::collect(&node.model)
                .into_iter()
                .map(host)
                .collect::<Result<_, _>>()?,
            velocity: node
                .optimizer
                .velocity()
                .iter()
                .map(|v| v.clone().map(host).transpose())
                .collect::<Result<_, _>>()?,
            dog: (node.dog.radius, node.dog.sum_sq, node.dog.weight),
            iterate: node.dog.iterate_sum.iter().cloned().map(host).collect::<Result<_, _>>()?,
        };
        // a tensor that failed to download would otherwise only be noticed when resuming
        state.check(node, layout).map_err(|e| format!("cannot save {e}"))?;
        Ok(state)
    }

    /// Whether this state fits `node` (built from the same config) and its `layout`.
    pub fn check(&self, node: &Node, layout: &Layout) -> Result<(), String> {
        let id = node.id;
        if self.tensors.len() != layout.tensors.len() {
            return Err(format!(
                "node {id} has {} tensors, the model has {}",
                self.tensors.len(),
                layout.tensors.len()
            ));
        }
        for (values, info) in self.tensors.iter().zip(&layout.tensors) {
            if values.len() != info.numel {
                return Err(format!(
                    "node {id}: tensor `{}` has {} values, the model wants {}",
                    info.path,
                    values.len(),
                    info.numel
                ));
            }
        }
        let trainable: Vec<usize> = layout.trainable().map(|t| t.numel).collect();
        if !self.velocity.is_empty() && self.velocity.len() != trainable.len() {
            return Err(format!(
                "node {id} has {} momentum buffers, the model has {} trainable tensors",
                self.velocity.len(),
                trainable.len()
            ));
        }
        if let Some((l, v)) = self
            .velocity
            .iter()
            .enumerate()
            .find(|(l, v)| v.as_ref().is_some_and(|v| v.len() != trainable[*l]))
        {
            return Err(format!(
                "node {id}: momentum buffer {l} has {} values, its tensor {}",
                v.as_ref().map_or(0, Vec::len),
                trainable[l]
            ));
        }
        if !self.iterate.is_empty()
            && (self.iterate.len() != layout.tensors.len()
                || self.iterate.iter().zip(&layout.tensors).any(|(v, t)| v.len() != t.numel))
        {
            return Err(format!("node {id}: its averaged iterate does not fit the model"));
        }
        if self.sampler.1 > node.sampler.len() {
            return Err(format!(
                "node {id}: sampler position {} is past the end of its shard of {} examples",
                self.sampler.1,
                node.sampler.len()
            ));
        }
        Ok(())
    }

    /// Put this state into `node`; [`NodeState::check`] it first.
    pub fn restore(self, node: &mut Node) -> Result<(), String> {
        let id = node.id;
        node.sampler.seek(self.sampler).map_err(|e| format!("node {id}: {e}"))?;
        // momentum buffers live where the optimizer computes: the plain device of the parameters
        let device = params::collect(&node.model).first().map(|t| t.device());
        let mut tensors = self.tensors.into_iter();
        node.model = params::map(node.model.clone(), |_, current| {
            params::upload(tensors.next().unwrap_or_default(), &current.device())
        });
        // past an order switch the momentum belongs to the second phase's optimizer
        node.steps = self.steps;
        node.enter_phase();
        if let Some(device) = device {
            let velocity =
                self.velocity.into_iter().map(|v| v.map(|v| params::upload(v, &device))).collect();
            node.optimizer.set_velocity(velocity);
            node.dog.iterate_sum =
                self.iterate.into_iter().map(|v| params::upload(v, &device)).collect();
        }
        (node.dog.radius, node.dog.sum_sq, node.dog.weight) = self.dog;
        node.steps = self.steps;
        Ok(())
    }
}

impl Checkpoint {
    /// Write to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let text = self.header(path)?;
        write_atomic_with(path, |w| self.stream(&text, w))
    }

    /// The file's bytes, as [`Checkpoint::write`] would write them.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let path = Path::new(FILE);
        let text = self.header(path)?;
        let mut out = Vec::new();
        self.stream(&text, &mut out).map_err(|e| Error::io(path, e))?;
        Ok(out)
    }

    /// Stream magic, header, tensors and digest to `w`.
    fn stream(&self, text: &str, w: &mut dyn Write) -> std::io::Result<()> {
        let mut w = Hashing { inner: w, hash: Sha256::new() };
        w.write_all(MAGIC)?;
        w.write_all(&(text.len() as u64).to_le_bytes())?;
        w.write_all(text.as_bytes())?;
        let mut buf = Vec::new();
        for n in &self.nodes {
            for v in n.tensors.iter().chain(n.velocity.iter().flatten()).chain(&n.iterate) {
                buf.clear();
                buf.extend(v.iter().flat_map(|x| x.to_le_bytes()));
                w.write_all(&buf)?;
            }
        }
        let queued = self.queue.iter().flat_map(|q| match &q.estimate {
            EstimateState::Dense(ts) => ts.iter().collect::<Vec<_>>(),
            EstimateState::Seeded { coefficients, .. } => vec![coefficients],
        });
        for v in self.aux.iter().flatten().chain(queued) {
            buf.clear();
            buf.extend(v.iter().flat_map(|x| x.to_le_bytes()));
            w.write_all(&buf)?;
        }
        let digest = w.hash.finalize();
        w.inner.write_all(&digest)
    }

    /// The TOML header.
    fn header(&self, path: &Path) -> Result<String, Error> {
        let header = Header {
            config: self.config.clone(),
            run: self.run.clone(),
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeHeader {
                    steps: n.steps,
                    sampler: n.sampler,
                    tensors: n.tensors.iter().map(Vec::len).collect(),
                    velocity: n
                        .velocity
                        .iter()
                        .map(|v| Buffer { len: v.as_ref().map(Vec::len) })
                        .collect(),
                    dog: n.dog,
                    iterate: n.iterate.iter().map(Vec::len).collect(),
                })
                .collect(),
            aux: self.aux.iter().map(|a| a.iter().map(Vec::len).collect()).collect(),
            queue: self
                .queue
                .iter()
                .map(|q| {
                    let (dense, seeded) = match &q.estimate {
                        EstimateState::Dense(ts) => (ts.iter().map(Vec::len).collect(), None),
                        EstimateState::Seeded { key, step, directions, blocks, coefficients } => (
                            Vec::new(),
                            Some(SeededHeader {
                                key: *key,
                                step: *step,
                                directions: *directions,
                                blocks: *blocks,
                                coefficients: coefficients.len(),
                            }),
                        ),
                    };
                    QueuedHeader {
                        due: q.due,
                        from: q.from,
                        aux: q.aux,
                        node: q.node,
                        dense,
                        seeded,
                    }
                })
                .collect(),
        };
        let text = toml::to_string(&header).map_err(|e| corrupt(path, e.to_string()))?;
        Ok(text)
    }

    /// Read and check a checkpoint written by [`Checkpoint::write`].
    pub fn read(path: &Path) -> Result<Checkpoint, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Checkpoint::parse(&bytes, path)
    }

    /// Parse and check the bytes of a checkpoint file (`path` names it in errors). Every length
    /// the header declares is checked against the bytes that are there before anything is
    /// allocated for it.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Checkpoint, Error> {
        if bytes.len() < MAGIC.len() + 8 + DIGEST || &bytes[..MAGIC.len()] != MAGIC {
            return Err(corrupt(path, "not an hdo checkpoint (bad magic or too short)".into()));
        }
        let (body, digest) = bytes.split_at(bytes.len() - DIGEST);
        if Sha256::digest(body).as_slice() != digest {
            return Err(corrupt(
                path,
                "checksum mismatch: the file is truncated or damaged".into(),
            ));
        }
        let mut at = MAGIC.len();
        let len = u64::from_le_bytes(body[at..at + 8].try_into().unwrap_or_default()) as usize;
        at += 8;
        let text = body
            .get(at..at.saturating_add(len))
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| corrupt(path, format!("header of {len} bytes is unreadable")))?;
        let header: Header =
            toml::from_str(text).map_err(|e| corrupt(path, format!("unreadable header: {e}")))?;
        at += len;
        let mut floats = |n: usize| -> Result<Vec<f32>, Error> {
            let raw = body
                .get(at..at.saturating_add(n.saturating_mul(4)))
                .ok_or_else(|| corrupt(path, "tensor data runs past the end".into()))?;
            at += raw.len();
            Ok(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        };
        let mut nodes = Vec::with_capacity(header.nodes.len());
        for n in header.nodes {
            let tensors = n.tensors.iter().map(|&k| floats(k)).collect::<Result<_, _>>()?;
            let velocity = n
                .velocity
                .iter()
                .map(|b| b.len.map(&mut floats).transpose())
                .collect::<Result<_, _>>()?;
            let iterate = n.iterate.iter().map(|&k| floats(k)).collect::<Result<_, _>>()?;
            nodes.push(NodeState {
                steps: n.steps,
                sampler: n.sampler,
                tensors,
                velocity,
                dog: n.dog,
                iterate,
            });
        }
        let aux = header
            .aux
            .iter()
            .map(|a| a.iter().map(|&k| floats(k)).collect::<Result<Vec<_>, _>>())
            .collect::<Result<_, _>>()?;
        let mut queue = Vec::with_capacity(header.queue.len().min(body.len()));
        for q in header.queue {
            let estimate = match q.seeded {
                Some(s) => EstimateState::Seeded {
                    key: s.key,
                    step: s.step,
                    directions: s.directions,
                    blocks: s.blocks,
                    coefficients: floats(s.coefficients)?,
                },
                None => EstimateState::Dense(
                    q.dense.iter().map(|&k| floats(k)).collect::<Result<_, _>>()?,
                ),
            };
            queue.push(QueuedState {
                due: q.due,
                from: q.from,
                aux: q.aux,
                node: q.node,
                estimate,
            });
        }
        if at != body.len() {
            return Err(corrupt(
                path,
                format!("{} unexpected bytes after the data", body.len() - at),
            ));
        }
        Ok(Checkpoint { config: header.config, run: header.run, nodes, aux, queue })
    }
}

/// Forwards writes and hashes them.
struct Hashing<'a> {
    inner: &'a mut dyn Write,
    hash: Sha256,
}

impl Write for Hashing<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.hash.update(&bytes[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn corrupt(path: &Path, problem: String) -> Error {
    Error::Checkpoint { path: path.to_path_buf(), problem }
}

/// The first line where two configs (TOML) differ, as `(here, there)`, each prefixed by its
/// `[section]` so that `lr = 0.02` says whose learning rate it is.
pub fn first_difference(here: &str, there: &str) -> Option<(String, String)> {
    let (mut a, mut b) = (here.lines(), there.lines());
    let mut section = String::new();
    loop {
        match (a.next(), b.next()) {
            (None, None) => return None,
            (Some(x), Some(y)) if x == y => {
                if x.starts_with('[') {
                    section = format!("{x} ");
                }
            }
            (x, y) => {
                let show = |l: Option<&str>| match l {
                    Some(l) if l.starts_with('[') => l.to_string(),
                    Some(l) => format!("{section}{l}"),
                    None => "(end of file)".to_string(),
                };
                return Some((show(x), show(y)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            config: "seed = 1\nsteps = 4\n".into(),
            run: RunState {
                round: 2,
                loss: (0.1 + 0.2, 3),
                elapsed_s: 0.5,
                records: vec![Record { mean_val_acc: 0.10333333333333332, ..Record::default() }],
                ..RunState::default()
            },
            nodes: vec![
                NodeState {
                    steps: 2,
                    sampler: (0, 32),
                    tensors: vec![vec![1.0, -2.5], vec![f32::MIN_POSITIVE]],
                    velocity: vec![None, Some(vec![0.25])],
                    dog: (0.5, 2.0, 1.5),
                    iterate: vec![vec![0.75, 1.0], vec![3.0]],
                },
                NodeState {
                    steps: 1,
                    sampler: (3, 0),
                    tensors: vec![vec![], vec![7.0]],
                    velocity: vec![],
                    dog: (0.0, 0.0, 0.0),
                    iterate: vec![],
                },
            ],
            aux: vec![vec![vec![9.0, 8.0], vec![]]],
            queue: vec![
                QueuedState {
                    due: 3,
                    from: 1,
                    aux: Some(0),
                    node: 0,
                    estimate: EstimateState::Dense(vec![vec![0.5], vec![]]),
                },
                QueuedState {
                    due: 4,
                    from: 0,
                    aux: None,
                    node: 1,
                    estimate: EstimateState::Seeded {
                        key: [7, 9],
                        step: 2,
                        directions: 2,
                        blocks: 1,
                        coefficients: vec![0.25, -1.0],
                    },
                },
            ],
        }
    }

    #[test]
    fn a_checkpoint_reads_back_exactly_and_damage_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(FILE);
        let c = sample();
        c.write(&path).expect("write");
        assert_eq!(Checkpoint::read(&path).expect("read"), c);
        let bytes = std::fs::read(&path).expect("bytes");
        std::fs::write(&path, &bytes[..bytes.len() - 5]).expect("truncate");
        let e = Checkpoint::read(&path).expect_err("truncated").to_string();
        assert!(e.contains("checksum") && e.contains(FILE), "{e}");
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        std::fs::write(&path, &flipped).expect("flip");
        assert!(Checkpoint::read(&path).is_err());
        std::fs::write(&path, b"{}").expect("junk");
        assert!(Checkpoint::read(&path).expect_err("junk").to_string().contains("magic"));
    }

    #[test]
    fn config_differences_are_named() {
        assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
        assert_eq!(
            first_difference("a\nsteps = 4\n", "a\nsteps = 5\n"),
            Some(("steps = 4".into(), "steps = 5".into()))
        );
        assert_eq!(
            first_difference("[fo]\nlr = 1\n[zo]\nlr = 2\n", "[fo]\nlr = 1\n[zo]\nlr = 3\n"),
            Some(("[zo] lr = 2".into(), "[zo] lr = 3".into()))
        );
        assert_eq!(first_difference("a\n", "a\nb\n"), Some(("(end of file)".into(), "b".into())));
    }
}
