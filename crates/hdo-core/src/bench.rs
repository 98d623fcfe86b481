//! Benchmarks behind `hdo bench`: what one step, one average and one round cost.
//!
//! Timings are medians of repeated runs on the chosen device; peak memory comes from a
//! [`HeapMeter`] the binary provides (a counting global allocator: CPU heap only).

use crate::average;
use crate::config::{DataConfig, DatasetKind, ExperimentConfig, MomentumStyle, ScheduleKind};
use crate::data::Dataset;
use crate::error::Error;
use crate::estimator::{
    Backprop, CentralDifference, Debiased, Direction, Estimator, ForwardDifference,
    ForwardGradient, Projection, StepInput,
};
use crate::experiment::Experiment;
use crate::noise::NoiseStream;
use crate::optimizer::Optimizer;
use crate::params::{self, Layout};
use crate::schedule::LrSchedule;
use burn::module::Module;
use burn::prelude::*;
use hdo_models::{CnnConfig, ForwardCtx, MlpConfig, ModelConfig, ResNetConfig, Stem};
use rayon::prelude::*;
use serde::Serialize;
use std::time::Instant;

/// Peak heap bytes while a closure runs (provided by the binary's allocator).
pub trait HeapMeter {
    /// Start measuring; returns an opaque baseline.
    fn start(&self) -> usize;
    /// Peak bytes above the baseline since `start`.
    fn peak_since(&self, baseline: usize) -> usize;
}

/// One measured operation.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// What was measured, e.g. `cnn / zo forward_difference rv 8`.
    pub name: String,
    /// Median seconds per operation.
    pub seconds: f64,
    /// Peak heap above the resting state, bytes (CPU only).
    pub peak_bytes: Option<usize>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median wall time of `f` over `reps` runs (after one warm-up), and its peak heap.
fn measure(
    name: String,
    reps: usize,
    device: &Device,
    meter: Option<&dyn HeapMeter>,
    mut f: impl FnMut(),
) -> Measurement {
    f();
    let _ = device.sync();
    let mut times = Vec::with_capacity(reps);
    let mut peak = 0usize;
    for _ in 0..reps {
        let base = meter.map(|m| m.start());
        let t = Instant::now();
        f();
        let _ = device.sync();
        times.push(t.elapsed().as_secs_f64());
        if let (Some(m), Some(b)) = (meter, base) {
            peak = peak.max(m.peak_since(b));
        }
    }
    Measurement { name, seconds: median(times), peak_bytes: meter.map(|_| peak) }
}

/// The models at the batch sizes of their HDO experiments, with their data: MNIST (bundled) for
/// the image models, generated Brackets for the Transformer — at the paper's 514 tokens on a GPU,
/// at 66 tokens (strings up to 32) on the CPU, where one pass of 256 × 514 tokens takes seconds.
fn models(host: bool) -> Vec<(&'static str, ModelConfig, usize, DataConfig)> {
    let brackets = DataConfig {
        dataset: DatasetKind::Brackets,
        brackets: hdo_datasets::BracketsConfig {
            train: 512,
            validation: 64,
            max_len: if host { 32 } else { 256 },
            ..Default::default()
        },
        ..Default::default()
    };
    vec![
        ("logistic", ModelConfig::Logistic {}, 2, DataConfig::default()),
        ("mlp", ModelConfig::Mlp(MlpConfig::default()), 8, DataConfig::default()),
        ("cnn", ModelConfig::Cnn(CnnConfig::default()), 256, DataConfig::default()),
        ("transformer", ModelConfig::Transformer(Default::default()), 256, brackets),
        // HDO Figure 3's FO batch; the CIFAR stem keeps 28×28 images at full resolution through
        // layer1, as 32×32 CIFAR images are
        ("resnet18", ModelConfig::ResNet18(ResNetConfig { stem: Stem::Cifar, width: 64 }), 10, {
            DataConfig::default()
        }),
    ]
}

