//! Token embeddings (Burn's [`Embedding`]; its table is `[vocab, width]`), the rule behind
//! [`Exec::embed`](crate::exec::Exec::embed).

use crate::exec::{Duals, Members, Pass};
use burn::nn::Embedding;
use burn::prelude::*;

/// Each member's rows of its own table: tokens `[b, t]` seen by every member (`shared`) or
/// `[K·b, t]` member-major; member `m`'s token `v` is row `m·vocab + v` of the stacked tables.
pub(crate) fn stacked(
    layer: &Embedding,
    tokens: Tensor<2, Int>,
    shared: bool,
    pass: &mut Pass<'_>,
) -> Members<3> {
    let k = pass.members();
    let [vocab, w] = layer.weight.lazy_shape().dims::<2>();
    let tables: Tensor<3> = pass.params.take_full(&layer.weight, [0, vocab, w]);
    let [rows, t] = tokens.dims();
    let b = if shared { rows } else { rows / k };
    Members::batch(rows_of(tables, tokens, shared).reshape([k * b, t, w]))
}

/// The primal from the layer's table, tangent `k` from the same rows of direction `k`'s table.
pub(crate) fn tangents(layer: &Embedding, tokens: Tensor<2, Int>, pass: &mut Pass<'_>) -> Duals<3> {
    let k = pass.members();
    let [b, t] = tokens.dims();
    let [vocab, w] = layer.weight.lazy_shape().dims::<2>();
    let tables: Tensor<3> = pass.params.take_full(&layer.weight, [0, vocab, w]);
    let tangents = rows_of(tables, tokens.clone(), true);
    Duals {
        primal: burn::tensor::module::embedding(layer.weight.val(), tokens),
        tangents: Some(tangents.reshape([k * b, t, w])),
    }
}

/// Rows `[K·b·t, w]` of tables `[K, vocab, w]` for tokens shared by every member or member-major.
fn rows_of(tables: Tensor<3>, tokens: Tensor<2, Int>, shared: bool) -> Tensor<2> {
    let [k, vocab, w] = tables.dims();
    let [rows, t] = tokens.dims();
    let lead = if shared { 1 } else { k };
    let per_member = rows / lead * t;
    let offsets = Tensor::<1, Int>::arange(0..k as i64, &tokens.device()).mul_scalar(vocab as i64);
    let ids = tokens.reshape([lead, per_member]) + offsets.reshape([k, 1]); // [K, b·t]
    tables.reshape([k * vocab, w]).select(0, ids.reshape([k * per_member]))
}
