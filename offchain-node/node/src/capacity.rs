//! What this node reports at join: its GPU's name and memory.

use crate::config::GpuConfig;
use anyhow::{bail, Result};
use hydrogen_engine::Backend;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    pub gpu_name: String,
    pub vram_gb: u32,
}

/// The configured values, else the wgpu adapter's name and the memory
/// `nvidia-smi` reports (wgpu does not tell an adapter's memory size).
pub fn detect(config: &GpuConfig, backend: Backend) -> Result<Capacity> {
    let gpu_name = match &config.name {
        Some(name) => name.clone(),
        None => adapter_name(backend),
    };
    if backend == Backend::Wgpu && is_software_adapter(&gpu_name) {
        tracing::warn!(
            adapter = %gpu_name,
            "the wgpu adapter is a software renderer, not a GPU: no GPU driver was found. \
             Generation will be very slow; install the GPU's Vulkan driver, or set \
             backend = \"cpu\" (tens of times faster than a software renderer)"
        );
    }
    let vram_gb = match config.vram_gb.or_else(nvidia_smi_gb) {
        Some(gb) => gb,
        None => bail!(
            "cannot detect the GPU memory of {gpu_name:?}: set `gpu.vram_gb` in the config \
             (or HYDROGEN_NODE_GPU__VRAM_GB)"
        ),
    };
    // The contract refuses an empty name or one over 64 bytes.
    let mut gpu_name = gpu_name.trim().to_owned();
    if gpu_name.is_empty() {
        gpu_name = "unknown GPU".into();
    }
    while gpu_name.len() > 64 {
        gpu_name.pop();
    }
    Ok(Capacity { gpu_name, vram_gb })
}

/// The bytes one generation may take: `limit_mb` when configured, else the
/// GPU's memory, or on the CPU backend the host's memory less 1 GB (the
/// system's share). Reading the host's total, not what is free now, keeps
/// the answer the same from task to task.
pub fn memory_limit(limit_mb: Option<u64>, backend: Backend, vram_gb: u32) -> u64 {
    const GB: u64 = 1 << 30;
    if let Some(mb) = limit_mb {
        return mb << 20;
    }
    if backend == Backend::Cpu {
        if let Some(total) = host_memory() {
            return total.saturating_sub(GB);
        }
    }
    u64::from(vram_gb) * GB
}

/// `MemTotal` of /proc/meminfo, in bytes.
fn host_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Whether an adapter name is a software rasteriser (Mesa's llvmpipe or
/// lavapipe, SwiftShader, Windows' basic renderer): wgpu falls back to one
/// silently when no GPU driver is found, and it is far slower than the
/// `cpu` backend.
pub fn is_software_adapter(name: &str) -> bool {
    let name = name.to_lowercase();
    [
        "llvmpipe",
        "lavapipe",
        "swiftshader",
        "software",
        "basic render",
    ]
    .iter()
    .any(|s| name.contains(s))
}

fn adapter_name(backend: Backend) -> String {
    if backend == Backend::Cpu {
        return "CPU".into();
    }
    // Opening an adapter can panic inside wgpu on a machine without Vulkan.
    std::panic::catch_unwind(|| backend.device().identity().map(|i| i.name))
        .ok()
        .flatten()
        .unwrap_or_else(|| "unnamed wgpu adapter".into())
}

/// Total memory of the first NVIDIA GPU, rounded up to whole GB.
fn nvidia_smi_gb() -> Option<u32> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=memory.total", "--format=csv,noheader,nounits"])
        .output()
        .ok()?;
    let mib: u64 = String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()?;
    Some(mib.div_ceil(1024) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_limit_is_configured_else_the_device_else_the_host() {
        assert_eq!(memory_limit(Some(512), Backend::Cpu, 8), 512 << 20);
        assert_eq!(memory_limit(None, Backend::Wgpu, 8), 8 << 30);
        let host = host_memory().expect("Linux has /proc/meminfo");
        assert_eq!(memory_limit(None, Backend::Cpu, 8), host - (1 << 30));
    }

    #[test]
    fn software_renderers_are_recognised() {
        for name in [
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            "Lavapipe",
            "SwiftShader Device (Subzero)",
            "Microsoft Basic Render Driver",
        ] {
            assert!(is_software_adapter(name), "{name}");
        }
        for name in [
            "NVIDIA H200",
            "AMD Radeon RX 7900 XTX",
            "Intel(R) Arc(tm) A770",
        ] {
            assert!(!is_software_adapter(name), "{name}");
        }
    }

    #[test]
    fn configured_values_win_and_are_made_valid() {
        let config = GpuConfig {
            name: Some(format!("  {}  ", "G".repeat(80))),
            vram_gb: Some(24),
        };
        let c = detect(&config, Backend::Cpu).unwrap();
        assert_eq!((c.gpu_name.len(), c.vram_gb), (64, 24));
        let c = detect(
            &GpuConfig {
                name: None,
                vram_gb: Some(8),
            },
            Backend::Cpu,
        )
        .unwrap();
        assert_eq!(c.gpu_name, "CPU");
    }
}
