//! Forward-mode derivatives of every model as a whole against autodiff (each layer rule on its
//! own is checked in `models/src/layers/check.rs`).

#![allow(clippy::unwrap_used)] // tests may panic on setup failures
mod common;

use burn::module::Module;
use burn::prelude::*;
use hdo_core::data::batch;
use hdo_core::estimator::{Backprop, Estimator, Gradient, StepInput, direction_stack};
use hdo_core::noise::NoiseStream;
use hdo_core::params::Layout;
use hdo_datasets::mnist;
use hdo_models::{CnnConfig, DataShape, ForwardCtx, MlpConfig, ModelConfig, layers};

/// Relative error of the forward-mode `u·∇F` against `u·(autodiff ∇F)` for one model, in the
/// given BatchNorm mode, over a few random directions.
fn check(config: ModelConfig, train: bool) {
    let plain = Device::flex();
    let split = mnist::bundled(2000).unwrap();
    let shape = DataShape::image(split.train.shape, 10);
    let model = config.init(shape, &plain).unwrap();
    let layout = Layout::of(&model);
    let mut model = hdo_core::init::initialize(model, &layout, 9);
    let idx: Vec<usize> = (0..16).collect();
    if !train {
        // give the running statistics non-trivial values first
        let b = batch(&split.train, &idx, &plain);
        let mut ctx = ForwardCtx::train();
        model.forward(&b.input, &mut ctx);
        model = hdo_core::optimizer::update_running_stats(model, &ctx.batch_stats).unwrap();
    }
    let b = batch(&split.train, &idx, &plain);
    // autodiff gradient, in the same BatchNorm mode
    let ad = model.clone().train();
    let ad_batch = batch(&split.train, &idx, &plain.clone().autodiff());
    let grad: Vec<f32> = if train {
        let e = Backprop
            .estimate(StepInput {
                model: &ad,
                batch: &ad_batch,
                layout: &layout,
                noise: NoiseStream::new(0, 0, 0),
                stack: 1,
                batcher: None,
            })
            .unwrap();
        let Gradient::Dense(g) = e.gradient else { panic!("dense expected") };
        g.into_iter().flat_map(common::host).collect()
    } else {
        let logits = ad.forward(&ad_batch.input, &mut ForwardCtx::eval());
        let loss = hdo_core::estimator::cross_entropy(logits, &ad_batch.targets);
        let grads = loss.backward();
        struct V<'a>(&'a burn::tensor::Gradients, Vec<f32>, Vec<String>);
        impl burn::module::ModuleVisitor for V<'_> {
            fn enter_module(&mut self, n: &str, _: &str) {
                self.2.push(n.into());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.2.pop();
            }
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
                if self.2.last().is_some_and(|n| n.starts_with("running_")) {
                    return;
                }
                let v = p.val();
                let n = v.shape().num_elements();
                let g =
                    v.grad(self.0).map(|g| common::host(g.reshape([n]))).unwrap_or(vec![0.0; n]);
                self.1.extend(g);
            }
        }
        let mut v = V(&grads, Vec::new(), Vec::new());
        ad.visit(&mut v);
        v.1
    };
    for k in 0..3u32 {
        let noise = NoiseStream::new(4, 1, k as u64);
        let dir = direction_stack(&model, &layout, noise, &[(k, 1.0)]);
        let mut ctx = if train { ForwardCtx::train() } else { ForwardCtx::eval() };
        let logits = model.forward_jvp_stacked(&dir, &b.input, &mut ctx).unwrap();
        let (loss, dloss) = layers::cross_entropy(logits, &b.targets, 1);
        let dloss = dloss.into_scalar::<f32>() as f64;
        // u·∇F from autodiff, u regenerated on the host
        let mut u = vec![0f32; layout.dim as usize];
        noise.fill_gaussian(k, 0, &mut u);
        let want: f64 = u.iter().zip(&grad).map(|(&a, &g)| a as f64 * g as f64).sum();
        let rel = (dloss - want).abs() / want.abs().max(1e-3);
        eprintln!(
            "{} train={train} k={k}: jvp {dloss:.6e} autodiff {want:.6e} rel {rel:.1e}",
            config.name()
        );
        assert!(
            rel <= 1e-4,
            "{config:?} train={train} direction {k}: jvp {dloss} vs autodiff {want} (rel {rel:e})"
        );
        // the primal is the ordinary forward pass
        let plain_loss = hdo_core::estimator::cross_entropy(
            model.forward(
                &b.input,
                &mut if train { ForwardCtx::train() } else { ForwardCtx::eval() },
            ),
            &b.targets,
        );
        let (a, p) = (loss.into_scalar::<f32>(), plain_loss.into_scalar::<f32>());
        assert!((a - p).abs() <= 1e-5 * p.abs().max(1.0), "primal {a} vs forward {p}");
    }
}

#[test]
fn logistic_jvp_matches_autodiff() {
    check(ModelConfig::Logistic {}, true);
}

