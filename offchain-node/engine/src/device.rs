//! Backend choice at run time: wgpu (Vulkan on a GPU, or Mesa's lavapipe on
//! a machine without one) by default, Burn's pure-Rust CPU backend for tests,
//! and with the `cuda` cargo feature Burn's CUDA backend for NVIDIA GPUs.
//!
//! Built with the `vulkan` feature, wgpu compiles CubeCL's kernels to SPIR-V
//! on Vulkan adapters instead of WGSL: only the SPIR-V compiler registers the
//! cooperative-matrix instructions that reach tensor cores, which the matmul,
//! convolution and flash-attention kernels then pick by autotune. It is off by
//! default because Mesa 22.3's lavapipe crashes on those kernels.

use crate::error::{Error, Result};
use burn::tensor::{Device, DeviceKind};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The best wgpu adapter (a GPU if there is one).
    Wgpu,
    /// wgpu on a software adapter (lavapipe): slow, for testing the wgpu path without a GPU.
    WgpuSoftware,
    /// Burn's Flex backend on the host CPU (every core, SIMD).
    Cpu,
    /// Burn's CUDA backend on the first NVIDIA GPU (cargo feature `cuda`).
    Cuda,
}

impl FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "wgpu" | "gpu" => Ok(Backend::Wgpu),
            "wgpu-cpu" | "lavapipe" => Ok(Backend::WgpuSoftware),
            "cpu" | "flex" => Ok(Backend::Cpu),
            "cuda" if cfg!(feature = "cuda") => Ok(Backend::Cuda),
            "cuda" => Err(Error::Device(
                "backend cuda: this build has no CUDA support (build with --features cuda)".into(),
            )),
            other => Err(Error::Device(format!(
                "unknown backend {other} (wgpu, wgpu-cpu, cpu{})",
                if cfg!(feature = "cuda") { ", cuda" } else { "" }
            ))),
        }
    }
}

impl Backend {
    pub fn device(self) -> Device {
        match self {
            Backend::Wgpu => Device::wgpu(DeviceKind::DefaultDevice),
            Backend::WgpuSoftware => Device::wgpu(DeviceKind::Cpu),
            Backend::Cpu => Device::flex(),
            #[cfg(feature = "cuda")]
            Backend::Cuda => Device::cuda(0),
            #[cfg(not(feature = "cuda"))]
            Backend::Cuda => unreachable!("Backend::Cuda is only parsed in builds with CUDA"),
        }
    }

    /// The name `FromStr` takes for this backend.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Wgpu => "wgpu",
            Backend::WgpuSoftware => "wgpu-cpu",
            Backend::Cpu => "cpu",
            Backend::Cuda => "cuda",
        }
    }

    /// Whether the backend computes in f16 (a wgpu adapter with shader-f16, CUDA; never the CPU backend).
    pub fn supports_f16(self, device: &Device) -> bool {
        self != Backend::Cpu && device.supports_dtype(burn::tensor::DType::F16)
    }
}

/// A one-line description of the adapter: its name and, where the backend reports it, memory in use.
pub fn describe(backend: Backend, device: &Device) -> String {
    let name = match backend {
        Backend::Cpu => format!("CPU (Burn Flex, {} threads)", rayon::current_num_threads()),
        _ => device
            .identity()
            .map(|i| i.name)
            .unwrap_or_else(|| "unnamed wgpu adapter".into()),
    };
    match device.memory_pool_usage() {
        Some(usage) => format!("{name}; memory pools: {usage:?}"),
        None => name,
    }
}
