//! # hdo-fuzz: every parser of outside input under a million inputs
//!
//! cargo-fuzz needs a nightly toolchain, which this project's machines cannot install, so the
//! runner here is structure-aware generation plus mutation on stable Rust: each [`Target`]
//! generates well-formed seeds (and reads the committed corpus), the [`mutate`] engine derives
//! inputs from them, and every input is checked for
//! * panics (caught, the input saved),
//! * hangs (a watchdog aborts the process after [`HANG_SECONDS`], the input saved first),
//! * allocations beyond the target's bound, proportional to the input's length (a declared size
//!   larger than the file must be refused before allocating), and
//! * the target's property (a resolved config parses back to itself, a parsed checkpoint
//!   writes back the same state).
//!
//! Inputs whose error message is new (its first words) join the pool: a crude stand-in for
//! coverage feedback, which steers mutation towards the parser's other branches.

#![allow(clippy::unwrap_used)] // the runner's own bookkeeping, never input-dependent

pub mod alloc;
pub mod mutate;
pub mod targets;

pub use targets::{Target, Verdict};

/// Every binary linking this crate (the runner and its tests) counts allocations.
#[global_allocator]
static ALLOC: alloc::Tracking = alloc::Tracking;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// An input running longer than this is a hang: the watchdog saves it and aborts.
pub const HANG_SECONDS: u64 = 10;

/// A campaign's result.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Inputs run.
    pub inputs: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Inputs the parser accepted.
    pub accepted: u64,
    /// Distinct error messages (first words) seen.
    pub error_classes: usize,
    /// Panics, allocation overruns and property violations, each with the file it was saved to.
    pub findings: Vec<String>,
    /// The slowest input's seconds.
    pub slowest: f64,
    /// The largest allocation relative to the input's bound (≤ 1 passes).
    pub worst_allocation: f64,
}

impl Report {
    /// Inputs per second.
    pub fn rate(&self) -> f64 {
        self.inputs as f64 / self.seconds.max(1e-9)
    }
}

/// How to run a campaign.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// The parser.
    pub target: Target,
    /// Inputs to run.
    pub inputs: u64,
    /// Seed of the generated seeds and of every mutation.
    pub seed: u64,
    /// Committed corpus directory (its `<target>/` files join the seeds), if any.
    pub corpus: Option<PathBuf>,
    /// Where findings are saved.
    pub findings: PathBuf,
}

static PANIC_MESSAGE: Mutex<String> = Mutex::new(String::new());
static STARTED_MS: AtomicU64 = AtomicU64::new(0);
static CURRENT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// The corpus committed with this crate.
pub fn default_corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn now_ms(origin: Instant) -> u64 {
    origin.elapsed().as_millis() as u64 + 1
}

/// Save `input` as a finding of `target`; returns where.
fn save(dir: &Path, target: Target, kind: &str, input: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let hash: String = Sha256::digest(input).iter().take(8).map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{}-{kind}-{hash}", target.name()));
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(&path, input);
    path.display().to_string()
}

/// Read the committed corpus files of `target`.
pub fn read_corpus(dir: &Path, target: Target) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(target.name()))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|f| std::fs::read(f).ok()).collect()
}

