//! The network's perceptual hash: 64 bits per image that honest nodes on
//! different hardware agree on to within a few bits.
//!
//! Nodes commit these hashes, the relay re-computes them from uploaded images,
//! and the contract compares them, so every step below is part of the protocol.
//! Changing any of them is a protocol change.
//!
//! # Specification
//!
//! Input: an 8-bit RGB image of any size `W × H` (both ≥ 1). Alpha, if any, is
//! dropped before hashing ([`phash_dynamic`]). All arithmetic is IEEE-754 f64.
//!
//! 1. **Grayscale.** `Y = (299·R + 587·G + 114·B) / 1000` per pixel (BT.601
//!    luma on the stored 8-bit values; no gamma decoding).
//! 2. **Resize to 32 × 32**, separably: first each row from `W` to 32 samples,
//!    then each column of that from `H` to 32. One axis from `S` to 32 samples
//!    uses a triangle (tent) filter widened when shrinking:
//!    `scale = S / 32`, `fs = max(scale, 1)`; output sample `i` (0-based) has
//!    centre `c = (i + 0.5)·scale` and is `Σ_j w_j·x_j / Σ_j w_j` over source
//!    indices `j` in `0..S` with `w_j = 1 − |(j + 0.5 − c) / fs| > 0`.
//!    Nothing outside the image is sampled (no padding, no clamping).
//! 3. **DCT.** The unnormalised 2-D DCT-II of the 32 × 32 array `P[y][x]`:
//!    `C[u][v] = Σ_y Σ_x P[y][x]·cos(π(2y+1)u/64)·cos(π(2x+1)v/64)`,
//!    computed along rows then columns.
//! 4. **Low frequencies.** Keep the 64 coefficients `C[u][v]` with
//!    `u, v ∈ 0..8`, the DC term `C[0][0]` included.
//! 5. **Quantise.** `q[u][v] = round(C[u][v] · 2^16)` as an integer, halves
//!    rounded away from zero. Without this, coefficients that are exactly 0
//!    in exact arithmetic (flat or symmetric regions) would be ordered by
//!    floating-point noise, which differs between implementations.
//! 6. **Median and bits.** Sort the 64 values of `q`; with `a` and `b` the
//!    32nd and 33rd (0-based indices 31 and 32), bit `k = 8u + v` is 1 iff
//!    `2·q[u][v] > a + b`, i.e. strictly above the median `(a + b) / 2`.
//! 7. **Order.** Bit `k` is bit `63 − k` of a `u64` (bit 0 is the most
//!    significant), serialised big-endian: byte 0 holds `u = 0`, `v = 0..8`
//!    from its most significant bit down.
//!
//! A task's result is the hashes of its images concatenated in image-index
//! order, [`PHASH_BYTES`] bytes each ([`phash_images`]). Two results agree when
//! every image's Hamming distance is within the threshold
//! ([`outcomes_agree`], [`DEFAULT_DISTANCE_THRESHOLD`]).
//!
//! The 32 × 32 DCT pHash is the common one (Python `imagehash.phash`); the
//! resize filter is written out here because libraries' "bilinear" differ in
//! their support and edge handling, which would move bits between nodes.
//! `sdk/tests/data/phash_golden.py` re-implements this text independently
//! with numpy, and its output is pinned in `sdk/tests/phash.rs`.
//!
//! ```
//! use hydrogen_sdk::phash::{hamming, phash};
//! let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 90]));
//! let h = phash(&img);
//! assert_eq!(hamming(h, h), 0);
//! ```

pub use hydrogen_types::{
    distances, hamming, outcomes_agree, DEFAULT_DISTANCE_THRESHOLD, PHASH_BYTES,
};

use image::{DynamicImage, RgbImage};
use rustdct::DctPlanner;

/// Side of the downscaled image the DCT runs on.
pub const RESIZE: usize = 32;
/// Side of the block of low-frequency coefficients that becomes the hash.
pub const LOW_FREQ: usize = 8;

/// The 64-bit pHash of `img`, as [`PHASH_BYTES`] big-endian bytes.
pub fn phash(img: &RgbImage) -> [u8; PHASH_BYTES] {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let gray: Vec<f64> = img
        .pixels()
        .map(|p| {
            (299.0 * f64::from(p[0]) + 587.0 * f64::from(p[1]) + 114.0 * f64::from(p[2])) / 1000.0
        })
        .collect();
    phash_gray(&gray, w, h)
}

/// [`phash`] of any image the `image` crate decodes; alpha is ignored.
pub fn phash_dynamic(img: &DynamicImage) -> [u8; PHASH_BYTES] {
    phash(&img.to_rgb8())
}

/// The result bytes of a task: each image's hash in order, concatenated.
/// Whether `png` is a readable PNG whose pHash is `want`: the check the
/// relay applies to an upload and an app to what it downloads, so the two
/// can never disagree. `index` names the image in the message.
pub fn check_png(png: &[u8], index: usize, want: [u8; PHASH_BYTES]) -> Result<(), String> {
    let image = image::load_from_memory_with_format(png, image::ImageFormat::Png)
        .map_err(|e| format!("image {index} is not a readable PNG: {e}"))?;
    let got = phash_dynamic(&image);
    if got != want {
        return Err(format!(
            "image {index}'s pHash is 0x{} but the accepted result has 0x{}",
            hex::encode(got),
            hex::encode(want)
        ));
    }
    Ok(())
}

