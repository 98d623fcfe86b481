//! Statistical checks of the estimators.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures
mod common;

use burn::prelude::*;
use hdo_core::data::batch;
use hdo_core::estimator::{
    Backprop, CentralDifference, Debiased, Direction, Estimator, ForwardDifference,
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
        out.extend(params::download(g.tensor(l, info, device)));
    }
    out
}

/// F(x) = ½ Σ a_i x_i² + b·x has ∇F = a⊙x + b, and for a quadratic the Gaussian-smoothed
/// gradient ∇F_ν equals ∇F. The forward-difference estimate, built exactly as the ZO nodes build
/// it (regenerated directions, one coefficient per direction), must average to it.
#[test]
fn forward_difference_is_unbiased_for_grad_f_nu_on_a_quadratic() {
    let d = 12usize;
    let a: Vec<f32> = (0..d).map(|i| 0.5 + i as f32 * 0.3).collect();
    let b: Vec<f32> = (0..d).map(|i| (i as f32 - 5.0) * 0.2).collect();
    let x: Vec<f32> = (0..d).map(|i| (i as f32 * 0.7).sin()).collect();
    let f = |y: &[f32]| -> f64 {
        (0..d).map(|i| 0.5 * a[i] as f64 * (y[i] as f64).powi(2) + b[i] as f64 * y[i] as f64).sum()
    };
    let grad: Vec<f64> = (0..d).map(|i| a[i] as f64 * x[i] as f64 + b[i] as f64).collect();
    let info =
        TensorInfo { path: "x".into(), shape: vec![d], numel: d, trainable: Some(0), offset: 0 };
    let nu = 0.05f32;
    let draws = 20_000u64;
    let (mut sum, mut sq) = (vec![0f64; d], vec![0f64; d]);
    for s in 0..draws {
        let noise = NoiseStream::new(11, 0, s);
        let mut u = vec![0f32; d];
        noise.fill_gaussian(0, 0, &mut u);
        let moved: Vec<f32> = x.iter().zip(&u).map(|(xi, ui)| xi + nu * ui).collect();
        let c = ((f(&moved) - f(&x)) / nu as f64) as f32;
        let g = SeededGradient { noise, directions: 1, blocks: 1, coefficients: vec![c] }
            .materialize(0, &info);
        for i in 0..d {
            sum[i] += g[i] as f64;
            sq[i] += (g[i] as f64).powi(2);
        }
    }
    for i in 0..d {
        let mean = sum[i] / draws as f64;
        let se = ((sq[i] / draws as f64 - mean * mean) / draws as f64).sqrt();
        assert!(
            (mean - grad[i]).abs() < 3.0 * se,
            "coordinate {i}: mean {mean} vs ∇F {} (se {se})",
            grad[i]
        );
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
    let ps = params::collect(&model).into_iter().map(params::download).collect::<Vec<_>>();
    let (w, bias) = (&ps[0], &ps[1]); // weight [784, 10], bias [10]
    let hdo_models::Input::Images(x) = b.input.clone() else { panic!("image batch expected") };
    let x = params::download(x.reshape([8 * 784]));
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

/// The forward-only estimator, run through the real model path (perturbed copies, regenerated
/// directions), averages to the backprop gradient on the same batch up to its O(ν²) smoothing
/// bias, invisible at ν = 1e-3.
#[test]
fn forward_difference_on_the_model_averages_to_the_backprop_gradient() {
    let fd = ForwardDifference { rv: 1, nu: 1e-3, direction: Direction::Gaussian };
    assert_unbiased("forward difference, ν = 1e-3", &fd, 3000, false);
}

/// Mean of `draws` single-direction estimates against the backprop gradient `truth`:
/// returns `‖mean − ∇F‖² / (Σ_i Var_i / N)`: about 1 for an unbiased estimator, ≫ 1 when a bias
/// stands out of the noise.
fn bias_ratio(est: &dyn Estimator, draws: u64, autodiff: bool) -> f64 {
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
    let (m, bt) = if autodiff { (&ad_model, &ad_batch) } else { (&model, &b) };
    let mut sum = vec![0f64; truth.len()];
    let mut sq = vec![0f64; truth.len()];
    for s in 0..draws {
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
        for (i, g) in dense(&e.gradient, &layout, &plain).into_iter().enumerate() {
            sum[i] += g as f64;
            sq[i] += (g as f64).powi(2);
        }
    }
    let n = draws as f64;
    let err: f64 = (0..truth.len()).map(|i| (sum[i] / n - truth[i] as f64).powi(2)).sum();
    let expected: f64 = (0..truth.len()).map(|i| (sq[i] / n - (sum[i] / n).powi(2)) / n).sum();
    err / expected
}

/// Mean within the noise of ∇F (see [`bias_ratio`]).
fn assert_unbiased(name: &str, est: &dyn Estimator, draws: u64, autodiff: bool) {
    let ratio = bias_ratio(est, draws, autodiff);
    assert!(
        (0.8..1.2).contains(&ratio),
        "{name}: ‖mean − ∇F‖² is {ratio}× what the noise explains"
    );
}

#[test]
fn central_difference_sphere_directions_and_debiased_are_unbiased() {
    let g = Direction::Gaussian;
    assert_unbiased(
        "central, gaussian",
        &CentralDifference { rv: 1, nu: 1e-2, direction: g },
        4000,
        false,
    );
    // sphere directions only average to ∇F with their factor d
    let sphere = CentralDifference { rv: 1, nu: 1e-2, direction: Direction::Sphere };
    assert_unbiased("central, sphere", &sphere, 4000, false);
    // a large first radius: no smoothing bias despite it
    assert_unbiased(
        "debiased",
        &Debiased { rv: 1, nu: 0.5, ratio: 0.5, direction: g },
        4000,
        false,
    );
}

/// On the cubic `F(x) = Σ a_i x_i³/6`, `∇F = a⊙x²/2` and the Gaussian forward difference has
/// `E[G_i] = ∇F_i + ν²·a_i/2` (from `E[u_i⁴] = 3`): a bias that is measurable and shrinks as ν².
#[test]
fn forward_difference_bias_is_measurable_and_shrinks_with_nu() {
    let d = 6usize;
    let a: Vec<f64> = (0..d).map(|i| 1.0 + i as f64).collect();
    // at x = 0 the gradient is 0, so what the mean shows is the bias alone
    let x: Vec<f64> = vec![0.0; d];
    let f = |y: &[f64]| -> f64 { (0..d).map(|i| a[i] * y[i].powi(3) / 6.0).sum() };
    let info =
        TensorInfo { path: "x".into(), shape: vec![d], numel: d, trainable: Some(0), offset: 0 };
    let mean_bias = |nu: f64| -> Vec<(f64, f64)> {
        let draws = 40_000u64;
        let (mut sum, mut sq) = (vec![0f64; d], vec![0f64; d]);
        for s in 0..draws {
            let noise = NoiseStream::new(21, 0, s);
            let mut u = vec![0f32; d];
            noise.fill_gaussian(0, 0, &mut u);
            let moved: Vec<f64> = (0..d).map(|i| x[i] + nu * u[i] as f64).collect();
            let c = ((f(&moved) - f(&x)) / nu) as f32;
            let g = SeededGradient { noise, directions: 1, blocks: 1, coefficients: vec![c] }
                .materialize(0, &info);
            for i in 0..d {
                sum[i] += g[i] as f64;
                sq[i] += (g[i] as f64).powi(2);
            }
        }
        let n = draws as f64;
        (0..d)
            .map(|i| {
                let mean = sum[i] / n;
                let se = ((sq[i] / n - mean * mean) / n).sqrt();
                (mean - a[i] * x[i] * x[i] / 2.0, se)
            })
            .collect()
    };
    for nu in [0.8, 0.4] {
        for (i, (bias, se)) in mean_bias(nu).into_iter().enumerate() {
            let predicted = nu * nu * a[i] / 2.0;
            assert!(
                (bias - predicted).abs() < 3.5 * se,
                "ν={nu} coordinate {i}: bias {bias} vs ν²a/2 = {predicted} (se {se})"
            );
            assert!(predicted > 6.0 * se, "the bias must stand out of the noise");
        }
    }
}

#[test]
fn simulated_forward_gradient_is_unbiased_in_both_projections() {
    for projection in [Projection::Global, Projection::PerTensor] {
        let est = SimulatedForwardGradient { rv: 1, projection, direction: Direction::Gaussian };
        assert_unbiased(&format!("simulated, {projection:?}"), &est, 3000, true);
    }
}

#[test]
fn forward_gradient_by_forward_mode_is_unbiased_in_both_projections() {
    for (projection, draws) in [(Projection::Global, 3000), (Projection::PerTensor, 1500)] {
        let est = ForwardGradient { rv: 1, projection, direction: Direction::Gaussian };
        assert_unbiased(&format!("forward gradient, {projection:?}"), &est, draws, false);
    }
}

/// The authors' simulation (backprop, then project) and the real forward-mode forward gradient
/// are the same estimator: for the same parameters, minibatch and seed they give the same
/// estimate, draw for draw — on the CNN in training mode, batch norm included, in both projections
/// and with stacked directions. (Trajectories of whole runs still drift apart by float rounding.)
#[test]
fn forward_gradient_equals_the_simulated_one_draw_for_draw() {
    let plain = Device::flex();
    let split = mnist::bundled(2000).expect("bundled data");
    let shape = DataShape::image(split.train.shape, 10);
    let model = ModelConfig::Cnn(Default::default()).init(shape, &plain).unwrap();
    let layout = Layout::of(&model);
    let model = hdo_core::init::initialize(model, &layout, 3);
    let ad_model = burn::module::Module::train(model.clone());
    let rows: Vec<usize> = (0..16).collect();
    let b = batch(&split.train, &rows, &plain);
    let ad_batch = batch(&split.train, &rows, &plain.clone().autodiff());
    for (projection, stack) in
        [(Projection::Global, 1), (Projection::Global, 3), (Projection::PerTensor, 1)]
    {
        let noise = NoiseStream::new(9, 1, 4);
        let input =
            |m, bt| StepInput { model: m, batch: bt, layout: &layout, noise, stack, batcher: None };
        let direction = Direction::Gaussian;
        let real =
            ForwardGradient { rv: 5, projection, direction }.estimate(input(&model, &b)).unwrap();
        let sim = SimulatedForwardGradient { rv: 5, projection, direction }
            .estimate(input(&ad_model, &ad_batch))
            .unwrap();
        assert!((real.loss - sim.loss).abs() < 1e-5, "losses {} vs {}", real.loss, sim.loss);
        let (r, s) =
            (dense(&real.gradient, &layout, &plain), dense(&sim.gradient, &layout, &plain));
        let diff: f64 = r.iter().zip(&s).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
        let norm: f64 = s.iter().map(|b| (*b as f64).powi(2)).sum();
        let rel = (diff / norm).sqrt();
        assert!(rel < 1e-5, "{projection:?}, stack {stack}: relative difference {rel}");
        assert!(norm > 0.0);
    }
}
