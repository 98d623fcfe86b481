//! Every layer rule checked once: stacked against `K` plain passes with each member's parameters
//! (shared, member-major-batch and member-major-channel inputs), and forward mode against autodiff
//! (`K` directions, with and without input tangents). Plus identity keying of stacks, which a
//! same-shaped swap would defeat under order matching.

#![allow(clippy::unwrap_used)]

use crate::context::ForwardCtx;
use crate::exec::{
    Architecture, Duals, Exec, Layout, Members, Params, Pass, Rule, Stack, StackInput, Stacked,
    stacked::batch_to_channels,
};
use crate::input::Input;
use crate::layers::*;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::{AdaptiveAvgPool2dConfig, MaxPool2dConfig};
use burn::nn::{EmbeddingConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::prelude::*;

const K: usize = 3;

/// Deterministic values in [-1, 1) (SplitMix64).
fn values<const D: usize>(dims: [usize; D], seed: u64, dev: &Device) -> Tensor<D> {
    let n: usize = dims.iter().product();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect();
    Tensor::from_data(TensorData::new(v, dims), dev)
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    let n = t.shape().num_elements();
    t.reshape([n])
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// The float tensors of `module` in visiting order, flat.
fn flat_params<M: Module>(module: &M) -> Vec<Tensor<1>> {
    struct V(Vec<Tensor<1>>);
    impl ModuleVisitor for V {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let t = p.val().inner();
            let n = t.shape().num_elements();
            self.0.push(t.reshape([n]));
        }
    }
    let mut v = V(Vec::new());
    module.visit(&mut v);
    v.0
}

/// `K` members around `module`: `x + 0.1·r_k` (running variances stay positive).
fn member_stack<M: Module>(module: &M, seed: u64) -> Stack {
    let tensors = flat_params(module)
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let n = t.dims()[0];
            let r = values([K, n], seed + i as u64, &t.device());
            t.unsqueeze_dim::<2>(0) + r * 0.1
        })
        .collect();
    Stack { tensors, members: K }
}

/// `K` random directions for `module`'s tensors.
fn direction_stack<M: Module>(module: &M, seed: u64) -> Stack {
    let tensors = flat_params(module)
        .into_iter()
        .enumerate()
        .map(|(i, t)| values([K, t.dims()[0]], seed + i as u64, &t.device()))
        .collect();
    Stack { tensors, members: K }
}

