//! Brackets: is a string over `(` and `)` correctly bracketed (a Dyck-1 word)? The HDO paper's
//! non-convex task (its Figure 4), with a generator the authors never published, made explicit.
//!
//! * Lengths: every even length from 2 to `max_len`, the same number of examples per length,
//!   half positive and half negative (HDO: 25,600 training and 2,560 validation strings, lengths
//!   2…256, i.e. 100 and 10 per class and length).
//! * Positives: **uniform** over all Dyck words of the length (a uniformly random arrangement of
//!   `n` opening and `n + 1` closing brackets, rotated by the cycle lemma so that it returns to
//!   depth 0 only at the end, minus its last bracket). Their maximum depth grows like `√n`
//!   (≈ 19 on average at length 256) — deeper than the authors' validation file (≈ 9–10).
//! * Negatives, mixed by `hard_fraction`: *random* strings (uniform over all strings of the
//!   length that are not Dyck words — mostly unbalanced counts, as the authors' file) and *hard*
//!   strings (equal numbers of each bracket, uniformly arranged, but some prefix closes more than
//!   it opened): a classifier that only counts brackets gets every hard negative wrong.
//! * Files: the authors' JSON lines `{"input": "( ( ) )", "label": "correct"}`, read and written.
//! * Tokens: `<start>=0, <stop>=1, <pad>=2, <unk>=3, (=4, )=5`; `[<start>] + string + [<stop>]`,
//!   padded to a fixed length (default `2·256 + 2 = 514`) or to a batch's longest sequence.
//!   Labels: correct = 0, incorrect = 1.

use crate::DataError;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Token ids.
pub mod token {
    /// Sequence start.
    pub const START: u32 = 0;
    /// Sequence end.
    pub const STOP: u32 = 1;
    /// Padding.
    pub const PAD: u32 = 2;
    /// Unknown symbol.
    pub const UNK: u32 = 3;
    /// `(`.
    pub const OPEN: u32 = 4;
    /// `)`.
    pub const CLOSE: u32 = 5;
    /// Vocabulary size.
    pub const VOCAB: usize = 6;
}

/// One labelled string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// `true` = `(`, `false` = `)`.
    pub brackets: Vec<bool>,
    /// Correctly bracketed?
    pub correct: bool,
}

impl Example {
    /// A hard negative: as many `(` as `)`, yet not correctly bracketed — invisible to counting.
    pub fn is_hard_negative(&self) -> bool {
        !self.correct && self.brackets.iter().filter(|&&b| b).count() * 2 == self.brackets.len()
    }
}

/// Generator settings (the `[data]` keys of a Brackets experiment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BracketsConfig {
    /// Training examples (rounded to a multiple of `max_len`).
    pub train: usize,
    /// Validation examples (rounded likewise).
    pub validation: usize,
    /// Longest string (even).
    pub max_len: usize,
    /// Fraction of negatives that are hard (balanced) negatives.
    pub hard_fraction: f64,
    /// Generator seed (the data set stays fixed while the run seed varies).
    pub seed: u64,
}

impl Default for BracketsConfig {
    fn default() -> Self {
        BracketsConfig {
            train: 25_600,
            validation: 2_560,
            max_len: 256,
            hard_fraction: 0.5,
            seed: 0,
        }
    }
}

