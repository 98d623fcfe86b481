//! ResNet-18 (He et al. 2016) in torchvision's architecture and parameter names: `conv1` 7×7/2,
//! `bn1`, 3×3/2 max-pool, `layer1`–`layer4` of two BasicBlocks each (64, 128, 256, 512
//! channels; the first block of layers 2–4 strides by 2 and has a 1×1/2 convolution +
//! BatchNorm `downsample`), adaptive average pooling, `fc`. `stem = "cifar"` is the usual
//! small-image variant: a 3×3/1 first convolution and no max-pool. Convolutions have no bias,
//! as torchvision's.
//!
//! Departure from torchvision: fresh weights follow PyTorch's layer defaults (the
//! `U(±1/√fan_in)` of every other hdo model, see `hdo_core::init`), not torchvision's Kaiming
//! normal; pretrained weights replace them anyway. `width` scales every channel count
//! (64 by default: torchvision's model) — small widths make fast tests and CPU experiments.

use crate::ConfigProblem;
use crate::exec::{Architecture, Exec};
use crate::input::Input;
use crate::layers::{BatchNorm, Flatten};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The first layers: ImageNet's or the small-image variant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Stem {
    /// `conv1` 7×7 stride 2 padding 3, then a 3×3 stride-2 max-pool (torchvision's).
    #[default]
    Imagenet,
    /// `conv1` 3×3 stride 1 padding 1, no max-pool (CIFAR-sized images).
    Cifar,
}

/// Options of `[model] kind = "resnet18"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResNetConfig {
    /// The first layers.
    pub stem: Stem,
    /// Channels of `conv1` and `layer1` (doubled in each later layer); 64 is ResNet-18.
    pub width: usize,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        ResNetConfig { stem: Stem::Imagenet, width: 64 }
    }
}

/// `conv1 → bn1 → ReLU → conv2 → bn2`, plus the input (through `downsample` when the block
/// strides or widens), then ReLU.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// 3×3 convolution (stride 1 or 2).
    pub conv1: Conv2d,
    /// Normalisation after `conv1`.
    pub bn1: BatchNorm,
    /// 3×3 convolution, stride 1.
    pub conv2: Conv2d,
    /// Normalisation after `conv2`.
    pub bn2: BatchNorm,
    /// The shortcut's projection (torchvision's `downsample.0` / `downsample.1`).
    pub downsample: Option<Downsample>,
}

/// A 1×1 strided convolution and BatchNorm on the shortcut.
#[derive(Module, Debug)]
pub struct Downsample {
    /// 1×1 convolution (torchvision's `downsample.0`).
    pub conv: Conv2d,
    /// Normalisation (torchvision's `downsample.1`).
    pub bn: BatchNorm,
}

/// ResNet-18.
#[derive(Module, Debug)]
pub struct ResNet {
    /// First convolution.
    pub conv1: Conv2d,
    /// Its normalisation.
    pub bn1: BatchNorm,
    /// 3×3/2 max-pool (ImageNet stem only).
    pub maxpool: Option<MaxPool2d>,
    /// Two blocks at `width` channels.
    pub layer1: Vec<BasicBlock>,
    /// Two blocks at `2·width`, the first strided.
    pub layer2: Vec<BasicBlock>,
    /// Two blocks at `4·width`, the first strided.
    pub layer3: Vec<BasicBlock>,
    /// Two blocks at `8·width`, the first strided.
    pub layer4: Vec<BasicBlock>,
    /// Global average pooling.
    pub avgpool: AdaptiveAvgPool2d,
    /// Classifier `[8·width, classes]`.
    pub fc: Linear,
}

fn conv(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

fn block(c_in: usize, c_out: usize, stride: usize, device: &Device) -> BasicBlock {
    let downsample = (stride != 1 || c_in != c_out).then(|| Downsample {
        conv: conv(c_in, c_out, 1, stride, 0, device),
        bn: BatchNorm::new(c_out, device),
    });
    BasicBlock {
        conv1: conv(c_in, c_out, 3, stride, 1, device),
        bn1: BatchNorm::new(c_out, device),
        conv2: conv(c_out, c_out, 3, 1, 1, device),
        bn2: BatchNorm::new(c_out, device),
        downsample,
    }
}

impl ResNetConfig {
    /// Every option in its range.
    pub fn validate(&self) -> Result<(), ConfigProblem> {
        crate::width("model.width", self.width)?;
        if self.width > crate::MAX_WIDTH / 8 {
            return Err(ConfigProblem::new(
                "model.width",
                format!(
                    "is {}; layer4 has 8× as many channels, so at most {}",
                    self.width,
                    crate::MAX_WIDTH / 8
                ),
            ));
        }
        Ok(())
    }

    /// Build the network for images of `image` and `classes` classes.
    pub fn init(&self, image: [usize; 3], classes: usize, device: &Device) -> ResNet {
        let w = self.width;
        let (conv1, maxpool) = match self.stem {
            Stem::Imagenet => (
                conv(image[0], w, 7, 2, 3, device),
                Some(
                    MaxPool2dConfig::new([3, 3])
                        .with_strides([2, 2])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .init(),
                ),
            ),
            Stem::Cifar => (conv(image[0], w, 3, 1, 1, device), None),
        };
        let layer = |c_in: usize, c_out: usize, stride: usize| {
            vec![block(c_in, c_out, stride, device), block(c_out, c_out, 1, device)]
        };
        ResNet {
            conv1,
            bn1: BatchNorm::new(w, device),
            maxpool,
            layer1: layer(w, w, 1),
            layer2: layer(w, 2 * w, 2),
            layer3: layer(2 * w, 4 * w, 2),
            layer4: layer(4 * w, 8 * w, 2),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(8 * w, classes).init(device),
        }
    }
}

impl BasicBlock {
    fn run<E: Exec>(&self, exec: &mut E, x: E::T<4>) -> E::T<4> {
        let out = exec.apply(&self.conv1, x.clone());
        let out = exec.apply(&self.bn1, out);
        let out = exec.apply(&Relu, out);
        let out = exec.apply(&self.conv2, out);
        let out = exec.apply(&self.bn2, out);
        let shortcut = match &self.downsample {
            Some(d) => {
                let s = exec.apply(&d.conv, x);
                exec.apply(&d.bn, s)
            }
            None => x,
        };
        let sum = exec.add(out, shortcut);
        exec.apply(&Relu, sum)
    }
}

impl Architecture for ResNet {
    fn run<E: Exec>(&self, exec: &mut E, input: &Input) -> E::T<2> {
        let x = exec.images(input);
        let x = exec.apply(&self.conv1, x);
        let x = exec.apply(&self.bn1, x);
        let mut x = exec.apply(&Relu, x);
        if let Some(pool) = &self.maxpool {
            x = exec.apply(pool, x);
        }
        for layer in [&self.layer1, &self.layer2, &self.layer3, &self.layer4] {
            for block in layer {
                x = block.run(exec, x);
            }
        }
        let x = exec.apply(&self.avgpool, x); // [b, 8·width, 1, 1]
        let x = exec.apply(&Flatten, x);
        exec.apply(&self.fc, x)
    }
}