/// Run one campaign. Panics inside the parser are caught (the panic hook is silenced meanwhile).
pub fn run(c: &Campaign) -> Report {
    let origin = Instant::now();
    let watchdog_dir = c.findings.clone();
    let target = c.target;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let started = STARTED_MS.load(Relaxed);
                if started > 0 && now_ms(origin).saturating_sub(started) > HANG_SECONDS * 1000 {
                    let input = CURRENT.lock().map(|i| i.clone()).unwrap_or_default();
                    let at = save(&watchdog_dir, target, "hang", &input);
                    eprintln!(
                        "hdo-fuzz: {} hangs on an input (> {HANG_SECONDS} s): {at}",
                        target.name()
                    );
                    std::process::abort();
                }
            }
        })
    };
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut m) = PANIC_MESSAGE.lock() {
            *m = info.to_string();
        }
    }));

    let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
    let mut pool = c.target.seeds(c.seed);
    if let Some(dir) = &c.corpus {
        pool.extend(read_corpus(dir, c.target));
    }
    let seeds = pool.len();
    let mut classes: HashSet<String> = HashSet::new();
    let mut report = Report::default();
    let start = Instant::now();
    for i in 0..c.inputs {
        // the seeds themselves first, then mutants of the pool
        let mut input = if (i as usize) < seeds {
            pool[i as usize].clone()
        } else {
            let mut x = pool[rng.random_range(0..pool.len())].clone();
            mutate::mutate(&mut x, &pool, c.target.dictionary(), &mut rng);
            c.target.prepare(&mut x, &mut rng);
            x
        };
        input.truncate(mutate::MAX_LEN);
        if let Ok(mut current) = CURRENT.lock() {
            current.clone_from(&input);
        }
        alloc::reset();
        let t0 = Instant::now();
        STARTED_MS.store(now_ms(origin), Relaxed);
        let verdict = std::panic::catch_unwind(|| c.target.exec(&input));
        STARTED_MS.store(0, Relaxed);
        report.slowest = report.slowest.max(t0.elapsed().as_secs_f64());
        let allocated = alloc::largest() as f64 / c.target.allocation_bound(input.len()) as f64;
        report.worst_allocation = report.worst_allocation.max(allocated);
        report.inputs += 1;
        match verdict {
            Err(_) => {
                let msg = PANIC_MESSAGE.lock().map(|m| m.clone()).unwrap_or_default();
                let at = save(&c.findings, c.target, "panic", &input);
                report.findings.push(format!("panic: {msg} ({at})"));
            }
            Ok(Verdict::Violated(why)) => {
                let at = save(&c.findings, c.target, "property", &input);
                report.findings.push(format!("property: {why} ({at})"));
            }
            Ok(Verdict::Accepted) => {
                report.accepted += 1;
                if pool.len() < 4096 && rng.random_ratio(1, 64) {
                    pool.push(input.clone());
                }
            }
            Ok(Verdict::Refused(msg)) => {
                // the message without its numbers: "line 7: …" and "line 9: …" are one class
                let class: String = msg
                    .split_whitespace()
                    .take(8)
                    .map(|w| w.chars().filter(|c| !c.is_ascii_digit()).collect::<String>())
                    .collect::<Vec<_>>()
                    .join(" ");
                if classes.insert(class) && pool.len() < 4096 {
                    pool.push(input.clone());
                }
            }
        }
        if allocated > 1.0 {
            let at = save(&c.findings, c.target, "alloc", &input);
            report.findings.push(format!(
                "allocation of {} bytes for a {}-byte input ({at})",
                alloc::largest(),
                input.len()
            ));
        }
        if report.findings.len() >= 20 {
            break;
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    report.error_classes = classes.len();
    std::panic::set_hook(previous_hook);
    stop.store(true, Relaxed);
    let _ = watchdog.join();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The allocation counter is process-wide: one test at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    /// The default test run: a short campaign per target must find nothing, and must really
    /// exercise the parser (accept some inputs, refuse others for several reasons).
    #[test]
    fn every_target_survives_a_short_campaign() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let findings = tempfile_dir();
        for target in Target::ALL {
            let c = Campaign {
                target,
                inputs: 3_000,
                seed: 1,
                corpus: Some(default_corpus()),
                findings: findings.clone(),
            };
            let r = run(&c);
            assert!(r.findings.is_empty(), "{}: {:#?}", target.name(), r.findings);
            assert_eq!(r.inputs, 3_000);
            assert!(r.accepted > 0, "{}: nothing accepted", target.name());
            assert!(r.error_classes >= 3, "{}: {} error classes", target.name(), r.error_classes);
        }
    }

    /// The seeds are well formed: each parser accepts every one.
    #[test]
    fn generated_seeds_and_corpus_parse() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        for target in Target::ALL {
            for (i, s) in target.seeds(3).iter().enumerate() {
                assert_eq!(target.exec(s), Verdict::Accepted, "{} seed {i}", target.name());
            }
        }
    }

    /// The checks can fail: a checkpoint whose header declares more floats than the file holds
    /// is refused, and a panicking parser would be reported (here: a corrupt trailer is refused).
    #[test]
    fn declared_sizes_beyond_the_file_are_refused() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let seed = &Target::Checkpoint.seeds(0)[0];
        let (from, to): (&[u8], &[u8]) = (b"tensors = [1, 2, 3]", b"tensors = [9999999]");
        let at = seed.windows(from.len()).position(|w| w == from);
        let at = at.unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(seed)));
        // same length, so the header's length prefix still fits: 10⁷ floats declared, 3 there
        let mut bytes = seed.clone();
        bytes[at..at + to.len()].copy_from_slice(to);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..8 {
            Target::Checkpoint.prepare(&mut bytes, &mut rng);
        }
        alloc::reset();
        let v = Target::Checkpoint.exec(&bytes);
        assert!(matches!(&v, Verdict::Refused(m) if m.contains("past the end")), "{v:?}");
        assert!(alloc::largest() < Target::Checkpoint.allocation_bound(bytes.len()));
    }

    fn tempfile_dir() -> PathBuf {
        std::env::temp_dir().join(format!("hdo-fuzz-test-{}", std::process::id()))
    }
}