pub fn phash_images<'a>(images: impl IntoIterator<Item = &'a RgbImage>) -> Vec<u8> {
    images.into_iter().flat_map(phash).collect()
}

fn phash_gray(gray: &[f64], w: usize, h: usize) -> [u8; PHASH_BYTES] {
    assert!(w > 0 && h > 0, "pHash of an empty image");
    // Rows first (W -> 32), then columns (H -> 32), as the spec orders them.
    let wx = resize_weights(w, RESIZE);
    let wy = resize_weights(h, RESIZE);
    let mut rows = vec![0.0f64; h * RESIZE];
    for y in 0..h {
        let src = &gray[y * w..(y + 1) * w];
        for (i, taps) in wx.iter().enumerate() {
            rows[y * RESIZE + i] = apply(taps, |j| src[j]);
        }
    }
    let mut small = vec![0.0f64; RESIZE * RESIZE];
    for x in 0..RESIZE {
        for (i, taps) in wy.iter().enumerate() {
            small[i * RESIZE + x] = apply(taps, |j| rows[j * RESIZE + x]);
        }
    }

    let dct = DctPlanner::new().plan_dct2(RESIZE);
    for row in small.chunks_exact_mut(RESIZE) {
        dct.process_dct2(row);
    }
    let mut column = [0.0f64; RESIZE];
    for x in 0..RESIZE {
        for y in 0..RESIZE {
            column[y] = small[y * RESIZE + x];
        }
        dct.process_dct2(&mut column);
        for y in 0..RESIZE {
            small[y * RESIZE + x] = column[y];
        }
    }

    let mut low = [0i64; LOW_FREQ * LOW_FREQ];
    for u in 0..LOW_FREQ {
        for v in 0..LOW_FREQ {
            // |C| <= 255 * 32 * 32 < 2^18, so C * 2^16 fits an i64 exactly; `round` is half away from zero.
            low[u * LOW_FREQ + v] = (small[u * RESIZE + v] * 65536.0).round() as i64;
        }
    }
    let mut sorted = low;
    sorted.sort_unstable();
    let twice_median = sorted[31] + sorted[32];
    let bits = low
        .iter()
        .enumerate()
        .filter(|(_, &q)| 2 * q > twice_median)
        .fold(0u64, |acc, (k, _)| acc | (1u64 << (63 - k)));
    bits.to_be_bytes()
}

/// Source taps of one axis: `(first index, normalised weights)` per output sample.
fn resize_weights(src: usize, dst: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = src as f64 / dst as f64;
    let fs = scale.max(1.0);
    (0..dst)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            // Every j with a positive weight lies in (center - fs - 0.5, center + fs - 0.5).
            let lo = (center - fs - 0.5).floor().max(0.0) as usize;
            let hi = ((center + fs - 0.5).ceil() as usize).min(src - 1);
            let mut first = None;
            let mut weights = Vec::new();
            for j in lo..=hi {
                let w = 1.0 - ((j as f64 + 0.5 - center) / fs).abs();
                if w > 0.0 {
                    first.get_or_insert(j);
                    weights.push(w);
                }
            }
            let sum: f64 = weights.iter().sum();
            weights.iter_mut().for_each(|w| *w /= sum);
            (
                first.expect("the nearest source sample always has a positive weight"),
                weights,
            )
        })
        .collect()
}

fn apply((first, weights): &(usize, Vec<f64>), sample: impl Fn(usize) -> f64) -> f64 {
    weights
        .iter()
        .enumerate()
        .map(|(k, w)| w * sample(first + k))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_weights_are_normalised_and_local() {
        for src in [1, 3, 31, 32, 33, 64, 520] {
            for (i, (first, w)) in resize_weights(src, RESIZE).iter().enumerate() {
                assert!(
                    (w.iter().sum::<f64>() - 1.0).abs() < 1e-12,
                    "src {src} out {i}"
                );
                assert!(first + w.len() <= src);
            }
        }
    }

    #[test]
    fn identity_size_resize_copies_pixels() {
        for (i, (first, w)) in resize_weights(RESIZE, RESIZE).iter().enumerate() {
            assert_eq!((*first, w.as_slice()), (i, &[1.0][..]));
        }
    }

    #[test]
    fn flat_image_sets_only_the_dc_bit() {
        let img = RgbImage::from_pixel(40, 40, image::Rgb([77, 77, 77]));
        assert_eq!(u64::from_be_bytes(phash(&img)), 1 << 63);
    }

    #[test]
    fn alpha_is_ignored() {
        let rgb = RgbImage::from_fn(50, 30, |x, y| image::Rgb([x as u8 * 5, y as u8 * 8, 3]));
        let mut rgba = DynamicImage::ImageRgb8(rgb.clone()).to_rgba8();
        rgba.pixels_mut().for_each(|p| p[3] = 10);
        assert_eq!(phash_dynamic(&DynamicImage::ImageRgba8(rgba)), phash(&rgb));
    }
}
