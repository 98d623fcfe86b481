//! Residual sums `a + b` ([`Exec::add`](crate::exec::Exec::add)).

use crate::exec::{Duals, Layout, Members};

/// Members of both in one layout (a shared side takes the other's; otherwise member-major rows).
pub(crate) fn stacked<const D: usize>(a: Members<D>, b: Members<D>, k: usize) -> Members<D> {
    let layout = match (a.layout, b.layout) {
        (x, y) if x == y => x,
        (Layout::Shared, y) => y,
        (x, Layout::Shared) => x,
        _ => Layout::Batch,
    };
    if layout == Layout::Shared {
        return Members::shared(a.tensor + b.tensor);
    }
    let tensor = a.into_layout(layout, k) + b.into_layout(layout, k);
    Members { tensor, layout }
}

/// Tangents add (an all-zero side is left out).
pub(crate) fn tangents<const D: usize>(a: Duals<D>, b: Duals<D>) -> Duals<D> {
    let tangents = match (a.tangents, b.tangents) {
        (Some(x), Some(y)) => Some(x + y),
        (x, y) => x.or(y),
    };
    Duals { primal: a.primal + b.primal, tangents }
}
