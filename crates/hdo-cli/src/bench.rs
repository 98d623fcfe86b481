//! `hdo bench`: per-step costs, peak memory, the direction-generation floor and population
//! scaling, printed as a table and written as JSON.

use crate::args::{BenchArgs, BenchPart};
use anyhow::Context;
use hdo_core::bench::{self, HeapMeter, Measurement};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Counts live heap bytes and their peak, so `hdo bench` can report a step's peak memory.
pub struct CountingAlloc;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to the system allocator; only adds bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Relaxed);
    }
}

struct Meter;
impl HeapMeter for Meter {
    fn start(&self) -> usize {
        let now = LIVE.load(Relaxed);
        PEAK.store(now, Relaxed);
        now
    }
    fn peak_since(&self, baseline: usize) -> usize {
        PEAK.load(Relaxed).saturating_sub(baseline)
    }
}

fn mib(b: usize) -> String {
    format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64)
}

/// Run the suite.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let device_name = args.device.name();
    let device = hdo_core::device::select(match args.device {
        crate::args::DeviceArg::Cpu => hdo_core::config::DeviceChoice::Cpu,
        crate::args::DeviceArg::Wgpu => hdo_core::config::DeviceChoice::Wgpu,
    })?;
    // device memory is not heap: only the CPU has peak figures
    let meter: Option<&dyn HeapMeter> = if device_name == "cpu" { Some(&Meter) } else { None };
    eprintln!("hdo bench on {device_name} ({} threads)", hdo_core::bench::threads());
    let wants = |part: BenchPart| args.only.is_empty() || args.only.contains(&part);
    let mut report = json!({ "device": device_name, "threads": hdo_core::bench::threads() });
    if wants(BenchPart::Steps) {
        let steps: Vec<Measurement> =
            bench::steps(&device, args.reps, meter, &args.models).context("step benchmarks")?;
        println!("{:<66} {:>12} {:>12}", "operation", "time", "peak heap");
        for m in &steps {
            let peak = m.peak_bytes.map(mib).unwrap_or_else(|| "-".into());
            println!("{:<66} {:>9.3} ms {:>12}", m.name, m.seconds * 1e3, peak);
        }
        report["steps"] = json!(steps);
    }
    if wants(BenchPart::Average) {
        let bw = bench::average_bandwidth(&device, args.reps);
        println!(
            "\npair average of two ResNet-18-sized sets ({} floats): {:.2} ms = {:.1} GB/s moved, {:.0}% of the copy bandwidth ({:.1} GB/s)",
            bw.floats,
            bw.average_s * 1e3,
            bw.average_bytes_per_s / 1e9,
            100.0 * bw.fraction_of_copy,
            bw.copy_bytes_per_s / 1e9
        );
        report["pair_average_bandwidth"] = json!(bw);
    }
    if wants(BenchPart::Noise) {
        let n = 1usize << 24;
        let per = bench::noise_seconds(n) / n as f64;
        println!("\nGaussian directions: {:.2} ns per number on one thread", per * 1e9);
        report["gaussian_ns_per_number_one_thread"] = json!(per * 1e9);
    }
    if wants(BenchPart::Scaling) {
        let sizes: Vec<(usize, usize)> = if args.quick {
            vec![(1, 0), (0, 1), (1, 10), (24, 256)]
        } else {
            vec![(1, 0), (0, 1), (1, 3), (2, 14), (6, 58), (24, 232), (24, 256), (93, 931)]
        };
        let scaling = bench::population_scaling(device_name, &sizes, args.rounds, &args.set)
            .context("population scaling")?;
        if !args.set.is_empty() {
            println!("\npopulations with {}", args.set.join(" "));
            report["population_scaling_set"] = json!(args.set);
        }
        println!(
            "\n{:>5} {:>5} {:>6} {:>14} {:>12} {:>16}",
            "FO", "ZO", "nodes", "s per round", "rounds/s", "noise floor (s)"
        );
        for s in &scaling {
            println!(
                "{:>5} {:>5} {:>6} {:>14.4} {:>12.2} {:>16.4}",
                s.fo,
                s.zo,
                s.fo + s.zo,
                s.seconds_per_round,
                1.0 / s.seconds_per_round,
                s.generation_floor_s
            );
        }
        report["population_scaling"] = json!(scaling);
    }
    if let Some(path) = &args.out {
        let text = serde_json::to_string_pretty(&report)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}
