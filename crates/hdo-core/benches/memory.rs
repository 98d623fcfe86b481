//! Peak heap memory of one step on the HDO CNN (batch 256, CPU/flex), against an inference pass.
//!
//! `cargo bench --workspace --bench memory`
//!
//! A counting global allocator records the peak of live heap bytes during each operation, above
//! what was live before it (model, data). The claim checked: a zeroth-order step needs at most
//! the model plus one parameter tensor more than an inference pass (the perturbed copy and the
//! direction buffer); directions are regenerated, never stored.
#![allow(clippy::unwrap_used, missing_docs)]

use burn::prelude::*;
use hdo_core::config::MomentumStyle;
use hdo_core::data::batch;
use hdo_core::estimator::{
    Backprop, Direction, Estimator, ForwardDifference, ForwardGradient, Projection, StepInput,
    cross_entropy,
};
use hdo_core::noise::NoiseStream;
use hdo_core::optimizer::Optimizer;
use hdo_core::params::Layout;
use hdo_core::schedule::LrSchedule;
use hdo_models::{CnnConfig, DataShape, ForwardCtx, ModelConfig};
use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: AllocLayout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: AllocLayout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Peak live bytes above the starting level while `f` runs.
fn peak_of<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let out = f();
    (PEAK.load(Relaxed) - base, out)
}

fn mib(b: usize) -> String {
    format!("{:.2} MiB", b as f64 / (1 << 20) as f64)
}

fn main() {
    let plain = Device::flex();
    let split = hdo_datasets::mnist::bundled(2000).unwrap();
    let shape = DataShape::image(split.train.shape, 10);
    let model = ModelConfig::Cnn(CnnConfig::default()).init(shape, &plain).unwrap();
    let layout = Layout::of(&model);
    let model = hdo_core::init::initialize(model, &layout, 0);
    let idx: Vec<usize> = (0..256).collect();
    let b = batch(&split.train, &idx, &plain);
    let model_bytes = layout.total_numel() as usize * 4;
    let largest = layout.tensors.iter().map(|t| t.numel).max().unwrap_or(0) * 4;
    // warm up allocator pools and lazy state
    let _ = cross_entropy(model.forward(&b.input, &mut ForwardCtx::train()), &b.targets)
        .into_scalar::<f32>();

    let (inference, _) = peak_of(|| {
        cross_entropy(model.forward(&b.input, &mut ForwardCtx::train()), &b.targets)
            .into_scalar::<f32>()
    });
    let step = |est: &dyn Estimator| {
        let mut opt = Optimizer::new(
            LrSchedule {
                lr: 0.01,
                kind: hdo_core::config::ScheduleKind::Constant,
                warmup: 0,
                total: 10,
            },
            0.0,
            MomentumStyle::Ema,
            false,
        );
        peak_of(|| {
            let e = est
                .estimate(StepInput {
                    model: &model,
                    batch: &b,
                    layout: &layout,
                    noise: NoiseStream::new(1, 0, 0),
                })
                .unwrap();
            opt.step(model.clone(), &layout, &e.gradient, 0)
        })
        .0
    };
    let fd = step(&ForwardDifference { rv: 8, nu: 1e-4, direction: Direction::Gaussian });
    let fg = step(&ForwardGradient {
        rv: 8,
        projection: Projection::Global,
        direction: Direction::Gaussian,
    });
    let ad = plain.clone().autodiff();
    let ad_model = burn::module::Module::train(model.clone());
    let ad_batch = batch(&split.train, &idx, &ad);
    let (fo, _) = peak_of(|| {
        Backprop
            .estimate(StepInput {
                model: &ad_model,
                batch: &ad_batch,
                layout: &layout,
                noise: NoiseStream::new(0, 0, 0),
            })
            .unwrap()
            .loss
    });
    let budget = inference + model_bytes + largest;
    println!(
        "HDO CNN ({} parameters, model {}, largest tensor {}), batch 256, CPU (flex)",
        layout.dim,
        mib(model_bytes),
        mib(largest)
    );
    println!("{:<44} {:>12} {:>10}", "operation", "peak heap", "vs infer.");
    for (name, bytes) in [
        ("inference pass (forward + loss)", inference),
        ("ZO step, forward_difference rv 8 (+update)", fd),
        ("ZO step, forward_gradient rv 8 (+update)", fg),
        ("FO step, backprop (gradient only)", fo),
    ] {
        println!("{:<44} {:>12} {:>9.2}×", name, mib(bytes), bytes as f64 / inference as f64);
    }
    println!(
        "budget inference + model + one tensor = {}: forward_difference {}",
        mib(budget),
        if fd <= budget { "within" } else { "OVER" }
    );
    println!(
        "{{\"inference\":{inference},\"zo_forward_difference\":{fd},\"zo_forward_gradient\":{fg},\"fo_backprop\":{fo},\"model\":{model_bytes},\"largest_tensor\":{largest}}}"
    );
}
