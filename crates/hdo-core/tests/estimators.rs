//! Statistical checks of the estimators.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures
mod common;

use burn::prelude::*;
use hdo_core::data::batch;
use hdo_core::estimator::{
    Backprop, CentralDifference, Debiased, DifferenceRule, Direction, Estimator, ForwardDifference,
    ForwardGradient, Gradient, Projection, SeededGradient, SimulatedForwardGradient, StepInput,
};
use hdo_core::noise::NoiseStream;
use hdo_core::params::{self, Layout, TensorInfo};
use hdo_datasets::mnist;
use hdo_models::{DataShape, ModelConfig};

fn dense(g: &Gradient, layout: &Layout, device: &Device) -> Vec<f32> {
    let mut out = Vec::new();
    for info in layout.trainable() {
        let l = info.trainable.unwrap_or(0);
        out.extend(common::host(g.tensor(l, info, device)));
    }
    out
}

/// What the mean of many seeded draws says against the true gradient.
#[derive(Debug)]
struct Verdict {
    /// Coordinates whose mean is more than 3 standard errors from ∇F.
    beyond: usize,
    /// Coordinates.
    dim: usize,
    /// `(mean − ∇F)·e / SE` for the component along `e` (∇F's direction, or the all-ones
    /// direction where ∇F = 0): a scale error or a bias along it shows here first.
    along_z: f64,
    /// `‖mean − ∇F‖² / (Σ_i Var_i / N)`: about 1 when only noise separates them.
    ratio: f64,
    /// Per parameter tensor: `(coordinates, beyond 3 SE, z of the component along ∇F within it)`,
    /// so that a small tensor that is wholly wrong cannot hide among a large one's coordinates.
    tensors: Vec<(usize, usize, f64)>,
}

/// Coordinates of `n` that may lie beyond 3 SE by chance: none for a small tensor, else the
/// expected 0.27% plus four binomial standard deviations.
fn allowed_beyond(n: usize) -> usize {
    if n <= 100 {
        return 0;
    }
    let mean = n as f64 * 0.0027;
    (mean + 4.0 * mean.sqrt()).ceil() as usize
}

impl Verdict {
    /// Unbiased within the noise: every coordinate within 3 SE (at most 1% of them beyond 3 SE,
    /// against 0.27% expected, for model-sized vectors), the component along `e` within 3 SE,
    /// and the total squared error what the variance predicts.
    fn assert_unbiased(&self, name: &str) {
        eprintln!("{name}: {self:?}");
        for (t, &(n, beyond, z)) in self.tensors.iter().enumerate() {
            assert!(
                beyond <= allowed_beyond(n),
                "{name}: tensor {t} ({n} values): {beyond} beyond 3 SE, at most {} by chance",
                allowed_beyond(n)
            );
            // several tensors: 3.5 SE keeps the family's false alarms below 0.1% each
            assert!(z.abs() <= 3.5, "{name}: tensor {t}: mean off ∇F along it (z = {z})");
        }
        assert!(self.along_z.abs() <= 3.0, "{name}: {self:?}: mean off ∇F along e");
        if self.dim > 100 {
            assert!((0.85..1.15).contains(&self.ratio), "{name}: {self:?}: ‖mean − ∇F‖² off");
        }
    }
}

/// Mean of `draws` estimates `sample(s)`, `s = 0, 1, …`, against `truth` (one tensor).
fn verdict(draws: u64, truth: &[f64], sample: impl FnMut(u64) -> Vec<f32>) -> Verdict {
    verdict_by(draws, truth, &[truth.len()], sample)
}

