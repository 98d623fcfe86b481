//! Forward-mode derivatives against autodiff: each layer rule of `hdo_models::jvp` on its own
//! (linear, convolution, batch norm in both modes, ReLU, GELU, max-pooling, layer norm, causal
//! softmax attention, embeddings, learned positions, residual sums, linear maps,
//! cross-entropy), then every model as a whole.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures
mod common;

use burn::module::Module;
use burn::prelude::*;
use hdo_core::data::batch;
use hdo_core::estimator::{Backprop, Estimator, Gradient, StepInput, direction_model};
use hdo_core::noise::NoiseStream;
use hdo_core::params::Layout;
use hdo_datasets::mnist;
use hdo_models::{CnnConfig, DataShape, Dual, ForwardCtx, MlpConfig, ModelConfig, jvp};

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
        model = hdo_core::optimizer::update_running_stats(model, &layout, &ctx.batch_stats);
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
        let dir = direction_model(&model, &layout, noise, k, 1.0, None);
        let mut ctx = if train { ForwardCtx::train() } else { ForwardCtx::eval() };
        let logits = model.forward_jvp(&dir, &b.input, &mut ctx).unwrap();
        let (loss, dloss) = jvp::cross_entropy(logits, &b.targets);
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
        let dir = direction_model(&model, &layout, noise, 0, 1.0, None);
        let mut ctx = ForwardCtx::train_seeded(noise.dropout_seed());
        let logits = model.forward_jvp(&dir, &b.input, &mut ctx).unwrap();
        let (loss, dloss) = jvp::cross_entropy(logits, &b.targets);
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
    use hdo_models::transformer::attention;
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
        attention(&t.blocks[0], t.heads, t.blocks[0].norm1.forward(h))
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

// ---------------------------------------------------------------------------------------------
// One layer at a time.

/// A seeded standard-Gaussian tensor.
fn gaussian<const D: usize>(dims: [usize; D], stream: u64, device: &Device) -> Tensor<D> {
    let mut v = vec![0f32; dims.iter().product()];
    NoiseStream::new(stream, 0, 0).fill_gaussian(0, 0, &mut v);
    Tensor::from_data(TensorData::new(v, dims), device)
}

/// Replaces every float tensor of a module by seeded Gaussian values (a random direction `u`).
struct Randomize(u64);

impl burn::module::ModuleMapper for Randomize {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<Tensor<D>>,
    ) -> burn::module::Param<Tensor<D>> {
        self.0 += 1;
        let stream = self.0;
        param.map(|t| gaussian(t.dims(), stream, &t.device()))
    }
}

/// Every float tensor of a module, flattened, in visiting order: its values, or (with
/// `grads`) its gradients, zeros where it has none.
fn flat_params<M: Module>(module: &M, grads: Option<&burn::tensor::Gradients>) -> Vec<f64> {
    struct V<'a>(Option<&'a burn::tensor::Gradients>, Vec<f64>);
    impl burn::module::ModuleVisitor for V<'_> {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
            let v = p.val();
            let n = v.shape().num_elements();
            let values = match self.0 {
                None => Some(common::host(v.inner().reshape([n]))),
                Some(g) => v.grad(g).map(|g| common::host(g.reshape([n]))),
            };
            self.1.extend(values.unwrap_or(vec![0.0; n]).into_iter().map(f64::from));
        }
    }
    let mut v = V(grads, Vec::new());
    module.visit(&mut v);
    v.1
}

