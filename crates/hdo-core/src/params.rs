//! Flat views of a model's float tensors: the one place that walks Burn modules.
//!
//! Every float tensor of a model is visited in declaration order and seen as a flat `Tensor<1>`.
//! *Trainable* tensors are those whose name does not start with `running_` (BatchNorm running
//! statistics); estimators, noise and optimizers touch trainable tensors only, while gossip
//! averages every float tensor. Trainable tensors are laid out back to back in one virtual
//! parameter vector of length `d`; [`TensorInfo::offset`] is a tensor's start in it, which is the
//! "parameter offset" coordinate of the noise.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use hdo_models::Model;

/// Where one float tensor sits in a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Dotted path, e.g. `convs.0.norm.gamma`.
    pub path: String,
    /// Shape of the tensor.
    pub shape: Vec<usize>,
    /// Number of elements.
    pub numel: usize,
    /// Index among the trainable tensors, `None` for running statistics.
    pub trainable: Option<usize>,
    /// Start in the virtual trainable parameter vector (for running statistics: where the next
    /// trainable tensor starts).
    pub offset: u64,
}

/// The layout of a model architecture's float tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Every float tensor, in visiting order.
    pub tensors: Vec<TensorInfo>,
    /// Number of trainable parameters `d`.
    pub dim: u64,
}

impl Layout {
    /// The layout of `model`.
    pub fn of(model: &Model) -> Layout {
        let mut v = LayoutVisitor { path: Vec::new(), tensors: Vec::new(), dim: 0 };
        model.visit(&mut v);
        Layout { tensors: v.tensors, dim: v.dim }
    }

    /// Trainable tensors only.
    pub fn trainable(&self) -> impl Iterator<Item = &TensorInfo> {
        self.tensors.iter().filter(|t| t.trainable.is_some())
    }

    /// Number of trainable tensors.
    pub fn num_trainable(&self) -> usize {
        self.trainable().count()
    }

    /// Number of float values (including running statistics), i.e. what a gossip message carries.
    pub fn total_numel(&self) -> u64 {
        self.tensors.iter().map(|t| t.numel as u64).sum()
    }
}

fn is_trainable(name: &str) -> bool {
    !name.starts_with("running_")
}

struct LayoutVisitor {
    path: Vec<String>,
    tensors: Vec<TensorInfo>,
    dim: u64,
}

impl ModuleVisitor for LayoutVisitor {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let shape = param.lazy_shape();
        let numel = shape.num_elements();
        let shape = shape.dims::<D>().to_vec();
        let name = self.path.last().map(String::as_str).unwrap_or("");
        let trainable = is_trainable(name)
            .then(|| self.tensors.iter().filter(|t| t.trainable.is_some()).count());
        self.tensors.push(TensorInfo {
            path: self.path.join("."),
            shape,
            numel,
            trainable,
            offset: self.dim,
        });
        if trainable.is_some() {
            self.dim += numel as u64;
        }
    }
}

/// Visit every float tensor as `(index in layout, flat tensor on its plain device)`.
pub fn for_each(model: &Model, mut f: impl FnMut(usize, Tensor<1>)) {
    struct V<F> {
        f: F,
        i: usize,
    }
    impl<F: FnMut(usize, Tensor<1>)> ModuleVisitor for V<F> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val().inner();
            let n = t.shape().num_elements();
            (self.f)(self.i, t.reshape([n]));
            self.i += 1;
        }
    }
    model.visit(&mut V { f: &mut f, i: 0 });
}

/// Every float tensor, flattened and detached (plain device), in layout order.
pub fn collect(model: &Model) -> Vec<Tensor<1>> {
    let mut out = Vec::new();
    for_each(model, |_, t| out.push(t));
    out
}

/// Rebuild every float tensor from `f(index, current flat value)`. The result keeps each tensor's
/// shape, device, autodiff status and gradient requirement, so first-order replicas stay trainable
/// leaves after being mapped.
pub fn map(model: Model, mut f: impl FnMut(usize, Tensor<1>) -> Tensor<1>) -> Model {
    struct M<F> {
        f: F,
        i: usize,
    }
    impl<F: FnMut(usize, Tensor<1>) -> Tensor<1>> ModuleMapper for M<F> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let i = self.i;
            self.i += 1;
            let f = &mut self.f;
            param.map(|t| {
                let (autodiff, grad) = (t.is_autodiff(), t.is_require_grad());
                let shape = t.shape();
                let inner = t.inner();
                let device = inner.device();
                let flat = inner.reshape([shape.num_elements()]);
                let mut out: Tensor<D> = f(i, flat).to_device(&device).reshape(shape);
                if autodiff {
                    out = out.autodiff();
                }
                if grad {
                    out = out.require_grad();
                }
                out
            })
        }
    }
    model.map(&mut M { f: &mut f, i: 0 })
}

/// Move every float tensor out of `model` (flat, plain device, in layout order), leaving a
/// skeleton whose tensors are empty placeholders, to be refilled with [`load`]. Moving instead of
/// cloning keeps each buffer uniquely owned, so it can be read and overwritten without a copy.
/// For host (flex) replicas only: on wgpu, fusion mis-tracks the moved handles (a run then
/// diverges from the CPU's), and the GPU needs no such trick — it fuses the average anyway.
pub fn take(model: Model) -> (Model, Vec<Tensor<1>>) {
    let mut out = Vec::new();
    let skeleton = map(model, |_, t| {
        let (n, device) = (t.dims()[0], t.device());
        out.push(t);
        Tensor::empty([n], &device)
    });
    (skeleton, out)
}

/// Replace every float tensor by `values[index]` (flat, any device).
pub fn load(model: Model, values: &[Tensor<1>]) -> Model {
    map(model, |i, _| values[i].clone())
}

/// Upload a host vector as a flat tensor.
pub fn upload(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// Download a flat tensor to the host; a device that hands back anything but its `n` floats is
/// an error (never a short vector that some index would trip over later).
pub fn download(t: Tensor<1>) -> Result<Vec<f32>, crate::error::Error> {
    let n = t.dims()[0];
    let values = t.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| {
        crate::error::Error::Device(format!("cannot read a tensor of {n} floats back: {e:?}"))
    })?;
    if values.len() != n {
        return Err(crate::error::Error::Device(format!(
            "reading a tensor of {n} floats back gave {} values",
            values.len()
        )));
    }
    Ok(values)
}