/// Member `m` of `stack` as a module of `module`'s architecture (identities kept).
fn member<M: Module>(module: &M, stack: &Stack, m: usize) -> M {
    struct Row<'a>(&'a Stack, usize, usize);
    impl ModuleMapper for Row<'_> {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let t = self.0.tensors[self.2].clone();
            self.2 += 1;
            let m = self.1;
            p.map(|old| t.narrow(0, m, 1).reshape(old.dims()))
        }
    }
    module.clone().map(&mut Row(stack, m, 0))
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: sizes");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "{what}: a degenerate check");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= tol * scale, "{what}[{i}]: {a} vs {b}");
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Checks the rule `make(module)` on input `x` (`[B, …]`) in the mode `ctx()` gives.
fn check<M, R, const I: usize, const O: usize>(
    name: &str,
    module: &M,
    make: impl Fn(&M) -> R,
    x: Tensor<I>,
    ctx: impl Fn() -> ForwardCtx,
) where
    M: Module,
    R: Rule<I, O>,
{
    let dev = x.device();
    let b = x.dims()[0];
    let mut wide = x.dims();
    wide[0] *= K;
    // --- stacked: each member's plain pass, for every input layout
    let stack = member_stack(module, 100);
    let xs = values(wide, 77, &dev); // member m's input: rows m·B..(m+1)·B
    let inputs = [
        ("shared", Members::shared(x.clone())),
        ("batch", Members::batch(xs.clone())),
        ("channels", Members::channels(batch_to_channels(xs.clone(), K))),
    ];
    for (layout, input) in inputs {
        let shared = input.layout == Layout::Shared;
        let mut pass = Pass { params: Params::of(module, &stack).unwrap(), ctx: ctx() };
        let out = make(module).stacked(input, &mut pass);
        assert_eq!(pass.params.error(), None, "{name}");
        let out = out.into_batch(K);
        let rows = out.dims()[0] / K;
        for m in 0..K {
            let xm = if shared { x.clone() } else { xs.clone().narrow(0, m * b, b) };
            let want = make(&member(module, &stack, m)).plain(xm, &mut ctx());
            let got = out.clone().narrow(0, m * rows, rows);
            close(
                &format!("{name} stacked ({layout} input), member {m}"),
                &host(got),
                &host(want),
                1e-5,
            );
        }
    }
    // --- forward mode against autodiff
    let dirs = direction_stack(module, 500);
    let dx = values(wide, 78, &dev);
    let primal = make(module).plain(x.clone(), &mut ctx());
    let w = values(primal.dims(), 79, &dev);
    let ad = module.clone().train();
    let ad_x = x.clone().autodiff().require_grad();
    let s = (make(&ad).plain(ad_x.clone(), &mut ctx()) * w.clone().autodiff()).sum();
    let grads = s.backward();
    let gx = ad_x.grad(&grads).map(host).unwrap_or(vec![0.0; x.shape().num_elements()]);
    struct G<'a>(&'a burn::tensor::Gradients, Vec<Vec<f64>>);
    impl ModuleVisitor for G<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let v = p.val();
            let n = v.shape().num_elements();
            self.1.push(v.grad(self.0).map(host).unwrap_or(vec![0.0; n]));
        }
    }
    let mut g = G(&grads, Vec::new());
    ad.visit(&mut g);
    for with_input_tangents in [true, false] {
        let mut pass = Pass { params: Params::of(module, &dirs).unwrap(), ctx: ctx() };
        let input = Duals { primal: x.clone(), tangents: with_input_tangents.then(|| dx.clone()) };
        let out = make(module).tangents(input, &mut pass);
        assert_eq!(pass.params.error(), None, "{name}");
        let what = format!("{name} forward mode, input tangents {with_input_tangents}");
        close(&format!("{what}: primal"), &host(out.primal), &host(primal.clone()), 1e-5);
        let wv = host(w.clone());
        for m in 0..K {
            let mut want = 0.0;
            if with_input_tangents {
                want += dot(&gx, &host(dx.clone().narrow(0, m * b, b)));
            }
            for (grad, t) in g.1.iter().zip(&dirs.tensors) {
                want += dot(grad, &host(t.clone().narrow(0, m, 1)));
            }
            let got = match &out.tangents {
                Some(t) => {
                    let rows = t.dims()[0] / K;
                    dot(&host(t.clone().narrow(0, m * rows, rows)), &wv)
                }
                None => 0.0,
            };
            let rel = (got - want).abs() / want.abs().max(1e-2);
            assert!(rel <= 1e-4, "{what}, direction {m}: {got} vs autodiff {want} (rel {rel:e})");
        }
    }
}

fn train() -> ForwardCtx {
    ForwardCtx::train()
}

#[test]
fn linear_and_convolution_rules() {
    let dev = Device::flex();
    let lin = LinearConfig::new(5, 4).init(&dev);
    check("linear 2-D", &lin, |l| l.clone(), values([6, 5], 1, &dev), train);
    check("linear 3-D", &lin, |l| l.clone(), values([2, 3, 5], 2, &dev), train);
    let no_bias = LinearConfig::new(5, 4).with_bias(false).init(&dev);
    check("linear without bias", &no_bias, |l| l.clone(), values([6, 5], 3, &dev), train);
    for (name, config) in [
        ("conv 3×3 same", Conv2dConfig::new([4, 6], [3, 3]).with_padding(PaddingConfig2d::Same)),
        ("conv 3×3 groups 2", Conv2dConfig::new([4, 6], [3, 3]).with_groups(2)),
        (
            "conv 3×3 stride 2, explicit padding",
            Conv2dConfig::new([4, 3], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 0, 1, 0)),
        ),
        ("conv 2×2 dilation 2", Conv2dConfig::new([4, 3], [2, 2]).with_dilation([2, 2])),
        (
            "conv 1×1 stride 2 without bias (a downsample)",
            Conv2dConfig::new([4, 5], [1, 1]).with_stride([2, 2]).with_bias(false),
        ),
    ] {
        let conv = config.init(&dev);
        check(name, &conv, |c| c.clone(), values([2, 4, 7, 7], 4, &dev), train);
    }
}