fn flat<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    let n = t.shape().num_elements();
    common::host(t.reshape([n])).into_iter().map(f64::from).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One layer rule against autodiff. With a random parameter direction `u` (a module of the same
/// architecture), a random input tangent `ẋ` and a fixed random read-out `w`, forward mode gives
/// `w·ẏ`; autodiff differentiates `s = w·forward(x)` and gives `∇ₓs·ẋ + ∇_θs·u`. The two must
/// agree to 1e-4 relative error, and the rule's primal must be the layer's ordinary output.
fn check_layer<M: Module, const D: usize, const E: usize>(
    name: &str,
    layer: M,
    x: Tensor<D>,
    rule: impl Fn(&M, &M, Dual<D>) -> Dual<E>,
    forward: impl Fn(&M, Tensor<D>) -> Tensor<E>,
) {
    let device = x.device();
    let dir = layer.clone().map(&mut Randomize(1000));
    let xdot = gaussian(x.dims(), 907, &device);
    let y = rule(&layer, &dir, Dual { primal: x.clone(), tangent: xdot.clone() });
    let w = gaussian(y.primal.dims(), 908, &device);
    let got = dot(&flat(y.tangent), &flat(w.clone()));
    let (primal, plain) = (flat(y.primal), flat(forward(&layer, x.clone())));
    for (a, b) in primal.iter().zip(&plain) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{name}: primal {a} vs forward {b}");
    }
    let ad_layer = layer.train();
    let ad_x = x.autodiff().require_grad();
    let s = (forward(&ad_layer, ad_x.clone()) * w.autodiff()).sum();
    let grads = s.backward();
    let gx = ad_x.grad(&grads).map(flat).unwrap_or(vec![0.0; xdot.shape().num_elements()]);
    let want = dot(&gx, &flat(xdot))
        + dot(&flat_params(&ad_layer, Some(&grads)), &flat_params(&dir, None));
    let rel = (got - want).abs() / want.abs();
    eprintln!("{name}: jvp {got:.6e} autodiff {want:.6e} rel {rel:.1e}");
    assert!(want.abs() > 1e-2, "{name}: a degenerate check (w·ẏ = {want})");
    assert!(rel <= 1e-4, "{name}: jvp {got} vs autodiff {want} (relative error {rel:e})");
}

#[test]
fn linear_and_residual_rules_match_autodiff() {
    let dev = Device::flex();
    let layer = burn::nn::LinearConfig::new(5, 7).init(&dev).map(&mut Randomize(1));
    check_layer("linear 2-D", layer.clone(), gaussian([4, 5], 1, &dev), jvp::linear, |l, x| {
        l.forward(x)
    });
    check_layer("linear 3-D", layer, gaussian([2, 3, 5], 2, &dev), jvp::linear, |l, x| {
        l.forward(x)
    });
    let square = burn::nn::LinearConfig::new(6, 6).init(&dev).map(&mut Randomize(2));
    check_layer(
        "residual x + linear(x)",
        square,
        gaussian([3, 6], 3, &dev),
        |l, d, x| jvp::add(x.clone(), jvp::linear(l, d, x)),
        |l, x| x.clone() + l.forward(x),
    );
}

#[test]
fn convolution_rule_matches_autodiff() {
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    let dev = Device::flex();
    for (name, config) in [
        ("conv 3×3 same", Conv2dConfig::new([2, 4], [3, 3]).with_padding(PaddingConfig2d::Same)),
        (
            "conv 3×3 stride 2, explicit padding",
            Conv2dConfig::new([2, 3], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 0, 1, 0)),
        ),
        ("conv 2×2 valid, dilation 2", Conv2dConfig::new([2, 3], [2, 2]).with_dilation([2, 2])),
    ] {
        let layer = config.init(&dev).map(&mut Randomize(3));
        check_layer(name, layer, gaussian([2, 2, 7, 7], 4, &dev), jvp::conv2d_dual, |l, x| {
            l.forward(x)
        });
    }
}

/// A batch norm with random scale, shift and running statistics (positive variances).
fn random_batch_norm(channels: usize, dev: &Device) -> hdo_models::BatchNorm {
    let mut bn = hdo_models::BatchNorm::new(channels, dev);
    bn.gamma = burn::module::Param::from_tensor(gaussian([channels], 11, dev));
    bn.beta = burn::module::Param::from_tensor(gaussian([channels], 12, dev));
    bn.running_mean =
        burn::module::Param::from_tensor(gaussian([channels], 13, dev)).set_require_grad(false);
    bn.running_var = burn::module::Param::from_tensor(gaussian([channels], 14, dev).abs() + 0.5)
        .set_require_grad(false);
    bn
}

#[test]
fn batch_norm_rules_match_autodiff_in_both_modes() {
    let dev = Device::flex();
    for train in [true, false] {
        let ctx = move || if train { ForwardCtx::train() } else { ForwardCtx::eval() };
        check_layer(
            &format!("batch norm 4-D, train={train}"),
            random_batch_norm(3, &dev),
            gaussian([4, 3, 5, 5], 5, &dev),
            |l, d, x| jvp::batch_norm(l, d, x, &mut ctx()),
            |l, x| l.forward(x, &mut ctx()),
        );
        check_layer(
            &format!("batch norm 2-D, train={train}"),
            random_batch_norm(6, &dev),
            gaussian([8, 6], 6, &dev),
            |l, d, x| jvp::batch_norm(l, d, x, &mut ctx()),
            |l, x| l.forward(x, &mut ctx()),
        );
    }
}

