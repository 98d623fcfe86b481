//! The fuzz targets: every parser of outside input, each with generated well-formed seeds, a
//! dictionary, an allocation bound and, where one exists, a property beyond "no panic".

use hdo_core::checkpoint::{Checkpoint, NodeState, RunState, Totals};
use hdo_core::metrics::Record;
use hdo_core::{ExperimentConfig, sweep};
use hdo_datasets::{brackets, cifar10, idx, libsvm, mnist};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// A parser under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// MNIST IDX images + labels (`mnist::from_idx`): a 4-byte little-endian length of the image
    /// file, the image file, then the label file.
    Idx,
    /// Gzip-compressed IDX (`idx::maybe_gunzip`, then `idx::parse`).
    Gzip,
    /// The authors' Brackets JSON lines (`brackets::from_jsonl`, then `tokenize`).
    Brackets,
    /// Experiment TOML plus `--set` overrides (`sweep::expand`): the lines after a line `#--set`
    /// are overrides. Property: every resolved run's `config.toml` parses back to itself.
    Config,
    /// `checkpoint.bin` (`Checkpoint::parse`). Most mutants get a recomputed SHA-256 trailer, so
    /// the parser behind the checksum is reached. Property: what parses writes back the same bytes.
    Checkpoint,
    /// LIBSVM text (`libsvm::parse`, then `classes` and `densify` with the file's own feature
    /// count). Property: a parsed file densifies to one dense row per label.
    Libsvm,
    /// A CIFAR-10 binary batch (`cifar10::parse`). Property: one image of 3,072 finite values per
    /// record, labels below 10.
    Cifar10,
}

/// What one input did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Parsed.
    Accepted,
    /// Refused with an error (its message).
    Refused(String),
    /// Parsed, but a property does not hold (a finding).
    Violated(String),
}

const OVERRIDES: &str = "#--set";

impl Target {
    /// Every target.
    pub const ALL: [Target; 7] = [
        Target::Idx,
        Target::Gzip,
        Target::Brackets,
        Target::Config,
        Target::Checkpoint,
        Target::Libsvm,
        Target::Cifar10,
    ];

