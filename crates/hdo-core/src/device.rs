//! Choosing the compute device, with a clear error when a GPU is asked for and none is there.

use crate::config::DeviceChoice;
use crate::error::Error;
use burn::prelude::*;

/// Whether `device` keeps tensors in host memory (burn-flex, with or without autodiff), so host
/// code may work on their buffers directly.
pub fn is_host(device: &Device) -> bool {
    device.clone().inner() == Device::flex()
}

/// The plain (non-autodiff) device for `choice`. For `wgpu`, a tiny computation is run first so
/// that a machine without an adapter gets an error instead of a panic deep inside a round.
pub fn select(choice: DeviceChoice) -> Result<Device, Error> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::flex()),
        DeviceChoice::Wgpu => {
            let probe = std::panic::catch_unwind(|| {
                let device = Device::wgpu(DeviceKind::DefaultDevice);
                let t = Tensor::<1>::ones([4], &device);
                let sum = t.sum().into_scalar::<f32>();
                (device, sum)
            });
            match probe {
                Ok((device, sum)) => {
                    if sum == 4.0 {
                        Ok(device)
                    } else {
                        Err(Error::Device(format!(
                            "the wgpu device computed 1+1+1+1 = {sum}; use --device cpu"
                        )))
                    }
                }
                Err(panic) => {
                    let why = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown error".into());
                    Err(Error::Device(format!(
                        "no usable wgpu adapter ({why}). Install a Vulkan/Metal driver (on Linux without a GPU: \
                         `apt-get install mesa-vulkan-drivers` for the lavapipe software driver), or run on the CPU \
                         with --device cpu"
                    )))
                }
            }
        }
    }
}