/// [`verdict`] of a parameter vector made of tensors of `sizes`, judged tensor by tensor too.
fn verdict_by(
    draws: u64,
    truth: &[f64],
    sizes: &[usize],
    mut sample: impl FnMut(u64) -> Vec<f32>,
) -> Verdict {
    let dim = truth.len();
    assert_eq!(sizes.iter().sum::<usize>(), dim);
    // per tensor: the sample's component along the tensor's part of ∇F (or of the ones vector)
    let mut bounds = Vec::new();
    let mut at = 0;
    for &n in sizes {
        bounds.push(at..at + n);
        at += n;
    }
    let unit = |r: &std::ops::Range<usize>| -> Vec<f64> {
        let part = &truth[r.clone()];
        let norm = part.iter().map(|g| g * g).sum::<f64>().sqrt();
        if norm > 0.0 {
            part.iter().map(|g| g / norm).collect()
        } else {
            vec![1.0 / (part.len() as f64).sqrt(); part.len()]
        }
    };
    let units: Vec<Vec<f64>> = bounds.iter().map(unit).collect();
    let mut parts = vec![(0f64, 0f64); sizes.len()];
    let norm = truth.iter().map(|g| g * g).sum::<f64>().sqrt();
    let e: Vec<f64> = if norm > 0.0 {
        truth.iter().map(|g| g / norm).collect()
    } else {
        vec![1.0 / (dim as f64).sqrt(); dim]
    };
    let (mut sum, mut sq) = (vec![0f64; dim], vec![0f64; dim]);
    let (mut along, mut along_sq) = (0f64, 0f64);
    for s in 0..draws {
        let g = sample(s);
        assert_eq!(g.len(), dim);
        let mut p = 0.0;
        for i in 0..dim {
            let gi = g[i] as f64;
            sum[i] += gi;
            sq[i] += gi * gi;
            p += gi * e[i];
        }
        along += p;
        along_sq += p * p;
        for ((r, u), (s1, s2)) in bounds.iter().zip(&units).zip(parts.iter_mut()) {
            let q: f64 = g[r.clone()].iter().zip(u).map(|(&gi, ui)| gi as f64 * ui).sum();
            *s1 += q;
            *s2 += q * q;
        }
    }
    let n = draws as f64;
    let var = |s: f64, q: f64| (q / n - (s / n).powi(2)).max(0.0);
    let mut beyond = 0;
    let (mut err, mut expected) = (0.0, 0.0);
    for i in 0..dim {
        let diff = sum[i] / n - truth[i];
        let v = var(sum[i], sq[i]);
        if diff.abs() > 3.0 * (v / n).sqrt() {
            beyond += 1;
        }
        err += diff * diff;
        expected += v / n;
    }
    let truth_along: f64 = truth.iter().zip(&e).map(|(g, e)| g * e).sum();
    let along_z = (along / n - truth_along) / (var(along, along_sq) / n).sqrt();
    let tensors = bounds
        .iter()
        .zip(&units)
        .zip(&parts)
        .map(|((r, u), &(s1, s2))| {
            let beyond = r
                .clone()
                .filter(|&i| (sum[i] / n - truth[i]).abs() > 3.0 * (var(sum[i], sq[i]) / n).sqrt())
                .count();
            let t: f64 = truth[r.clone()].iter().zip(u).map(|(g, u)| g * u).sum();
            (r.len(), beyond, (s1 / n - t) / (var(s1, s2) / n).sqrt())
        })
        .collect();
    Verdict { beyond, dim, along_z, ratio: err / expected, tensors }
}

/// A one-tensor layout of `d` trainable values, for analytic functions.
fn flat_layout(d: usize) -> Layout {
    let info =
        TensorInfo { path: "x".into(), shape: vec![d], numel: d, trainable: Some(0), offset: 0 };
    Layout { tensors: vec![info], dim: d as u64 }
}