/// A batch norm with random scale, shift and running statistics.
fn batch_norm(c: usize, dev: &Device) -> BatchNorm {
    let mut bn = BatchNorm::new(c, dev);
    bn.gamma = Param::from_tensor(values([c], 7, dev));
    bn.beta = Param::from_tensor(values([c], 8, dev));
    bn.running_mean = Param::from_tensor(values([c], 9, dev)).set_require_grad(false);
    bn.running_var = Param::from_tensor(values([c], 10, dev).abs() + 0.5).set_require_grad(false);
    bn
}

#[test]
fn normalisation_rules_in_both_modes() {
    let dev = Device::flex();
    for train in [true, false] {
        let ctx = move || if train { ForwardCtx::train() } else { ForwardCtx::eval() };
        let bn = batch_norm(3, &dev);
        check(
            &format!("batch norm 4-D, train {train}"),
            &bn,
            |l| l.clone(),
            values([4, 3, 3, 3], 11, &dev),
            ctx,
        );
        check(
            &format!("batch norm 2-D, train {train}"),
            &bn,
            |l| l.clone(),
            values([6, 3], 12, &dev),
            ctx,
        );
    }
    let norm = Norm {
        gamma: Param::from_tensor(values([8], 13, &dev)),
        beta: Param::from_tensor(values([8], 14, &dev)),
    };
    check("layer norm", &norm, |l| l.clone(), values([2, 4, 8], 15, &dev), train);
}

#[test]
fn forward_mode_reports_the_batch_statistics_of_a_plain_pass_by_identity() {
    let dev = Device::flex();
    let bn = batch_norm(3, &dev);
    let x = values([4, 3, 2, 2], 16, &dev);
    let mut plain = ForwardCtx::train();
    bn.plain(x.clone(), &mut plain);
    let dirs = direction_stack(&bn, 3);
    let mut pass = Pass { params: Params::of(&bn, &dirs).unwrap(), ctx: ForwardCtx::train() };
    let _ = Rule::<4, 4>::tangents(&bn, Duals::constant(x), &mut pass);
    let (a, b) = (&plain.batch_stats[0], &pass.ctx.batch_stats[0]);
    assert_eq!((a.mean_id, a.var_id), (bn.running_mean.id, bn.running_var.id));
    assert_eq!((b.mean_id, b.var_id), (a.mean_id, a.var_id));
    close("mean", &host(b.mean.clone()), &host(a.mean.clone()), 1e-6);
    close("variance", &host(b.var.clone()), &host(a.var.clone()), 1e-5);
}

#[test]
fn activation_pooling_and_reshaping_rules() {
    let dev = Device::flex();
    let none = Relu::new();
    check("relu", &none, |_| Relu::new(), values([4, 7], 20, &dev), train);
    check("gelu", &none, |_| Gelu, values([2, 3, 5], 21, &dev), train);
    for (name, pool) in [
        ("max-pool 2×2 stride 2", MaxPoolConfigs::plain([2, 2], [2, 2])),
        ("max-pool 3×3 stride 2 padding 1", MaxPoolConfigs::padded([3, 3], [2, 2], 1)),
    ] {
        check(name, &none, |_| pool.clone(), values([2, 3, 6, 6], 22, &dev), train);
    }
    let avg = AdaptiveAvgPool2dConfig::new([1, 1]).init();
    check(
        "adaptive average pool 1×1",
        &none,
        |_| avg.clone(),
        values([2, 3, 5, 5], 23, &dev),
        train,
    );
    check("flatten", &none, |_| Flatten, values([2, 3, 2, 2], 24, &dev), train);
    let seeded = || ForwardCtx::train_seeded(4);
    check("dropout", &none, |_| Dropout { p: 0.3 }, values([2, 4, 8], 25, &dev), seeded);
}

