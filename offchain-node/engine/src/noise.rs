//! Host-side Gaussian noise, identical on every node and backend.
//!
//! # Specification
//!
//! A noise tensor is identified by `(seed, image, stream)`: `image` is the
//! 0-based image index within the task, `stream` is 0 for the initial latents
//! and `1 + i` for the ancestral noise of sampling step `i`.
//!
//! 1. Key: the 32 bytes `seed ‖ image ‖ stream ‖ 0u64`, each a little-endian
//!    `u64`. The generator is ChaCha20 (RFC 8439 block function, 20 rounds) with
//!    that key, nonce 0 and block counter from 0, read as a stream of
//!    little-endian `u64` words (`rand_chacha::ChaCha20Rng::from_seed`, `next_u64`).
//! 2. Uniforms: `u = ((w >> 11) + 0.5) · 2^-53` for each word `w`, in (0, 1).
//! 3. Normals, in pairs from consecutive uniforms `(u1, u2)` (Box–Muller, f64):
//!    `r = sqrt(-2 ln u1)`, `z1 = r cos(2π u2)`, `z2 = r sin(2π u2)`, each
//!    rounded to f32. A tensor of `n` values takes the first `n` normals.
//! 4. Layout: values fill the tensor `[channels, height, width]` in row-major
//!    order.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// What a noise tensor is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    InitialLatents,
    Ancestral { step: usize },
}

impl Stream {
    fn id(self) -> u64 {
        match self {
            Stream::InitialLatents => 0,
            Stream::Ancestral { step } => 1 + step as u64,
        }
    }
}

/// `len` standard-normal values for `(seed, image, stream)`.
pub fn normal(seed: u64, image: u32, stream: Stream, len: usize) -> Vec<f32> {
    let mut key = [0u8; 32];
    key[0..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&u64::from(image).to_le_bytes());
    key[16..24].copy_from_slice(&stream.id().to_le_bytes());
    let mut rng = ChaCha20Rng::from_seed(key);
    let mut uniform = || ((rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
    let mut out = Vec::with_capacity(len + 1);
    while out.len() < len {
        let (u1, u2) = (uniform(), uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let angle = 2.0 * std::f64::consts::PI * u2;
        out.push((r * angle.cos()) as f32);
        out.push((r * angle.sin()) as f32);
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_values_and_prefix_stable() {
        let a = normal(42, 0, Stream::InitialLatents, 1001);
        let b = normal(42, 0, Stream::InitialLatents, 10);
        assert_eq!(&a[..10], &b[..]);
        assert_eq!(a, normal(42, 0, Stream::InitialLatents, 1001));
    }

    #[test]
    fn image_stream_and_seed_each_change_the_values() {
        let base = normal(1, 0, Stream::InitialLatents, 64);
        assert_ne!(base, normal(2, 0, Stream::InitialLatents, 64));
        assert_ne!(base, normal(1, 1, Stream::InitialLatents, 64));
        assert_ne!(base, normal(1, 0, Stream::Ancestral { step: 0 }, 64));
    }

    #[test]
    fn values_are_standard_normal() {
        let v = normal(7, 3, Stream::InitialLatents, 200_000);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "variance {var}");
    }

    #[test]
    fn matches_the_independent_implementation_of_the_spec() {
        // From scripts/tiny_reference.py's pure-Python ChaCha20 + Box-Muller
        // (`noise_first8_seed0_image0` in tests/data/tiny_reference.json).
        let want: [f32; 8] = [
            0.578_820_65,
            0.901_297_45,
            0.365_526_62,
            -2.090_554,
            0.231_253_76,
            1.065_529_2,
            -2.067_446,
            -0.327_356_28,
        ];
        assert_eq!(normal(0, 0, Stream::InitialLatents, 8), want);
    }
}