/// One estimate of a difference `rule` for the analytic function `f` at `x`, built exactly as a
/// node builds it — the rule's own probes and coefficients, directions regenerated from `noise`
/// — with `f` in place of the model's loss. Losses are reported relative to `f(x)` (a constant
/// shift: the same gradient) so that their f32 values keep full precision.
fn rule_on<R: DifferenceRule>(
    rule: &R,
    f: &dyn Fn(&[f64]) -> f64,
    x: &[f64],
    noise: NoiseStream,
) -> Vec<f32> {
    let layout = flat_layout(x.len());
    let (plan, probes) = rule.plan(noise, &layout);
    let f0 = f(x);
    let mut z = vec![0f32; x.len()];
    let losses: Vec<f32> = probes
        .iter()
        .map(|&(k, scale)| {
            noise.fill_gaussian(k, 0, &mut z);
            let y: Vec<f64> =
                x.iter().zip(&z).map(|(xi, zi)| xi + scale as f64 * *zi as f64).collect();
            (f(&y) - f0) as f32
        })
        .collect();
    let coefficients = rule.coefficients(&plan, &layout, 0.0, &losses);
    let g = SeededGradient { noise, directions: rule.directions(), blocks: 1, coefficients };
    g.materialize(0, &layout.tensors[0])
}

/// One forward-gradient estimate on an analytic function: the exact directional derivative
/// `u_k·∇F` (what forward mode computes; its layer rules are checked in `tests/jvp.rs`) through
/// the estimator's own coefficient rule.
fn forward_gradient_on(fg: &ForwardGradient, grad: &[f64], noise: NoiseStream) -> Vec<f32> {
    let layout = flat_layout(grad.len());
    let mut z = vec![0f32; grad.len()];
    let coefficients = (0..fg.rv)
        .map(|k| {
            let s = fg.direction.scale(noise, k, &layout);
            noise.fill_gaussian(k, 0, &mut z);
            let directional: f64 =
                z.iter().zip(grad).map(|(zi, g)| s as f64 * *zi as f64 * g).sum();
            fg.coefficient(&layout, s, directional as f32)
        })
        .collect();
    let g = SeededGradient { noise, directions: fg.rv, blocks: 1, coefficients };
    g.materialize(0, &layout.tensors[0])
}

/// `F(x) = ½ xᵀAx + b·x` with a dense symmetric positive definite `A` (d = 12), its gradient
/// `Ax + b`, and a point `x`.
struct Quadratic {
    a: Vec<Vec<f64>>,
    b: Vec<f64>,
    x: Vec<f64>,
}

impl Quadratic {
    fn new() -> Self {
        let d = 12usize;
        let a = (0..d)
            .map(|i| {
                (0..d)
                    .map(|j| if i == j { 1.0 + 0.3 * i as f64 } else { 0.1 / (1 + i + j) as f64 })
                    .collect()
            })
            .collect();
        let b = (0..d).map(|i| (i as f64 - 5.0) * 0.2).collect();
        let x = (0..d).map(|i| (i as f64 * 0.7).sin()).collect();
        Quadratic { a, b, x }
    }

    fn f(&self, y: &[f64]) -> f64 {
        let d = y.len();
        (0..d)
            .map(|i| {
                0.5 * y[i] * (0..d).map(|j| self.a[i][j] * y[j]).sum::<f64>() + self.b[i] * y[i]
            })
            .sum()
    }

    fn grad(&self) -> Vec<f64> {
        let d = self.x.len();
        (0..d).map(|i| (0..d).map(|j| self.a[i][j] * self.x[j]).sum::<f64>() + self.b[i]).collect()
    }
}

const ANALYTIC_DRAWS: u64 = 20_000;