#[test]
fn mlp_jvp_matches_autodiff() {
    check(ModelConfig::Mlp(MlpConfig { hidden: vec![32, 16] }), true);
}

#[test]
fn cnn_jvp_matches_autodiff_with_batch_statistics() {
    check(ModelConfig::Cnn(CnnConfig { channels: [4, 6, 8], hidden: vec![16] }), true);
}

#[test]
fn forward_gradients_of_the_scaled_hinge_loss_match_autodiff() {
    use hdo_core::estimator::{Direction, ForwardGradient, Projection};
    let sets: Vec<String> = [
        "model={kind=\"linear\", loss=\"hinge\", scale=2.5}",
        "data.binary=true",
        "population.fo=1",
        "population.zo=0",
    ]
    .map(String::from)
    .to_vec();
    let exp = hdo_core::Experiment::new(hdo_core::ExperimentConfig::from_toml("", &sets).unwrap())
        .unwrap();
    let (model, layout) = (&exp.population.nodes[0].model, &exp.population.layout);
    let model = hdo_core::init::initialize(model.clone(), layout, 2);
    let plain = Device::flex();
    let idx: Vec<usize> = (0..32).collect();
    let (b, ad_b) =
        (exp.data.train.batch(&idx, &plain), exp.data.train.batch(&idx, &plain.clone().autodiff()));
    let noise = NoiseStream::new(1, 0, 0);
    let input = |model, batch| StepInput { model, batch, layout, noise, stack: 1, batcher: None };
    let ad = model.clone().train();
    let e = Backprop.estimate(input(&ad, &ad_b)).unwrap();
    let Gradient::Dense(g) = e.gradient else { panic!("dense expected") };
    let grad: Vec<f32> = g.into_iter().flat_map(common::host).collect();
    let fg =
        ForwardGradient { rv: 1, projection: Projection::Global, direction: Direction::Gaussian };
    let f = fg.estimate(input(&model, &b)).unwrap();
    let Gradient::Seeded(s) = f.gradient else { panic!("seeded expected") };
    let mut u = vec![0f32; layout.dim as usize];
    noise.fill_gaussian(0, 0, &mut u);
    let want: f64 = u.iter().zip(&grad).map(|(&a, &g)| a as f64 * g as f64).sum();
    let got = s.coefficients[0] as f64;
    assert!((got - want).abs() <= 1e-4 * want.abs().max(1e-3), "u·∇F {got} vs autodiff {want}");
    assert!((f.loss - e.loss).abs() <= 1e-5 * e.loss.abs().max(1.0), "{} vs {}", f.loss, e.loss);
}

#[test]
fn resnet_jvp_matches_autodiff_in_both_modes() {
    use hdo_models::{ResNetConfig, Stem};
    for stem in [Stem::Imagenet, Stem::Cifar] {
        for train in [true, false] {
            check(ModelConfig::ResNet18(ResNetConfig { stem, width: 2 }), train);
        }
    }
}

#[test]
fn cnn_jvp_matches_autodiff_with_running_statistics() {
    check(ModelConfig::Cnn(CnnConfig { channels: [4, 6, 8], hidden: vec![16] }), false);
}

/// The Transformer's forward mode (embeddings, positions, layer norm, causal attention, GELU,
/// residuals, dropout with a shared mask, flatten/mean/last pooling) against autodiff.
#[test]
fn transformer_jvp_matches_autodiff() {
    use hdo_models::{Pooling, TransformerConfig};
    let plain = Device::flex();
    let (set, shape) = common::tiny_brackets();
    let idx: Vec<usize> = (0..12).collect();
    for pooling in [Pooling::Flatten, Pooling::Mean, Pooling::Last] {
        let tcfg = TransformerConfig { pooling, dropout: 0.1, ..TransformerConfig::default() };
        let model = ModelConfig::Transformer(tcfg).init(shape, &plain).unwrap();
        let layout = Layout::of(&model);
        let model = hdo_core::init::initialize(model, &layout, 3);
        let b = set.batch(&idx, &plain);
        let ad = model.clone().train();
        let ad_b = set.batch(&idx, &plain.clone().autodiff());
        let noise = NoiseStream::new(4, 1, 0);
        // both passes use the step's dropout masks
        let e = Backprop
            .estimate(StepInput {
                model: &ad,
                batch: &ad_b,
                layout: &layout,
                noise,
                stack: 1,
                batcher: None,
            })
            .unwrap();
        let Gradient::Dense(g) = e.gradient else { panic!("dense expected") };
        let grad: Vec<f32> = g.into_iter().flat_map(common::host).collect();
        let dir = direction_stack(&model, &layout, noise, &[(0, 1.0)]);
        let mut ctx = ForwardCtx::train_seeded(noise.dropout_seed());
        let logits = model.forward_jvp_stacked(&dir, &b.input, &mut ctx).unwrap();
        let (loss, dloss) = layers::cross_entropy(logits, &b.targets, 1);
        let mut u = vec![0f32; layout.dim as usize];
        noise.fill_gaussian(0, 0, &mut u);
        let want: f64 = u.iter().zip(&grad).map(|(&a, &g)| a as f64 * g as f64).sum();
        let got = dloss.into_scalar::<f32>() as f64;
        let rel = (got - want).abs() / want.abs().max(1e-3);
        assert!(rel <= 1e-4, "{pooling:?}: jvp {got} vs autodiff {want} (rel {rel:e})");
        assert!((loss.into_scalar::<f32>() - e.loss).abs() < 1e-5, "primal loss differs");
    }
}

