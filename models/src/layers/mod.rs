//! Layer rules: how each layer runs plain, stacked over `K` members and in forward mode along `K`
//! directions ([`crate::exec::Rule`]), one file per layer. Each is checked against autodiff (forward
//! mode) and against `K` plain passes (stacked) once, in `check.rs`.
//!
//! Adding a layer is one file here implementing [`Rule`](crate::exec::Rule) plus its `mod` line
//! below; models then compose it like any other.

pub mod attention;
pub mod avg_pool;
pub mod batch_norm;
pub mod conv2d;
pub mod cross_entropy;
pub mod dropout;
pub(crate) mod embedding;
pub mod flatten;
pub mod gelu;
pub mod hinge;
pub mod layer_norm;
pub mod linear;
pub mod max_pool;
pub mod positions;
pub mod relu;
pub(crate) mod residual;
pub mod seq_pool;

#[cfg(test)]
mod check;

pub use attention::{CausalAttention, causal_mask};
pub use batch_norm::BatchNorm;
pub use cross_entropy::cross_entropy;
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use gelu::Gelu;
pub use hinge::hinge;
pub use layer_norm::Norm;
pub use positions::Positions;
pub use seq_pool::SeqPool;