#[test]
fn activation_and_pooling_rules_match_autodiff() {
    use burn::nn::pool::MaxPool2dConfig;
    let dev = Device::flex();
    let none = burn::nn::Relu::new();
    check_layer(
        "relu",
        none.clone(),
        gaussian([4, 9], 7, &dev),
        |_, _, x| jvp::relu(x),
        |_, x| burn::tensor::activation::relu(x),
    );
    check_layer(
        "gelu",
        none,
        gaussian([2, 3, 8], 8, &dev),
        |_, _, x| jvp::gelu(x),
        |_, x| burn::tensor::activation::gelu(x),
    );
    for (name, pool) in [
        ("max-pool 2×2 stride 2", MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init()),
        ("max-pool 3×3 stride 1", MaxPool2dConfig::new([3, 3]).init()),
    ] {
        check_layer(
            name,
            pool,
            gaussian([2, 3, 6, 6], 9, &dev),
            |p, _, x| jvp::max_pool2d(p, x),
            |p, x| p.forward(x),
        );
    }
}

#[test]
fn layer_norm_attention_and_embedding_rules_match_autodiff() {
    use burn::module::Param;
    use burn::nn::{EmbeddingConfig, LinearConfig};
    use hdo_models::transformer::{Block, Norm, attention, causal_mask};
    let dev = Device::flex();
    let norm = |s| Norm {
        gamma: Param::from_tensor(gaussian([8], s, &dev)),
        beta: Param::from_tensor(gaussian([8], s + 1, &dev)),
    };
    check_layer("layer norm", norm(20), gaussian([2, 5, 8], 10, &dev), jvp::layer_norm, |l, x| {
        l.forward(x)
    });
    let linear = |i, o, s| LinearConfig::new(i, o).init(&dev).map(&mut Randomize(s));
    let block = Block {
        norm1: norm(22),
        qkv: linear(8, 24, 30),
        proj: linear(8, 8, 31),
        norm2: norm(24),
        fc1: linear(8, 16, 32),
        fc2: linear(16, 8, 33),
    };
    let (b, t) = (2, 5);
    let mask = causal_mask(t, &dev);
    check_layer(
        "causal softmax attention, 2 heads",
        block,
        gaussian([b, t, 8], 11, &dev),
        |l, d, x| jvp::attention(l, d, 2, x, &mask),
        |l, x| attention(l, 2, x),
    );
    let positions = Param::from_tensor(gaussian([7, 8], 41, &dev));
    check_layer(
        "learned positions",
        positions,
        gaussian([2, 5, 8], 12, &dev),
        jvp::add_positions,
        |p, x| x + p.val().narrow(0, 0, 5).unsqueeze_dim(0),
    );
    // a masked sum over tokens, through `linear_map` (maps with constant coefficients)
    let keep = |device: &Device| {
        let k: Vec<f32> = vec![1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        Tensor::<2>::from_data(TensorData::new(k, [2, 5]), device).unsqueeze_dim::<3>(2)
    };
    check_layer(
        "masked sum through linear_map",
        burn::nn::Relu::new(),
        gaussian([2, 5, 8], 13, &dev),
        |_, _, x| {
            let k = keep(&x.primal.device());
            jvp::linear_map(x, |h| (h * k.clone()).sum_dim(1).reshape([2, 8]))
        },
        |_, x| {
            let k = keep(&x.device());
            (x * k).sum_dim(1).reshape([2, 8])
        },
    );
    let table = EmbeddingConfig::new(6, 4).init(&dev).map(&mut Randomize(40));
    let tokens = |device: &Device| {
        let ids: Vec<i64> = vec![0, 5, 2, 2, 1, 3, 4, 0];
        Tensor::<2, Int>::from_data(TensorData::new(ids, [2, 4]), device)
    };
    // the input is the token ids: no input tangent (`x` is a placeholder)
    check_layer(
        "embedding",
        table,
        Tensor::<1>::zeros([1], &dev),
        |l, d, x| jvp::embedding(l, d, tokens(&x.primal.device())),
        |l, x| l.forward(tokens(&x.device())),
    );
}

#[test]
fn cross_entropy_rule_matches_autodiff() {
    let dev = Device::flex();
    let targets = |device: &Device| {
        Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 3, 1, 4, 4, 2], [6]), device)
    };
    check_layer(
        "cross-entropy",
        burn::nn::Relu::new(),
        gaussian([6, 5], 12, &dev),
        |_, _, z| {
            let (loss, dloss) = jvp::cross_entropy(z.clone(), &targets(&z.primal.device()));
            Dual { primal: loss, tangent: dloss }
        },
        |_, z| hdo_core::estimator::cross_entropy(z.clone(), &targets(&z.device())),
    );
}