/// On a quadratic the central difference is exact: `[F(x+νu) − F(x−νu)]/(2ν) = u·∇F` for any ν,
/// so it averages to ∇F even with a large radius — for Gaussian and (with the factor d) sphere
/// directions. The de-biased and the forward-gradient estimators average to ∇F too; so does the
/// forward difference here (its smoothing bias ν/2·E[(uᵀAu)u] vanishes by symmetry on
/// quadratics).
#[test]
fn estimators_are_unbiased_on_a_quadratic() {
    let q = Quadratic::new();
    let grad = q.grad();
    let f = |y: &[f64]| q.f(y);
    let g = Direction::Gaussian;
    let noise = |s| NoiseStream::new(11, 3, s);
    for (name, direction) in [("gaussian", g), ("sphere", Direction::Sphere)] {
        let cd = CentralDifference { rv: 1, nu: 0.5, direction };
        verdict(ANALYTIC_DRAWS, &grad, |s| rule_on(&cd, &f, &q.x, noise(s)))
            .assert_unbiased(&format!("central difference, {name}, quadratic"));
    }
    let debiased = Debiased { rv: 1, nu: 0.5, ratio: 0.5, direction: g };
    verdict(ANALYTIC_DRAWS, &grad, |s| rule_on(&debiased, &f, &q.x, noise(s)))
        .assert_unbiased("de-biased, quadratic");
    let fg = ForwardGradient { rv: 1, projection: Projection::Global, direction: g };
    verdict(ANALYTIC_DRAWS, &grad, |s| forward_gradient_on(&fg, &grad, noise(s)))
        .assert_unbiased("forward gradient, quadratic");
    let fd = ForwardDifference { rv: 1, nu: 0.05, direction: g };
    verdict(ANALYTIC_DRAWS, &grad, |s| rule_on(&fd, &f, &q.x, noise(s)))
        .assert_unbiased("forward difference, quadratic");
}

/// `F(x) = Σ a_i x_i³/6` has `∇F = a⊙x²/2`, and the Gaussian forward difference has
/// `E[G_i] = ∇F_i + ν²·a_i/2` (from `E[u_i⁴] = 3`).
struct Cubic {
    a: Vec<f64>,
    x: Vec<f64>,
}

impl Cubic {
    fn new() -> Self {
        let d = 6usize;
        Cubic {
            a: (0..d).map(|i| 1.0 + i as f64).collect(),
            x: (0..d).map(|i| 0.1 * i as f64 - 0.2).collect(),
        }
    }

    fn f(&self, y: &[f64]) -> f64 {
        self.a.iter().zip(y).map(|(a, y)| a * y.powi(3) / 6.0).sum()
    }

    fn grad(&self) -> Vec<f64> {
        self.a.iter().zip(&self.x).map(|(a, x)| a * x * x / 2.0).collect()
    }
}

/// The forward difference's bias is measurable and shrinks as ν², exactly as predicted.
#[test]
fn forward_difference_bias_is_measurable_and_shrinks_with_nu() {
    let c = Cubic::new();
    let grad = c.grad();
    let f = |y: &[f64]| c.f(y);
    for nu in [0.8f32, 0.4] {
        let fd = ForwardDifference { rv: 1, nu, direction: Direction::Gaussian };
        // the forward difference averages to ∇F_ν = ∇F + ν²a/2 …
        let smoothed: Vec<f64> =
            grad.iter().zip(&c.a).map(|(g, a)| g + (nu as f64).powi(2) * a / 2.0).collect();
        let draws = 40_000;
        let noise = |s| NoiseStream::new(21, 0, s);
        verdict(draws, &smoothed, |s| rule_on(&fd, &f, &c.x, noise(s)))
            .assert_unbiased(&format!("forward difference, ν = {nu}, against ∇F_ν"));
        // … and is visibly not ∇F
        let v = verdict(draws, &grad, |s| rule_on(&fd, &f, &c.x, noise(s)));
        eprintln!("forward difference, ν = {nu}, against ∇F: {v:?}");
        assert!(v.along_z > 10.0 && v.beyond == v.dim, "ν = {nu}: the bias must stand out: {v:?}");
    }
}