struct MaxPoolConfigs;

impl MaxPoolConfigs {
    fn plain(k: [usize; 2], s: [usize; 2]) -> burn::nn::pool::MaxPool2d {
        MaxPool2dConfig::new(k).with_strides(s).init()
    }
    fn padded(k: [usize; 2], s: [usize; 2], p: usize) -> burn::nn::pool::MaxPool2d {
        MaxPool2dConfig::new(k)
            .with_strides(s)
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .init()
    }
}

#[derive(Module, Debug)]
struct Table {
    p: Param<Tensor<2>>,
}

#[test]
fn sequence_rules() {
    let dev = Device::flex();
    let none = Relu::new();
    for heads in [1, 2] {
        let attention = CausalAttention { heads };
        check(
            &format!("causal attention, {heads} heads"),
            &none,
            |_| attention,
            values([2, 5, 12], 30, &dev),
            train,
        );
    }
    let table = Table { p: Param::from_tensor(values([6, 8], 31, &dev)) };
    check(
        "learned positions",
        &table,
        |t| Positions(t.p.clone()),
        values([2, 4, 8], 32, &dev),
        train,
    );
    let keep = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0], [2, 4]),
        &dev,
    );
    for pooling in 0..3 {
        let pool = SeqPool { pooling, keep: keep.clone() };
        check(
            &format!("sequence pooling {pooling}"),
            &none,
            |_| pool.clone(),
            values([2, 4, 8], 33, &dev),
            train,
        );
    }
}

#[test]
fn embedding_rules() {
    let dev = Device::flex();
    let table = EmbeddingConfig::new(6, 4).init(&dev);
    let tokens =
        Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 5, 2, 2, 1, 3, 4, 0], [2, 4]), &dev);
    // stacked: shared tokens, and member-major tokens
    let stack = member_stack(&table, 40);
    let many = tokens.clone().repeat_dim(0, K);
    for (shared, ids) in [(true, tokens.clone()), (false, many)] {
        let mut pass = Pass { params: Params::of(&table, &stack).unwrap(), ctx: train() };
        let out = embedding::stacked(&table, ids, shared, &mut pass).into_batch(K);
        for m in 0..K {
            let want = member(&table, &stack, m).forward(tokens.clone());
            close(
                &format!("embedding stacked, shared {shared}, member {m}"),
                &host(out.clone().narrow(0, m * 2, 2)),
                &host(want),
                1e-6,
            );
        }
    }
    // forward mode: the tangent of w·E[tokens] along direction k is w·U_k[tokens]
    let dirs = direction_stack(&table, 41);
    let mut pass = Pass { params: Params::of(&table, &dirs).unwrap(), ctx: train() };
    let out = embedding::tangents(&table, tokens.clone(), &mut pass);
    let w = values([2, 4, 4], 42, &dev);
    let ad = table.clone().train();
    let s = (ad.forward(tokens.clone()) * w.clone().autodiff()).sum();
    let g = host(ad.weight.val().grad(&s.backward()).unwrap());
    let t = out.tangents.unwrap();
    for m in 0..K {
        let got = dot(&host(t.clone().narrow(0, m * 2, 2)), &host(w.clone()));
        let want = dot(&g, &host(dirs.tensors[0].clone().narrow(0, m, 1)));
        assert!(
            (got - want).abs() <= 1e-4 * want.abs().max(1e-2),
            "embedding direction {m}: {got} vs {want}"
        );
    }
}

