//! 2-D convolution (Burn's [`Conv2d`]: any stride, padding, dilation and groups).

use crate::context::ForwardCtx;
use crate::exec::{Duals, Layout, Members, Pass, Rule};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

impl Rule<4, 4> for Conv2d {
    fn plain(&self, x: Tensor<4>, _: &mut ForwardCtx) -> Tensor<4> {
        self.forward(x)
    }

    /// Members become convolution groups over member-major channels `[B, K·C, h, w]`; a shared
    /// input needs no copies when the layer is ungrouped (the `K` kernels are simply `K·C_out`
    /// output channels).
    fn stacked(&self, x: Members<4>, pass: &mut Pass<'_>) -> Members<4> {
        let k = pass.members();
        let (weight, bias) = self.member_kernels(pass);
        let (x, groups) = match (x.layout, self.groups) {
            (Layout::Shared, 1) => (x.tensor, 1),
            (_, g) => (x.into_channels(k), g * k),
        };
        let [_, _, h, w] = x.dims();
        Members::channels(conv2d(x, weight, bias, self.options([h, w], groups)))
    }

    /// `ẏ_k = conv(ẋ_k, W) + conv(x, Ẇ_k) + ḃ_k`; the `K` kernels `Ẇ_k` run as `K·C_out` output
    /// channels of one convolution of the shared primal.
    fn tangents(&self, x: Duals<4>, pass: &mut Pass<'_>) -> Duals<4> {
        let k = pass.members();
        let (w_dot, b_dot) = self.member_kernels(pass);
        let [_, _, h, w] = x.primal.dims();
        let (x_in, groups) = match self.groups {
            1 => (x.primal.clone(), 1),
            g => (x.primal.clone().repeat_dim(1, k), g * k),
        };
        let from_params = crate::exec::Members::channels(conv2d(
            x_in,
            w_dot,
            b_dot,
            self.options([h, w], groups),
        ))
        .into_batch(k);
        let tangents = match x.tangents {
            Some(t) => {
                conv2d(t, self.weight.val(), None, self.options([h, w], self.groups)) + from_params
            }
            None => from_params,
        };
        Duals { primal: self.forward(x.primal), tangents: Some(tangents) }
    }
}

trait Options {
    fn options(&self, size: [usize; 2], groups: usize) -> ConvOptions<2>;
    fn member_kernels(&self, pass: &mut Pass<'_>) -> (Tensor<4>, Option<Tensor<1>>);
}

impl Options for Conv2d {
    /// The `K` members' kernels as `K·C_out` output channels `[K·C_out, C_in/g, kh, kw]`, and
    /// their biases `[K·C_out]`.
    fn member_kernels(&self, pass: &mut Pass<'_>) -> (Tensor<4>, Option<Tensor<1>>) {
        let k = pass.members();
        let [c_out, c_in_g, kh, kw] = self.weight.lazy_shape().dims::<4>();
        let weight: Tensor<5> = pass.params.take_full(&self.weight, [0, c_out, c_in_g, kh, kw]);
        let bias = self
            .bias
            .as_ref()
            .map(|b| pass.params.take_full::<1, 2>(b, [0, c_out]).reshape([k * c_out]));
        (weight.reshape([k * c_out, c_in_g, kh, kw]), bias)
    }

    /// The functional options on an input of `size`, with `groups` groups.
    fn options(&self, size: [usize; 2], groups: usize) -> ConvOptions<2> {
        let pads = padding_pairs(&self.padding, size, self.kernel_size, self.stride, self.dilation);
        ConvOptions::new_with_padding(self.stride, [pads.0, pads.1], self.dilation, groups)
    }
}

/// `((top, bottom), (left, right))` padding of a 2-D window (Burn's own helper is private):
/// explicit values as given, `Valid` none, `Same` the total `(⌈n/s⌉−1)·s + (k−1)·d + 1 − n`
/// split with the extra element at the end.
pub(crate) fn padding_pairs(
    padding: &PaddingConfig2d,
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
) -> ((usize, usize), (usize, usize)) {
    match *padding {
        PaddingConfig2d::Explicit(t, l, b, r) => ((t, b), (l, r)),
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Same => {
            let pair = |i: usize| {
                let out = size[i].div_ceil(stride[i]);
                let total = ((out - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1)
                    .saturating_sub(size[i]);
                (total / 2, total - total / 2)
            };
            (pair(0), pair(1))
        }
    }
}
