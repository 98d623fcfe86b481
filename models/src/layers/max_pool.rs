//! 2-D max-pooling (Burn's [`MaxPool2d`]).

use crate::context::ForwardCtx;
use crate::exec::{Duals, Members, Pass, Rule};
use crate::layers::conv2d::padding_pairs;
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use burn::tensor::module::max_pool2d_with_indices;
use burn::tensor::ops::MaxPoolOptions;

impl Rule<4, 4> for MaxPool2d {
    fn plain(&self, x: Tensor<4>, _: &mut ForwardCtx) -> Tensor<4> {
        self.forward(x)
    }

    /// Windows are per example and channel: any member layout pools as it is.
    fn stacked(&self, x: Members<4>, _: &mut Pass<'_>) -> Members<4> {
        x.map(|t| self.forward(t))
    }

    /// Each tangent takes the element the primal selected.
    fn tangents(&self, x: Duals<4>, pass: &mut Pass<'_>) -> Duals<4> {
        let k = pass.members();
        let [b, c, h, w] = x.primal.dims();
        let (primal, indices) = max_pool2d_with_indices(x.primal, options(self, [h, w]));
        let [_, _, ho, wo] = primal.dims();
        let tangents = x.tangents.map(|t| {
            let flat: Tensor<3> = t.reshape([k * b, c, h * w]);
            let idx: Tensor<3, Int> = indices.reshape([b, c, ho * wo]);
            let idx = if k == 1 { idx } else { idx.repeat_dim(0, k) };
            flat.gather(2, idx).reshape([k * b, c, ho, wo])
        });
        Duals { primal, tangents }
    }
}

/// The functional options of `layer` on an input of `size` (its padding resolved).
fn options(layer: &MaxPool2d, size: [usize; 2]) -> MaxPoolOptions<2> {
    let ((top, bottom), (left, right)) =
        padding_pairs(&layer.padding, size, layer.kernel_size, layer.stride, layer.dilation);
    MaxPoolOptions::new(layer.kernel_size)
        .with_stride(layer.stride)
        .with_padding_pairs([(top, bottom), (left, right)])
        .with_dilation(layer.dilation)
        .with_ceil_mode(layer.ceil_mode)
}