/// Requirement of the de-biased construction: where the forward difference with radius ν is
/// measurably biased (the cubic above, ν = 0.8), the de-biased estimator with first radius
/// μ₁ = ν = 0.8 averages to ∇F itself — the same checker that rejects the forward difference
/// accepts it.
#[test]
fn debiased_is_unbiased_where_the_forward_difference_is_not() {
    let c = Cubic::new();
    let grad = c.grad();
    let f = |y: &[f64]| c.f(y);
    let g = Direction::Gaussian;
    let draws = 40_000;
    let noise = |s| NoiseStream::new(31, 1, s);
    let fd = ForwardDifference { rv: 1, nu: 0.8, direction: g };
    let biased = verdict(draws, &grad, |s| rule_on(&fd, &f, &c.x, noise(s)));
    eprintln!("forward difference, ν = 0.8, cubic, against ∇F: {biased:?}");
    assert!(biased.along_z > 10.0, "forward difference must be biased here: {biased:?}");
    for ratio in [0.5, 0.7] {
        let debiased = Debiased { rv: 1, nu: 0.8, ratio, direction: g };
        verdict(draws, &grad, |s| rule_on(&debiased, &f, &c.x, noise(s)))
            .assert_unbiased(&format!("de-biased, c = {ratio}, cubic"));
    }
}

fn logistic_setup(device: &Device) -> (hdo_models::Model, Layout, hdo_core::data::Batch) {
    let split = mnist::bundled(2000).expect("bundled data");
    let shape = DataShape::image(split.train.shape, 10);
    let model = ModelConfig::Logistic {}.init(shape, device).unwrap();
    let layout = Layout::of(&model);
    let model = hdo_core::init::initialize(model, &layout, 5);
    let b = batch(&split.train, &(0..8).collect::<Vec<_>>(), device);
    (model, layout, b)
}

/// Backprop on logistic regression equals the analytic gradient
/// ∇W = Xᵀ(softmax(XW + b) − Y)/B, ∇b = mean(softmax(XW + b) − Y).
#[test]
fn backprop_matches_the_analytic_logistic_gradient() {
    let plain = Device::flex();
    let (model, layout, b) = logistic_setup(&plain);
    let ad_model = burn::module::Module::train(model.clone());
    let ad_batch = batch(
        &mnist::bundled(2000).unwrap().train,
        &(0..8).collect::<Vec<_>>(),
        &plain.clone().autodiff(),
    );
    let est = Backprop
        .estimate(StepInput {
            model: &ad_model,
            batch: &ad_batch,
            layout: &layout,
            noise: NoiseStream::new(0, 0, 0),
            stack: 1,
            batcher: None,
        })
        .unwrap();
    let got = dense(&est.gradient, &layout, &plain);
    // analytic, on the host
    let ps = params::collect(&model).into_iter().map(common::host).collect::<Vec<_>>();
    let (w, bias) = (&ps[0], &ps[1]); // weight [784, 10], bias [10]
    let hdo_models::Input::Images(x) = b.input.clone() else { panic!("image batch expected") };
    let x = common::host(x.reshape([8 * 784]));
    let y: Vec<i64> = b.targets.clone().into_data().convert::<i64>().try_into_vec::<i64>().unwrap();
    let (mut gw, mut gb) = (vec![0f64; 7840], vec![0f64; 10]);
    for n in 0..8 {
        let logits: Vec<f64> = (0..10)
            .map(|c| {
                bias[c] as f64
                    + (0..784).map(|i| x[n * 784 + i] as f64 * w[i * 10 + c] as f64).sum::<f64>()
            })
            .collect();
        let m = logits.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
        for c in 0..10 {
            let r = ((logits[c] - m).exp() / z - if y[n] as usize == c { 1.0 } else { 0.0 }) / 8.0;
            gb[c] += r;
            for i in 0..784 {
                gw[i * 10 + c] += x[n * 784 + i] as f64 * r;
            }
        }
    }
    let want: Vec<f64> = gw.into_iter().chain(gb).collect();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((*g as f64 - w).abs() < 1e-5 + 1e-4 * w.abs(), "entry {i}: {g} vs {w}");
    }
    assert_eq!((est.forward_passes, est.backward_passes), (1, 1));
}