/// Per-step costs of every model (or those named in `only`): inference, FO step, ZO steps (rv 1,
/// 8, 64, 128), forward gradient (rv 8) and a pair average, at the batch sizes of the HDO
/// experiments.
pub fn steps(
    device: &Device,
    reps: usize,
    meter: Option<&dyn HeapMeter>,
    only: &[String],
) -> Result<Vec<Measurement>, Error> {
    let all = models(crate::device::is_host(device));
    if let Some(unknown) = only.iter().find(|m| !all.iter().any(|(name, ..)| name == m)) {
        let names: Vec<&str> = all.iter().map(|(name, ..)| *name).collect();
        return Err(Error::Config {
            key: "model".into(),
            problem: format!("no benchmark for model {unknown:?}; one of {}", names.join(", ")),
        });
    }
    let mut out = Vec::new();
    for (name, config, batch_size, data) in all {
        if !only.is_empty() && !only.iter().any(|m| m == name) {
            continue;
        }
        let data = Dataset::load(&data)?;
        let model = config
            .init(data.shape(), device)
            .map_err(|p| Error::Config { key: "model".into(), problem: p })?;
        let layout = Layout::of(&model);
        let model = crate::init::initialize(model, &layout, 0);
        let idx: Vec<usize> = (0..batch_size).collect();
        let batch = data.train.batch(&idx, device);
        let ad_device = device.clone().autodiff();
        let ad_batch = data.train.batch(&idx, &ad_device);
        let ad_model = model.clone().train();
        let noise = NoiseStream::new(0, 0, 0);
        let schedule = LrSchedule { lr: 0.01, kind: ScheduleKind::Constant, warmup: 0, total: 1 };
        let tokens = match data.shape().tokens() {
            Some((_, len)) => format!(" × {len} tokens"),
            None => String::new(),
        };
        let label = |what: &str| format!("{name} (batch {batch_size}{tokens}) / {what}");
        out.push(measure(label("inference pass"), reps, device, meter, || {
            let logits = model.forward(&batch.input, &mut ForwardCtx::train());
            let _ = crate::estimator::cross_entropy(logits, &batch.targets).into_scalar::<f32>();
        }));
        out.push(measure(label("FO step (backprop + update)"), reps, device, meter, || {
            let e = Backprop
                .estimate(StepInput {
                    model: &ad_model,
                    batch: &ad_batch,
                    layout: &layout,
                    noise,
                    stack: 1,
                    batcher: None,
                })
                .unwrap_or_else(|e| panic!("{e}"));
            let mut opt = Optimizer::new(schedule, 0.0, MomentumStyle::Sgd, false);
            let _ = opt.step(ad_model.clone(), &layout, &e.gradient, 0);
        }));
        let zo = |est: &dyn Estimator, stack: usize| {
            let input = StepInput {
                model: &model,
                batch: &batch,
                layout: &layout,
                noise,
                stack,
                batcher: None,
            };
            let e = est.estimate(input).unwrap_or_else(|e| panic!("{e}"));
            let mut opt = Optimizer::new(schedule, 0.0, MomentumStyle::Ema, false);
            let _ = opt.step(model.clone(), &layout, &e.gradient, 0);
        };
        // the CNN's and the Transformer's copies are batch 256 each: stack 16 (the Transformer's
        // attention scores: 8) at most, for memory
        let big = batch_size >= 256;
        let max_stack = match (big, name) {
            (true, "transformer") => 8,
            (true, _) => 16,
            _ => 128,
        };
        // ResNet-18's 11M-parameter copies: rv 1 and 8 (its experiments' range)
        let rvs: &[u32] = if name == "resnet18" { &[1, 8] } else { &[1, 8, 64, 128] };
        for &rv in rvs {
            let fd = ForwardDifference { rv, nu: 1e-4, direction: Direction::Gaussian };
            // 64/128 directions × batch 256: once is enough to read off the cost
            let r = if big && rv > 8 { 1 } else { reps };
            out.push(measure(
                label(&format!("ZO step forward_difference rv {rv}")),
                r,
                device,
                meter,
                || zo(&fd, 1),
            ));
            if rv > 1 {
                let stack = (rv as usize).min(max_stack);
                out.push(measure(
                    label(&format!("ZO step forward_difference rv {rv}, stacked {stack}")),
                    r,
                    device,
                    meter,
                    || zo(&fd, stack),
                ));
            }
        }
        // the other difference estimators: same probe path, so the same memory
        let g = Direction::Gaussian;
        let cd = CentralDifference { rv: 8, nu: 1e-2, direction: g };
        out.push(measure(label("ZO step central_difference rv 8"), reps, device, meter, || {
            zo(&cd, 1)
        }));
        let debiased = Debiased { rv: 8, nu: 1e-2, ratio: 0.5, direction: g };
        out.push(measure(label("ZO step debiased rv 8"), reps, device, meter, || zo(&debiased, 1)));
        let fg = ForwardGradient {
            rv: 8,
            projection: Projection::Global,
            direction: Direction::Gaussian,
        };
        out.push(measure(label("ZO step forward_gradient rv 8"), reps, device, meter, || {
            zo(&fg, 1)
        }));
        if model.can_stack_jvp() {
            out.push(measure(
                label("ZO step forward_gradient rv 8, stacked 8"),
                reps,
                device,
                meter,
                || zo(&fg, 8),
            ));
        }
        let other = crate::init::initialize(model.clone(), &layout, 1);
        let host = crate::device::is_host(device);
        out.push(measure(label("pair average"), reps, device, meter, || {
            // clones of the replicas (shared buffers: the host path copies once)
            let (a, b) = (params::collect(&model), params::collect(&other));
            let mean: Vec<Tensor<1>> =
                a.into_iter().zip(b).map(|(x, y)| average::mean(vec![x, y], host)).collect();
            let _ = params::load(model.clone(), &mean);
            let _ = params::load(other.clone(), &mean);
        }));
    }
    Ok(out)
}

