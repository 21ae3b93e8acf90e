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