/// Mean of `draws` single-direction estimates of `est` on the logistic model against the
/// backprop gradient on the same batch.
fn logistic_verdict(est: &dyn Estimator, draws: u64, autodiff: bool) -> Verdict {
    let plain = Device::flex();
    let (model, layout, b) = logistic_setup(&plain);
    let ad_model = burn::module::Module::train(model.clone());
    let ad_batch = batch(
        &mnist::bundled(2000).unwrap().train,
        &(0..8).collect::<Vec<_>>(),
        &plain.clone().autodiff(),
    );
    let noise0 = NoiseStream::new(0, 0, 0);
    let truth = dense(
        &Backprop
            .estimate(StepInput {
                model: &ad_model,
                batch: &ad_batch,
                layout: &layout,
                noise: noise0,
                stack: 1,
                batcher: None,
            })
            .unwrap()
            .gradient,
        &layout,
        &plain,
    );
    let truth: Vec<f64> = truth.into_iter().map(f64::from).collect();
    let (m, bt) = if autodiff { (&ad_model, &ad_batch) } else { (&model, &b) };
    let sizes: Vec<usize> = layout.trainable().map(|t| t.numel).collect();
    verdict_by(draws, &truth, &sizes, |s| {
        let e = est
            .estimate(StepInput {
                model: m,
                batch: bt,
                layout: &layout,
                noise: NoiseStream::new(5, 2, s),
                stack: 1,
                batcher: None,
            })
            .unwrap();
        dense(&e.gradient, &layout, &plain)
    })
}

/// Draws per estimator on the logistic model (d = 7,850).
const LOGISTIC_DRAWS: u64 = 10_000;

/// The forward-only estimator, run through the real model path (perturbed copies, regenerated
/// directions), averages to the backprop gradient on the same batch up to its O(ν²) smoothing
/// bias, invisible at ν = 1e-3.
#[test]
fn forward_difference_on_the_model_averages_to_the_backprop_gradient() {
    let fd = ForwardDifference { rv: 1, nu: 1e-3, direction: Direction::Gaussian };
    logistic_verdict(&fd, LOGISTIC_DRAWS, false).assert_unbiased("forward difference, ν = 1e-3");
}

#[test]
fn central_difference_sphere_directions_and_debiased_are_unbiased_on_the_logistic_model() {
    let g = Direction::Gaussian;
    let central = CentralDifference { rv: 1, nu: 1e-2, direction: g };
    logistic_verdict(&central, LOGISTIC_DRAWS, false).assert_unbiased("central, gaussian");
    // sphere directions only average to ∇F with their factor d
    let sphere = CentralDifference { rv: 1, nu: 1e-2, direction: Direction::Sphere };
    logistic_verdict(&sphere, LOGISTIC_DRAWS, false).assert_unbiased("central, sphere");
    // a large first radius: no smoothing bias despite it
    let debiased = Debiased { rv: 1, nu: 0.5, ratio: 0.5, direction: g };
    logistic_verdict(&debiased, LOGISTIC_DRAWS, false).assert_unbiased("debiased");
}

#[test]
fn simulated_forward_gradient_is_unbiased_in_both_projections() {
    for projection in [Projection::Global, Projection::PerTensor] {
        let est = SimulatedForwardGradient { rv: 1, projection, direction: Direction::Gaussian };
        logistic_verdict(&est, LOGISTIC_DRAWS, true)
            .assert_unbiased(&format!("simulated, {projection:?}"));
    }
}

#[test]
fn forward_gradient_by_forward_mode_is_unbiased_in_both_projections() {
    for projection in [Projection::Global, Projection::PerTensor] {
        let est = ForwardGradient { rv: 1, projection, direction: Direction::Gaussian };
        logistic_verdict(&est, LOGISTIC_DRAWS, false)
            .assert_unbiased(&format!("forward gradient, {projection:?}"));
    }
}