/// Seconds to generate `n` Gaussian direction values on one thread.
pub fn noise_seconds(n: usize) -> f64 {
    let mut buf = vec![0f32; 1 << 16];
    let s = NoiseStream::new(0, 0, 0);
    let t = Instant::now();
    let mut done = 0usize;
    let mut k = 0u32;
    while done < n {
        let m = buf.len().min(n - done);
        s.fill_gaussian(k, 0, &mut buf[..m]);
        done += m;
        k += 1;
    }
    t.elapsed().as_secs_f64()
}

/// One population size's round rate.
#[derive(Debug, Clone, Serialize)]
pub struct Scaling {
    /// FO nodes.
    pub fo: usize,
    /// ZO nodes.
    pub zo: usize,
    /// Median seconds per round (local steps + gossip, no evaluation).
    pub seconds_per_round: f64,
    /// Gaussian numbers a round generates (directions + their regeneration for the update).
    pub gaussians_per_round: u64,
    /// Seconds just to generate them on all cores (the floor of a ZO-heavy round).
    pub generation_floor_s: f64,
}

/// Threads of the global rayon pool, which burn-flex and our host loops compute on.
pub fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Rounds of logistic populations (batch 2, rv 128, matching, the Figure 2 setting) of the given
/// sizes, on `device`, with the config overrides `extra` (e.g. `zo.batch_nodes=true`).
pub fn population_scaling(
    device: &str,
    sizes: &[(usize, usize)],
    rounds: u64,
    extra: &[String],
) -> Result<Vec<Scaling>, Error> {
    let per_thread = noise_seconds(1 << 24) / (1u64 << 24) as f64;
    let threads = threads() as f64;
    let mut out = Vec::new();
    for &(fo, zo) in sizes {
        let mut sets = vec![
            format!("population.fo={fo}"),
            format!("population.zo={zo}"),
            "fo.batch_size=2".into(),
            "zo.batch_size=2".into(),
            "zo.rv=128".into(),
            format!("steps={}", rounds + 1),
            format!("eval_every={}", rounds + 1),
            "data.eval_limit=1".into(),
            format!("device=\"{device}\""),
        ];
        sets.extend(extra.iter().cloned());
        let cfg = ExperimentConfig::from_toml("", &sets)?;
        let mut exp = Experiment::new(cfg)?;
        let dir = std::env::temp_dir().join(format!("hdo-bench-{}-{fo}-{zo}", std::process::id()));
        let mut times = Vec::new();
        let mut last = Instant::now();
        exp.run(&dir, &mut |e| {
            if let crate::experiment::Event::Round { .. } = e {
                times.push(last.elapsed().as_secs_f64());
            }
            last = Instant::now();
        })?;
        let _ = std::fs::remove_dir_all(&dir);
        times.remove(0); // first round: warm-up
        let gaussians = zo as u64 * exp.config.zo.rv as u64 * 2 * exp.population.layout.dim;
        out.push(Scaling {
            fo,
            zo,
            seconds_per_round: median(times),
            gaussians_per_round: gaussians,
            generation_floor_s: gaussians as f64 * per_thread / threads,
        });
    }
    Ok(out)
}