/// Whether `b` is a Dyck word: never below depth 0, ending at 0.
pub fn is_dyck(b: &[bool]) -> bool {
    let mut depth = 0i64;
    for &open in b {
        depth += if open { 1 } else { -1 };
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

/// Greatest depth reached.
pub fn max_depth(b: &[bool]) -> usize {
    let (mut d, mut m) = (0i64, 0i64);
    for &open in b {
        d += if open { 1 } else { -1 };
        m = m.max(d);
    }
    m as usize
}

/// A uniformly random Dyck word with `n` pairs (cycle lemma).
pub fn uniform_dyck(n: usize, rng: &mut impl Rng) -> Vec<bool> {
    // n opens and n+1 closes in random order; exactly one rotation has every proper prefix
    // above the final level: the one starting right after the first minimum of the walk.
    let mut seq: Vec<bool> =
        std::iter::repeat_n(true, n).chain(std::iter::repeat_n(false, n + 1)).collect();
    seq.shuffle(rng);
    let (mut depth, mut min, mut at) = (0i64, i64::MAX, 0usize);
    for (i, &open) in seq.iter().enumerate() {
        depth += if open { 1 } else { -1 };
        if depth < min {
            min = depth;
            at = i + 1;
        }
    }
    let len = seq.len();
    seq.rotate_left(at % len);
    seq.pop(); // the rotated word ends with its one extra `)`
    seq
}

fn random_negative(len: usize, rng: &mut impl Rng) -> Vec<bool> {
    loop {
        let s: Vec<bool> = (0..len).map(|_| rng.random_bool(0.5)).collect();
        if !is_dyck(&s) {
            return s;
        }
    }
}

fn hard_negative(len: usize, rng: &mut impl Rng) -> Vec<bool> {
    let n = len / 2;
    loop {
        let mut s: Vec<bool> =
            std::iter::repeat_n(true, n).chain(std::iter::repeat_n(false, n)).collect();
        s.shuffle(rng);
        if !is_dyck(&s) {
            return s;
        }
    }
}

/// `count` examples for each even length `2..=max_len` (half positive), in length order,
/// alternating positive and negative; negatives are hard with probability `hard_fraction`.
fn generate(
    per_length: usize,
    max_len: usize,
    hard_fraction: f64,
    rng: &mut ChaCha8Rng,
) -> Vec<Example> {
    let mut out = Vec::new();
    for len in (2..=max_len).step_by(2) {
        for _ in 0..per_length / 2 {
            out.push(Example { brackets: uniform_dyck(len / 2, rng), correct: true });
            let hard = rng.random_bool(hard_fraction);
            let brackets = if hard { hard_negative(len, rng) } else { random_negative(len, rng) };
            out.push(Example { brackets, correct: false });
        }
    }
    out
}

/// Training and validation sets, a pure function of the config and `seed`.
pub fn generate_split(
    config: &BracketsConfig,
    seed: u64,
) -> Result<(Vec<Example>, Vec<Example>), DataError> {
    if config.max_len < 2 || !config.max_len.is_multiple_of(2) {
        return Err(DataError::Inconsistent(format!(
            "max_len must be an even number ≥ 2, got {}",
            config.max_len
        )));
    }
    if !(0.0..=1.0).contains(&config.hard_fraction) {
        return Err(DataError::Inconsistent(format!(
            "hard_fraction must be in [0, 1], got {}",
            config.hard_fraction
        )));
    }
    let lengths = config.max_len / 2;
    let per = |total: usize| (total / lengths).max(2) / 2 * 2;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xB4AC_4E75);
    let train = generate(per(config.train), config.max_len, config.hard_fraction, &mut rng);
    let validation =
        generate(per(config.validation), config.max_len, config.hard_fraction, &mut rng);
    Ok((train, validation))
}

#[derive(Serialize, Deserialize)]
struct Line {
    input: String,
    label: String,
}

/// The authors' JSON-lines text for `examples`.
pub fn to_jsonl(examples: &[Example]) -> String {
    let mut out = String::new();
    for e in examples {
        let input =
            e.brackets.iter().map(|&b| if b { "(" } else { ")" }).collect::<Vec<_>>().join(" ");
        let label = if e.correct { "correct" } else { "incorrect" }.to_string();
        out.push_str(&serde_json::to_string(&Line { input, label }).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Parse the authors' JSON lines; errors name the line. A label that disagrees with the string
/// is an error too (the file would teach the wrong answer).
pub fn from_jsonl(text: &str, origin: &Path) -> Result<Vec<Example>, DataError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let at = |problem: String| DataError::format(origin, format!("line {}: {problem}", i + 1));
        let line: Line = serde_json::from_str(raw)
            .map_err(|e| at(format!("not a {{\"input\", \"label\"}} object: {e}")))?;
        let mut brackets = Vec::new();
        for c in line.input.chars().filter(|c| !c.is_whitespace()) {
            match c {
                '(' => brackets.push(true),
                ')' => brackets.push(false),
                other => return Err(at(format!("unexpected character {other:?} in input"))),
            }
        }
        let correct = match line.label.as_str() {
            "correct" => true,
            "incorrect" => false,
            other => {
                return Err(at(format!(
                    "label {other:?} is neither \"correct\" nor \"incorrect\""
                )));
            }
        };
        if correct != is_dyck(&brackets) {
            return Err(at(format!("label \"{}\" contradicts the string", line.label)));
        }
        out.push(Example { brackets, correct });
    }
    Ok(out)
}

/// Read a JSON-lines file.
pub fn read_jsonl(path: &Path) -> Result<Vec<Example>, DataError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| DataError::Io { path: path.into(), source })?;
    from_jsonl(&text, path)
}