/// `forward_gradient` (forward mode, the estimator's own lazy path) against
/// `simulated_forward_gradient` (autodiff, then projection) on one model and batch: the same
/// estimate, draw for draw, in both projections, one direction at a time and stacked 3.
fn same_as_simulated(
    what: &str,
    model: &hdo_models::Model,
    b: &hdo_core::data::Batch,
    ad_b: &hdo_core::data::Batch,
) {
    let plain = Device::flex();
    let layout = Layout::of(model);
    let ad_model = burn::module::Module::train(model.clone());
    for (projection, stack) in [
        (Projection::Global, 1),
        (Projection::Global, 3),
        (Projection::PerTensor, 1),
        (Projection::PerTensor, 3),
    ] {
        let noise = NoiseStream::new(9, 1, 4);
        let input =
            |m, bt| StepInput { model: m, batch: bt, layout: &layout, noise, stack, batcher: None };
        let direction = Direction::Gaussian;
        let real =
            ForwardGradient { rv: 5, projection, direction }.estimate(input(model, b)).unwrap();
        let sim = SimulatedForwardGradient { rv: 5, projection, direction }
            .estimate(input(&ad_model, ad_b))
            .unwrap();
        let what = format!("{what}, {projection:?}, stack {stack}");
        assert!(
            (real.loss - sim.loss).abs() < 1e-5,
            "{what}: losses {} vs {}",
            real.loss,
            sim.loss
        );
        let (r, s) =
            (dense(&real.gradient, &layout, &plain), dense(&sim.gradient, &layout, &plain));
        let diff: f64 = r.iter().zip(&s).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
        let norm: f64 = s.iter().map(|b| (*b as f64).powi(2)).sum();
        let rel = (diff / norm).sqrt();
        eprintln!("{what}: relative difference {rel:.1e}");
        assert!(norm > 0.0 && rel < 1e-5, "{what}: relative difference {rel}");
    }
}

/// The authors' simulation (backprop, then project) and the real forward-mode forward gradient
/// are the same estimator: for the same parameters, minibatch and seed they give the same
/// estimate, draw for draw — on every model (the CNN in training mode, batch norm included; the
/// Transformer with dropout in all three poolings), in both projections and with stacked
/// directions. This checks the forward-mode rules the estimator actually runs against autodiff.
/// (Trajectories of whole runs still drift apart by float rounding.)
#[test]
fn forward_gradient_equals_the_simulated_one_draw_for_draw() {
    use hdo_models::{CnnConfig, MlpConfig};
    let plain = Device::flex();
    let split = mnist::bundled(2000).expect("bundled data");
    let shape = DataShape::image(split.train.shape, 10);
    let rows: Vec<usize> = (0..16).collect();
    let b = batch(&split.train, &rows, &plain);
    let ad_b = batch(&split.train, &rows, &plain.clone().autodiff());
    for config in [
        ModelConfig::Logistic {},
        ModelConfig::Mlp(MlpConfig { hidden: vec![32, 16] }),
        ModelConfig::Cnn(CnnConfig { channels: [4, 6, 8], hidden: vec![16] }),
        ModelConfig::Cnn(Default::default()),
    ] {
        let model = config.init(shape, &plain).unwrap();
        let layout = Layout::of(&model);
        let model = hdo_core::init::initialize(model, &layout, 3);
        same_as_simulated(config.name(), &model, &b, &ad_b);
    }
    use hdo_models::{Pooling, TransformerConfig};
    let (set, shape) = common::tiny_brackets();
    let idx: Vec<usize> = (0..12).collect();
    let (b, ad_b) = (set.batch(&idx, &plain), set.batch(&idx, &plain.clone().autodiff()));
    for pooling in [Pooling::Flatten, Pooling::Mean, Pooling::Last] {
        let tcfg = TransformerConfig { pooling, dropout: 0.1, ..TransformerConfig::default() };
        let model = ModelConfig::Transformer(tcfg).init(shape, &plain).unwrap();
        let layout = Layout::of(&model);
        let model = hdo_core::init::initialize(model, &layout, 3);
        same_as_simulated(&format!("transformer {pooling:?}"), &model, &b, &ad_b);
    }
}