/// Pair averaging of two ResNet-18-sized parameter sets (11,689,512 floats) through the same
/// path gossip uses, against the device's copy bandwidth measured in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct AverageBandwidth {
    /// Floats per parameter set.
    pub floats: usize,
    /// Median seconds of one pair average through gossip's path ([`average::mean`]).
    pub average_s: f64,
    /// Bytes the average moves (read a, read b, write the mean) per second.
    pub average_bytes_per_s: f64,
    /// Copy bandwidth: bytes read + written per second by a plain copy of one set.
    pub copy_bytes_per_s: f64,
    /// `average_bytes_per_s / copy_bytes_per_s`.
    pub fraction_of_copy: f64,
}

/// Measure [`AverageBandwidth`] on `device`; the copy is a multi-threaded host slice copy on the
/// CPU, a device-side `x·1` otherwise.
pub fn average_bandwidth(device: &Device, reps: usize) -> AverageBandwidth {
    let host = crate::device::is_host(device);
    let n = 11_689_512usize;
    let set = |m: usize| params::upload((0..n).map(|i| (i % m) as f32).collect(), device);
    let mut times = Vec::new();
    for _ in 0..reps.max(9) + 1 {
        // fresh, uniquely owned sets, as gossip moves them out of two replicas
        let (a, b) = (set(97), set(89));
        let _ = device.sync();
        let t = Instant::now();
        let m = average::mean(vec![a, b], host);
        let _ = m.narrow(0, 0, 1).into_scalar::<f32>();
        times.push(t.elapsed().as_secs_f64());
    }
    times.remove(0); // warm-up
    let average_s = median(times);
    let copy_s = if host {
        let src = vec![1f32; n];
        let mut dst = vec![0f32; n];
        let mut times = Vec::new();
        for _ in 0..reps.max(9) {
            // on all cores, as the average runs: one core alone cannot saturate memory
            let t = Instant::now();
            dst.par_chunks_mut(1 << 15)
                .zip(src.par_chunks(1 << 15))
                .for_each(|(d, s)| d.copy_from_slice(s));
            std::hint::black_box(&dst);
            times.push(t.elapsed().as_secs_f64());
        }
        median(times)
    } else {
        let a = set(97);
        measure("copy".into(), reps, device, None, || {
            let c = a.clone() * 1.0;
            let _ = c.narrow(0, 0, 1).into_scalar::<f32>();
        })
        .seconds
    };
    let bytes = (n * 4) as f64;
    let average_bytes_per_s = 3.0 * bytes / average_s;
    let copy_bytes_per_s = 2.0 * bytes / copy_s;
    AverageBandwidth {
        floats: n,
        average_s,
        average_bytes_per_s,
        copy_bytes_per_s,
        fraction_of_copy: average_bytes_per_s / copy_bytes_per_s,
    }
}