/// Tokenised examples: `len` ids per example, labels (correct = 0, incorrect = 1) and which
/// examples are hard negatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSet {
    /// `n × len` token ids.
    pub tokens: Vec<u32>,
    /// Tokens per example.
    pub len: usize,
    /// Class per example.
    pub labels: Vec<u8>,
    /// Hard negative per example.
    pub hard: Vec<bool>,
    /// Vocabulary size.
    pub vocab: usize,
    /// Real tokens per example (string + start + stop), the rest is padding.
    pub lengths: Vec<usize>,
    /// Batches are cut to their longest example instead of `len` (for models whose output does
    /// not depend on trailing padding).
    pub pad_to_batch: bool,
}

impl TokenSet {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Tokenise `examples`, padding each to `len` tokens (at least the longest string + 2).
pub fn tokenize(examples: &[Example], len: usize) -> Result<TokenSet, DataError> {
    let longest = examples.iter().map(|e| e.brackets.len() + 2).max().unwrap_or(2);
    if len < longest {
        return Err(DataError::Inconsistent(format!(
            "sequence length {len} is shorter than the longest example ({longest} tokens)"
        )));
    }
    let mut tokens = Vec::with_capacity(examples.len() * len);
    for e in examples {
        tokens.extend(encode(&e.brackets, len));
    }
    Ok(TokenSet {
        tokens,
        len,
        labels: examples.iter().map(|e| u8::from(!e.correct)).collect(),
        hard: examples.iter().map(Example::is_hard_negative).collect(),
        vocab: token::VOCAB,
        lengths: examples.iter().map(|e| e.brackets.len() + 2).collect(),
        pad_to_batch: false,
    })
}

/// Token ids `[<start>] + brackets + [<stop>]`, padded with `<pad>` to `len` (which must fit).
pub fn encode(brackets: &[bool], len: usize) -> Vec<u32> {
    let mut t = Vec::with_capacity(len.max(brackets.len() + 2));
    t.push(token::START);
    t.extend(brackets.iter().map(|&b| if b { token::OPEN } else { token::CLOSE }));
    t.push(token::STOP);
    t.resize(len.max(t.len()), token::PAD);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> BracketsConfig {
        BracketsConfig { train: 640, validation: 128, max_len: 32, hard_fraction: 0.5, seed: 0 }
    }

    #[test]
    fn labels_agree_with_an_independent_balance_check() {
        // independent check: a stack machine
        let stack_ok = |b: &[bool]| {
            let mut stack = Vec::new();
            for &open in b {
                if open {
                    stack.push(());
                } else if stack.pop().is_none() {
                    return false;
                }
            }
            stack.is_empty()
        };
        let (train, val) = generate_split(&small(), 1).unwrap();
        for e in train.iter().chain(&val) {
            assert_eq!(e.correct, stack_ok(&e.brackets), "{:?}", e.brackets);
        }
    }

    #[test]
    fn classes_and_lengths_are_balanced_and_hard_negatives_mixed_in() {
        let (train, val) = generate_split(&small(), 2).unwrap();
        assert_eq!((train.len(), val.len()), (640, 128));
        for set in [&train, &val] {
            for len in (2..=32).step_by(2) {
                let of_len: Vec<_> = set.iter().filter(|e| e.brackets.len() == len).collect();
                let pos = of_len.iter().filter(|e| e.correct).count();
                assert_eq!(pos * 2, of_len.len(), "length {len}");
            }
        }
        // half the negatives are generated hard; some random ones are balanced by chance
        let hard = train.iter().filter(|e| e.is_hard_negative()).count() as f64 / 320.0;
        assert!((0.5..0.75).contains(&hard), "hard fraction {hard}");
        let (none, _) =
            generate_split(&BracketsConfig { hard_fraction: 0.0, max_len: 256, ..small() }, 2)
                .unwrap();
        let chance =
            none.iter().filter(|e| e.is_hard_negative()).count() as f64 / (none.len() / 2) as f64;
        assert!(chance < 0.2, "balanced by chance: {chance}");
    }

    #[test]
    fn generation_is_deterministic_by_seed() {
        assert_eq!(generate_split(&small(), 7).unwrap(), generate_split(&small(), 7).unwrap());
        assert_ne!(generate_split(&small(), 7).unwrap().0, generate_split(&small(), 8).unwrap().0);
    }

    #[test]
    fn uniform_dyck_words_are_uniform() {
        // 5 Dyck words with 3 pairs: each should appear ≈ 1/5 of the time
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..10_000 {
            let w = uniform_dyck(3, &mut rng);
            assert!(is_dyck(&w) && w.len() == 6);
            *counts.entry(w).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 5);
        assert!(counts.values().all(|&c| (1800..2200).contains(&c)), "{counts:?}");
        // depth at length 256 is around √(πn) ≈ 20, not the authors' shallower ≈ 10
        let mean: f64 =
            (0..200).map(|_| max_depth(&uniform_dyck(128, &mut rng)) as f64).sum::<f64>() / 200.0;
        assert!((15.0..25.0).contains(&mean), "mean max depth {mean}");
    }

    #[test]
    fn jsonl_round_trips_and_malformed_lines_are_named() {
        let (train, _) = generate_split(&small(), 4).unwrap();
        let text = to_jsonl(&train);
        assert!(
            text.lines().next().unwrap().starts_with("{\"input\":\"( )\",\"label\":\"correct\"}")
        );
        assert!(from_jsonl(&text, Path::new("t.jsonl")).unwrap() == train, "round trip differs");
        for (bad, want) in [
            ("{\"input\": \"( )\", \"label\": \"correct\"}\nnot json", "line 2"),
            ("{\"input\": \"( x )\", \"label\": \"correct\"}", "unexpected character 'x'"),
            ("{\"input\": \"( )\", \"label\": \"maybe\"}", "neither"),
            ("{\"input\": \") (\", \"label\": \"correct\"}", "contradicts"),
            ("{\"input\": \"( )\"}", "line 1"),
        ] {
            let e = from_jsonl(bad, Path::new("f.jsonl")).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("f.jsonl"), "{e} lacks {want}");
        }
    }

    #[test]
    fn encoding_wraps_and_pads() {
        assert_eq!(encode(&[true, false], 6), vec![0, 4, 5, 1, 2, 2]);
        assert_eq!(encode(&[true, false], 0), vec![0, 4, 5, 1]);
        assert_eq!(encode(&[true; 256], 514).len(), 514);
    }
}