/// What seed-plus-scalar communication relies on: another node that knows only an estimate's
/// noise coordinates (run seed, node, step) and its coefficients regenerates it bit for bit —
/// here on another thread, from a freshly built stream — while a different node's stream gives
/// other directions.
#[test]
fn another_node_regenerates_an_estimate_bit_for_bit() {
    let plain = Device::flex();
    let (model, layout, b) = logistic_setup(&plain);
    let (seed, node, step) = (77, 3, 12);
    let est = ForwardDifference { rv: 4, nu: 1e-2, direction: Direction::Sphere }
        .estimate(StepInput {
            model: &model,
            batch: &b,
            layout: &layout,
            noise: NoiseStream::new(seed, node, step),
            stack: 1,
            batcher: None,
        })
        .unwrap();
    let Gradient::Seeded(mine) = &est.gradient else { panic!("a seeded estimate expected") };
    let message = (mine.directions, mine.blocks, mine.coefficients.clone());
    let infos: Vec<TensorInfo> = layout.trainable().cloned().collect();
    let regenerate = move |node: u64| {
        let (directions, blocks, coefficients) = message.clone();
        let g = SeededGradient {
            noise: NoiseStream::new(seed, node, step),
            directions,
            blocks,
            coefficients,
        };
        infos.iter().map(|i| g.materialize(i.trainable.unwrap(), i)).collect::<Vec<_>>()
    };
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let other = regenerate.clone();
    let theirs = std::thread::spawn(move || regenerate(node)).join().unwrap();
    let wrong = std::thread::spawn(move || other(node + 1)).join().unwrap();
    for (l, info) in layout.trainable().enumerate() {
        let here = mine.materialize(l, info);
        assert!(here.iter().any(|&v| v != 0.0));
        assert_eq!(bits(&here), bits(&theirs[l]), "tensor {l} differs when regenerated");
        assert_ne!(bits(&here), bits(&wrong[l]), "another node's stream must differ");
    }
}

/// The checker can fail where it must: an estimator right on 2,000 coordinates but 15% too large
/// on a 10-value tensor (a wrong bias gradient, say) passes the whole-vector criteria that were
/// used before, and is caught tensor by tensor.
#[test]
fn the_checker_catches_one_wrong_small_tensor() {
    let (big, small) = (2_000usize, 10usize);
    let truth: Vec<f64> = (0..big + small).map(|i| ((i % 7) as f64 - 3.0) * 0.1).collect();
    let sample = |s: u64| {
        let mut u = vec![0f32; big + small];
        NoiseStream::new(9, 0, s).fill_uniform(0, 0, -1.0, 1.0, &mut u);
        truth
            .iter()
            .zip(&u)
            .enumerate()
            .map(|(i, (&g, &z))| (g * if i >= big { 1.15 } else { 1.0 }) as f32 + z)
            .collect::<Vec<f32>>()
    };
    let whole = verdict(4_000, &truth, sample);
    // the whole-vector criteria used before: ≤ 1% beyond 3 SE, along ∇F, ‖mean − ∇F‖²
    let old = whole.beyond <= whole.dim / 100
        && whole.along_z.abs() <= 3.0
        && (0.85..1.15).contains(&whole.ratio);
    assert!(old, "the old criteria let it through: {whole:?}");
    let split = verdict_by(4_000, &truth, &[big, small], sample);
    let caught = std::panic::catch_unwind(|| split.assert_unbiased("mutant"));
    assert!(caught.is_err(), "{split:?}");
    // and the same estimator without the error passes
    let right = |s: u64| {
        let mut u = vec![0f32; big + small];
        NoiseStream::new(9, 0, s).fill_uniform(0, 0, -1.0, 1.0, &mut u);
        truth.iter().zip(&u).map(|(&g, &z)| g as f32 + z).collect::<Vec<f32>>()
    };
    verdict_by(4_000, &truth, &[big, small], right).assert_unbiased("right");
}