/// Causal masking: changing a later token never changes an earlier position's hidden state
/// (seen through `last` pooling of truncated prefixes being unaffected, and directly through the
/// attention output).
#[test]
fn transformer_attention_is_causal_and_shapes_are_right() {
    use hdo_models::TransformerConfig;
    use hdo_models::exec::Rule;
    use hdo_models::layers::CausalAttention;
    let plain = Device::flex();
    let shape =
        DataShape { input: hdo_models::InputShape::Tokens { vocab: 6, len: 10 }, classes: 2 };
    let model = ModelConfig::Transformer(TransformerConfig::default()).init(shape, &plain).unwrap();
    let layout = Layout::of(&model);
    let model = hdo_core::init::initialize(model, &layout, 1);
    let hdo_models::Model::Transformer(t) = &model else { panic!() };
    let tokens = |last: i64| {
        let v: Vec<i64> = vec![0, 4, 4, 5, 5, 4, 5, 1, 2, last];
        Tensor::<2, Int>::from_data(TensorData::new(v, [1, 10]), &plain)
    };
    let hidden = |tok: Tensor<2, Int>| {
        let h = t.tokens.forward(tok) + t.positions.val().unsqueeze_dim(0);
        let block = &t.blocks[0];
        let qkv = block.qkv.forward(block.norm1.forward(h));
        let a = CausalAttention { heads: t.heads }.plain(qkv, &mut ForwardCtx::eval());
        block.proj.forward(a)
    };
    let a = common::host(hidden(tokens(2)).reshape([40]));
    let b = common::host(hidden(tokens(5)).reshape([40]));
    assert_eq!(a[..36], b[..36], "positions 0..9 must not see token 9");
    assert_ne!(a[36..], b[36..], "position 9 sees its own token");
    let logits = model.forward(&hdo_models::Input::Tokens(tokens(2)), &mut ForwardCtx::eval());
    assert_eq!(logits.dims(), [1, 2]);
}

/// With `mean` or `last` pooling the output ignores trailing padding, so a batch cut to its
/// longest string (`data.pad_to = "batch"`) gives the same logits as fixed-length padding.
#[test]
fn transformer_mean_and_last_pooling_ignore_padding() {
    use hdo_datasets::brackets::{BracketsConfig, generate_split, tokenize};
    use hdo_models::{Pooling, TransformerConfig};
    let plain = Device::flex();
    let cfg = BracketsConfig { train: 64, validation: 16, max_len: 8, hard_fraction: 0.5, seed: 0 };
    let (train, _) = generate_split(&cfg, 2).unwrap();
    let fixed = tokenize(&train, 18).unwrap();
    let mut trimmed = fixed.clone();
    trimmed.pad_to_batch = true;
    // 16 examples per length 2, 4, 6, 8: these have strings of 2 to 6 brackets, 8 tokens at most
    let idx: Vec<usize> = vec![0, 1, 20, 21, 40, 41];
    let (a, b) = (
        hdo_core::data::Examples::Tokens(fixed).batch(&idx, &plain),
        hdo_core::data::Examples::Tokens(trimmed).batch(&idx, &plain),
    );
    let hdo_models::Input::Tokens(ids) = &b.input else { panic!() };
    assert_eq!(ids.dims(), [6, 8]);
    let shape =
        DataShape { input: hdo_models::InputShape::Tokens { vocab: 6, len: 18 }, classes: 2 };
    for pooling in [Pooling::Mean, Pooling::Last] {
        let model =
            ModelConfig::Transformer(TransformerConfig { pooling, ..TransformerConfig::default() })
                .init(shape, &plain)
                .unwrap();
        let layout = Layout::of(&model);
        let model = hdo_core::init::initialize(model, &layout, 5);
        let la = common::host(model.forward(&a.input, &mut ForwardCtx::eval()).reshape([12]));
        let lb = common::host(model.forward(&b.input, &mut ForwardCtx::eval()).reshape([12]));
        for (x, y) in la.iter().zip(&lb) {
            assert!((x - y).abs() < 1e-5, "{pooling:?}: {x} vs {y}");
        }
    }
    let err = hdo_core::ExperimentConfig::from_toml(
        "[model]\nkind = \"transformer\"\n[data]\ndataset = \"brackets\"\npad_to = \"batch\"",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("data.pad_to"), "{err}");
}