#[test]
fn loss_rules_match_autodiff() {
    let dev = Device::flex();
    let targets =
        Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 3, 1, 4, 4, 2], [6]), &dev);
    let binary = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 1, 0, 1, 0], [6]), &dev);
    let z = values([6, 5], 50, &dev);
    let s = values([6, 1], 51, &dev) * 2.0;
    let dz = values([K * 6, 5], 52, &dev);
    let ds = values([K * 6, 1], 53, &dev);
    let ce = |z: Tensor<2>, t: &Tensor<1, Int>| {
        let logp = burn::tensor::activation::log_softmax(z, 1);
        (logp * t.clone().one_hot(5).float()).sum().neg() / 6.0
    };
    let hinge_plain = |s: Tensor<2>, t: &Tensor<1, Int>| {
        let y = t.clone().float() * 2.0 - 1.0;
        ((s.reshape([6]) * y).neg() + 1.0).clamp_min(0.0).mean()
    };
    let (loss, dloss) =
        cross_entropy(Duals { primal: z.clone(), tangents: Some(dz.clone()) }, &targets, K);
    let (hl, dhl) = hinge(Duals { primal: s.clone(), tangents: Some(ds.clone()) }, &binary, K);
    let ad_z = z.clone().autodiff().require_grad();
    let gz = host(ad_z.grad(&ce(ad_z.clone(), &targets.clone()).backward()).unwrap());
    let ad_s = s.clone().autodiff().require_grad();
    let gs = host(ad_s.grad(&hinge_plain(ad_s.clone(), &binary).backward()).unwrap());
    close("cross-entropy", &host(loss), &host(ce(z, &targets)), 1e-6);
    close("hinge", &host(hl), &host(hinge_plain(s, &binary)), 1e-6);
    let (dloss, dhl) = (host(dloss), host(dhl));
    for m in 0..K {
        let want = dot(&gz, &host(dz.clone().narrow(0, m * 6, 6)));
        assert!(
            (dloss[m] - want).abs() <= 1e-5 * want.abs().max(1e-2),
            "cross-entropy {m}: {} vs {want}",
            dloss[m]
        );
        let want = dot(&gs, &host(ds.clone().narrow(0, m * 6, 6)));
        assert!(
            (dhl[m] - want).abs() <= 1e-5 * want.abs().max(1e-2),
            "hinge {m}: {} vs {want}",
            dhl[m]
        );
    }
}

/// Two same-shaped layers declared in one order and applied in the other: a stack matched by
/// visiting order would run each member's `second` first; matched by identity it cannot.
#[derive(Module, Debug)]
struct Swapped {
    second: Linear,
    first: Linear,
}

impl Architecture for Swapped {
    fn run<E: Exec>(&self, exec: &mut E, input: &Input) -> E::T<2> {
        let x = exec.features(input);
        let x = exec.apply(&self.first, x);
        let x = exec.apply(&Relu, x);
        exec.apply(&self.second, x)
    }
}

#[test]
fn stacks_are_matched_to_parameters_by_identity_and_checked() {
    let dev = Device::flex();
    let model = Swapped {
        second: LinearConfig::new(4, 4).init(&dev),
        first: LinearConfig::new(4, 4).init(&dev),
    };
    let input = Input::Images(values([5, 1, 2, 2], 60, &dev));
    let stack = member_stack(&model, 61);
    let ctx = ForwardCtx::train();
    let mut exec =
        Stacked::new(Params::of(&model, &stack).unwrap(), StackInput::Shared(&input), &ctx);
    let logits = model.run(&mut exec, &input);
    let logits = exec.finish(logits).unwrap();
    for m in 0..K {
        let one = member(&model, &stack, m);
        let want = one.run(&mut crate::exec::Plain { ctx: &mut ForwardCtx::train() }, &input);
        let got: Tensor<2> = logits.clone().narrow(0, m, 1).reshape([5, 4]);
        close(&format!("member {m}"), &host(got), &host(want), 1e-6);
    }
    // a tensor of the wrong size is an error naming the parameter
    let mut bad = stack.clone();
    bad.tensors[2] = Tensor::zeros([K, 12], &dev);
    let mut exec =
        Stacked::new(Params::of(&model, &bad).unwrap(), StackInput::Shared(&input), &ctx);
    let logits = model.run(&mut exec, &input);
    let err = exec.finish(logits).unwrap_err();
    assert!(err.contains("first.weight"), "{err}");
    // and a stack of another architecture is refused
    let short = Stack { tensors: stack.tensors[..3].to_vec(), members: K };
    let err = Params::of(&model, &short).err().unwrap();
    assert!(err.contains("3 tensors"), "{err}");
}