    /// Its name on the command line and in the corpus.
    pub fn name(self) -> &'static str {
        match self {
            Target::Idx => "idx",
            Target::Gzip => "gzip",
            Target::Brackets => "brackets",
            Target::Config => "config",
            Target::Checkpoint => "checkpoint",
            Target::Libsvm => "libsvm",
            Target::Cifar10 => "cifar10",
        }
    }

    /// The target called `name`.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Largest single allocation one input may cause: proportional to its length (a parser must
    /// check a declared size against the bytes present before allocating for it). Gzip may
    /// legitimately expand by deflate's limit of 1032:1, with a growing buffer's slack.
    pub fn allocation_bound(self, len: usize) -> usize {
        match self {
            Target::Gzip => 2100 * len + (1 << 20),
            Target::Config => 64 * len + (1 << 20),
            _ => 16 * len + (1 << 20),
        }
    }

    /// Keywords, keys and boundary values the mutator splices in.
    pub fn dictionary(self) -> &'static [&'static [u8]] {
        match self {
            Target::Idx | Target::Gzip => &[
                b"\x00\x00\x08\x03",
                b"\x00\x00\x08\x01",
                b"\x1f\x8b\x08\x00",
                b"\xff\xff\xff\xff",
            ],
            Target::Brackets => &[
                b"{\"input\": \"",
                b"\", \"label\": \"correct\"}",
                b"\"incorrect\"",
                b"()",
                b")(",
                b"\\u0028",
                b"\n",
                b"null",
                b"[]",
                b"1e999",
            ],
            Target::Config => CONFIG_DICTIONARY,
            Target::Checkpoint => &[
                b"[[nodes]]",
                b"tensors = [",
                b"velocity = [",
                b"len = ",
                b"18446744073709551615",
                b"nan",
                b"inf",
                b"[run]",
                b"records = [",
                b"sampler = [",
                b"dropped = [",
            ],
            Target::Cifar10 => &[b"\x09", b"\x0a", b"\xff", b"\x00"],
            Target::Libsvm => &[
                b":",
                b" ",
                b"\n",
                b"+1 ",
                b"-1 ",
                b"# ",
                b"0:",
                b"16777217:",
                b"18446744073709551616:",
                b":nan",
                b":1e39",
                b":-0",
            ],
        }
    }

    /// Well-formed inputs to start from (generated from `seed`).
    pub fn seeds(self, seed: u64) -> Vec<Vec<u8>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        match self {
            Target::Idx => (0..8).map(|_| idx_pair(&mut rng)).collect(),
            Target::Gzip => (0..8)
                .map(|_| {
                    let pair = idx_pair(&mut rng);
                    let images = u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]) as usize;
                    gzip(&pair[4..4 + images])
                })
                .collect(),
            Target::Brackets => (0..6)
                .map(|i| {
                    let cfg = brackets::BracketsConfig {
                        train: 8 + 4 * i,
                        validation: 4,
                        max_len: 2 + 2 * i,
                        hard_fraction: 0.5,
                        seed: rng.random(),
                    };
                    let (train, _) = brackets::generate_split(&cfg, cfg.seed).unwrap_or_default();
                    brackets::to_jsonl(&train).into_bytes()
                })
                .collect(),
            Target::Config => config_seeds(),
            Target::Checkpoint => (0..4).map(|i| checkpoint_seed(&mut rng, i)).collect(),
            Target::Libsvm => (0..6).map(|i| libsvm_seed(&mut rng, i)).collect(),
            Target::Cifar10 => {
                (1..4)
                    .map(|n| {
                        (0..n * cifar10::RECORD)
                            .map(|j| {
                                if j % cifar10::RECORD == 0 { (j % 10) as u8 } else { rng.random() }
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// Make a mutant reach deeper: a checkpoint gets its SHA-256 trailer recomputed (7 times in
    /// 8), otherwise almost every mutant would stop at the checksum.
    pub fn prepare(self, input: &mut [u8], rng: &mut ChaCha8Rng) {
        if self == Target::Checkpoint && input.len() >= 32 && rng.random_ratio(7, 8) {
            let body = input.len() - 32;
            let digest = Sha256::digest(&input[..body]);
            input[body..].copy_from_slice(&digest);
        }
    }

    /// Run the parser on `input`.
    pub fn exec(self, input: &[u8]) -> Verdict {
        let origin = Path::new("fuzz-input");
        let refused = |e: &dyn std::fmt::Display| Verdict::Refused(e.to_string());
        match self {
            Target::Idx => {
                let (images, labels) = split_pair(input);
                match mnist::from_idx(images, origin, labels, origin) {
                    Ok(set)
                        if set.pixels.len() != set.len() * set.shape.iter().product::<usize>() =>
                    {
                        Verdict::Violated("pixels do not match the shape".into())
                    }
                    Ok(_) => Verdict::Accepted,
                    Err(e) => refused(&e),
                }
            }
            Target::Gzip => match idx::maybe_gunzip(input.to_vec(), origin)
                .and_then(|plain| idx::parse(&plain, 3, origin))
            {
                Ok(_) => Verdict::Accepted,
                Err(e) => refused(&e),
            },
            Target::Brackets => {
                let text = String::from_utf8_lossy(input);
                match brackets::from_jsonl(&text, origin) {
                    Ok(examples) => {
                        let len = examples.iter().map(|e| e.brackets.len() + 2).max().unwrap_or(2);
                        if examples.len().saturating_mul(len) <= 1 << 22
                            && let Err(e) = brackets::tokenize(&examples, len)
                        {
                            return Verdict::Violated(format!("tokenize refused parsed data: {e}"));
                        }
                        Verdict::Accepted
                    }
                    Err(e) => refused(&e),
                }
            }
            Target::Config => {
                let text = String::from_utf8_lossy(input);
                let (file, sets) = match text.split_once(OVERRIDES) {
                    Some((f, s)) => (
                        f.to_string(),
                        s.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect(),
                    ),
                    None => (text.to_string(), Vec::new()),
                };
                match sweep::expand(&file, &sets) {
                    Ok(runs) => {
                        for run in runs {
                            let again = ExperimentConfig::from_toml(&run.config.to_toml(), &[]);
                            if again.as_ref().ok() != Some(&run.config) {
                                return Verdict::Violated(format!(
                                    "a resolved config does not parse back to itself: {again:?}"
                                ));
                            }
                        }
                        Verdict::Accepted
                    }
                    Err(e) => refused(&e),
                }
            }
            Target::Libsvm => {
                let text = String::from_utf8_lossy(input);
                let parsed = libsvm::parse(&text, origin)
                    .and_then(|set| libsvm::classes(&[&set]).map(|c| (set, c)));
                match parsed {
                    // a declared width within the allocation bound: densify as a run would
                    Ok((set, classes))
                        if set.rows.len().saturating_mul(set.features()) <= input.len() * 4 =>
                    {
                        match libsvm::densify(&set, set.features().max(1), &classes) {
                            Ok(dense)
                                if dense.len() == set.labels.len()
                                    && dense.pixels.len()
                                        == dense.len() * set.features().max(1) =>
                            {
                                Verdict::Accepted
                            }
                            Ok(_) => Verdict::Violated("dense rows do not match the labels".into()),
                            Err(e) => {
                                Verdict::Violated(format!("densify refused parsed data: {e}"))
                            }
                        }
                    }
                    Ok(_) => Verdict::Accepted,
                    Err(e) => refused(&e),
                }
            }
            Target::Cifar10 => match cifar10::parse(input, origin, cifar10::Normalize::Cifar) {
                Ok(set)
                    if set.len() * cifar10::RECORD == input.len()
                        && set.pixels.len() == set.len() * 3072
                        && set.pixels.iter().all(|p| p.is_finite())
                        && set.labels.iter().all(|&l| l < 10) =>
                {
                    Verdict::Accepted
                }
                Ok(_) => Verdict::Violated("parsed images do not match the records".into()),
                Err(e) => refused(&e),
            },
            Target::Checkpoint => match Checkpoint::parse(input, origin) {
                Ok(c) => match c.to_bytes() {
                    Ok(bytes) if bytes == input => Verdict::Accepted,
                    // TOML may spell one header in several ways: the re-written file must at
                    // least parse to the same checkpoint
                    Ok(bytes) => match Checkpoint::parse(&bytes, origin) {
                        Ok(again) if again == c || has_nan(&c) => Verdict::Accepted,
                        other => {
                            Verdict::Violated(format!("re-written checkpoint differs: {other:?}"))
                        }
                    },
                    Err(e) => {
                        Verdict::Violated(format!("a parsed checkpoint cannot be written: {e}"))
                    }
                },
                Err(e) => refused(&e),
            },
        }
    }
}

/// NaN is not equal to itself: a checkpoint holding one cannot be compared with `==`.
fn has_nan(c: &Checkpoint) -> bool {
    c.nodes.iter().any(|n| {
        n.tensors
            .iter()
            .chain(n.velocity.iter().flatten())
            .chain(&n.iterate)
            .flatten()
            .any(|x| x.is_nan())
            || [n.dog.0, n.dog.1, n.dog.2].iter().any(|x| x.is_nan())
    }) || c.aux.iter().flatten().flatten().any(|x| x.is_nan())
        || format!("{:?}", c.run).contains("NaN")
        || format!("{:?}", c.queue).contains("NaN")
}

/// Split an idx input into its image and label files.
fn split_pair(input: &[u8]) -> (&[u8], &[u8]) {
    if input.len() < 4 {
        return (input, &[]);
    }
    let n = u32::from_le_bytes([input[0], input[1], input[2], input[3]]) as usize;
    let rest = &input[4..];
    rest.split_at(n.min(rest.len()))
}

/// An IDX header for `dims`.
fn idx_header(dims: &[usize]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for &d in dims {
        out.extend((d as u32).to_be_bytes());
    }
    out
}

/// A small well-formed image file and label file, as one idx input.
fn idx_pair(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let (n, h, w) = (rng.random_range(1..6), rng.random_range(1..6), rng.random_range(1..6));
    let mut images = idx_header(&[n, h, w]);
    images.extend((0..n * h * w).map(|_| rng.random::<u8>()));
    let mut labels = idx_header(&[n]);
    labels.extend((0..n).map(|_| rng.random_range(0..10u8)));
    let mut out = (images.len() as u32).to_le_bytes().to_vec();
    out.extend(images);
    out.extend(labels);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // writing to a Vec cannot fail
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

const CONFIG_DICTIONARY: &[&[u8]] = &[
    b"steps",
    b"seed",
    b"seeds",
    b"eval_every",
    b"checkpoint_every",
    b"local_rounds",
    b"max_loss",
    b"on_divergence",
    b"\"drop\"",
    b"\"reset\"",
    b"[population]",
    b"fo",
    b"zo",
    b"[fo]",
    b"[zo]",
    b"lr",
    b"batch_size",
    b"momentum",
    b"momentum_style",
    b"estimator",
    b"rv",
    b"nu",
    b"direction",
    b"projection",
    b"debias_ratio",
    b"sign",
    b"schedule",
    b"warmup",
    b"stack",
    b"batch_nodes",
    b"\"debiased\"",
    b"\"forward_gradient\"",
    b"\"warmup_cosine\"",
    b"[protocol]",
    b"kind",
    b"\"random_pair\"",
    b"interactions_per_round",
    b"[model]",
    b"\"cnn\"",
    b"\"mlp\"",
    b"\"transformer\"",
    b"channels",
    b"hidden",
    b"width",
    b"heads",
    b"depth",
    b"mlp",
    b"dropout",
    b"pooling",
    b"pad_token",
    b"[data]",
    b"dataset",
    b"\"brackets\"",
    b"dir",
    b"download",
    b"validation",
    b"eval_limit",
    b"eval_batch",
    b"[data.brackets]",
    b"max_len",
    b"hard_fraction",
    b"train_file",
    b"seq_len",
    b"pad_to",
    b"device",
    b"\"wgpu\"",
    b"[diagnostics]",
    b"every",
    b"[metrics]",
    b"per_node",
    b"[[variant]]",
    b"label",
    b"set",
    b"#--set\n",
    b"zo.rv=",
    b"model.channels=[0,0,0]",
    b"fo.stack=2",
    b"=",
    b"0",
    b"-1",
    b"1e309",
    b"nan",
    b"inf",
    b"-0.0",
    b"4294967296",
    b"18446744073709551615",
    b"9223372036854775807",
    b"[0, 0, 0]",
    b"[]",
    b"true",
    b"\"\"",
    b"1.5",
    b"'''",
    b"\\u0000",
];

/// The repo's experiment files, and small configs with overrides.
fn config_seeds() -> Vec<Vec<u8>> {
    let files = [
        include_str!("../../../experiments/quickstart.toml"),
        include_str!("../../../experiments/fig1_cnn.toml"),
        include_str!("../../../experiments/fig1_cnn_estimators.toml"),
        include_str!("../../../experiments/fig2_logistic.toml"),
        include_str!("../../../experiments/fig4_brackets.toml"),
    ];
    let mut out: Vec<Vec<u8>> = files.iter().map(|f| f.as_bytes().to_vec()).collect();
    out.push(
        b"steps = 4\n[population]\nfo = 1\nzo = 2\n[zo]\nrv = 3\n#--set\nzo.lr=0.5\nmodel.kind=\"mlp\"\n"
            .to_vec(),
    );
    out.push(
        b"on_divergence = \"reset\"\n[metrics]\nper_node = true\n#--set\nseeds=[1,2]\n".to_vec(),
    );
    out
}

/// A small LIBSVM file: `4 + i` rows of sparse features, binary (even `i`) or multiclass labels.
fn libsvm_seed(rng: &mut ChaCha8Rng, i: usize) -> Vec<u8> {
    let mut text = String::from("# generated\n");
    for r in 0..4 + i {
        let label = if i.is_multiple_of(2) {
            ["-1", "+1"][r % 2].to_string()
        } else {
            (r % 3 + 1).to_string()
        };
        text.push_str(&label);
        let mut index = 0;
        for _ in 0..rng.random_range(0..5) {
            index += rng.random_range(1..4);
            text.push_str(&format!(" {index}:{:.3}", rng.random::<f32>() * 2.0 - 1.0));
        }
        text.push('\n');
    }
    text.into_bytes()
}

/// A small checkpoint: `i + 1` nodes with a few tensors and records.
fn checkpoint_seed(rng: &mut ChaCha8Rng, i: usize) -> Vec<u8> {
    let node = |rng: &mut ChaCha8Rng| NodeState {
        steps: rng.random_range(0..100),
        sampler: (rng.random_range(0..3), rng.random_range(0..50)),
        tensors: (0..3).map(|k| (0..k + 1).map(|_| rng.random::<f32>()).collect()).collect(),
        velocity: vec![None, Some(vec![rng.random()]), None],
        dog: (rng.random(), rng.random(), 0.5),
        iterate: if i == 2 { vec![vec![rng.random()], vec![0.0; 2], vec![1.0; 3]] } else { vec![] },
    };
    let c = Checkpoint {
        config: "steps = 4\n".into(),
        run: RunState {
            round: 2,
            totals: Totals { forward: 10, bytes: 64, ..Totals::default() },
            loss: (1.5, 3),
            elapsed_s: 0.25,
            records: (0..i as u64)
                .map(|r| Record { round: r, mean_val_acc: 0.5, ..Record::default() })
                .collect(),
            dropped: if i == 3 { vec![1] } else { Vec::new() },
            losses: (0..=i).map(|k| (0..k).map(|j| j as f32 + 0.5).collect()).collect(),
        },
        nodes: (0..=i).map(|_| node(rng)).collect(),
        aux: if i == 1 { vec![vec![vec![1.0], vec![2.0, 3.0]]] } else { vec![] },
        queue: if i == 2 {
            vec![hdo_core::checkpoint::QueuedState {
                due: 5,
                from: 0,
                aux: Some(0),
                node: 0,
                estimate: hdo_core::checkpoint::EstimateState::Dense(vec![vec![0.5, 1.5]]),
            }]
        } else {
            vec![]
        },
    };
    c.to_bytes().unwrap_or_default()
}
