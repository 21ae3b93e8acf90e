//! pHash golden vectors: `data/phash_golden.json` was written by the
//! independent numpy implementation in `data/phash_golden.py` from the spec in
//! `hydrogen_sdk::phash`; the images are drawn here by the same formulas.

use hydrogen_sdk::phash::{hamming, phash, phash_images, PHASH_BYTES};
use image::{Rgb, RgbImage};

fn xorshift32(state: &mut u32) -> u32 {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    *state
}

fn pattern(kind: &str, w: u32, h: u32, seed: u32) -> RgbImage {
    match kind {
        "noise" => {
            let mut state = seed;
            let mut img = RgbImage::new(w, h);
            for y in 0..h {
                for x in 0..w {
                    let mut c = || (xorshift32(&mut state) >> 24) as u8;
                    img.put_pixel(x, y, Rgb([c(), c(), c()]));
                }
            }
            img
        }
        "waves" => RgbImage::from_fn(w, h, |x, y| {
            Rgb([
                ((x * 7 + y * 3 + seed) % 256) as u8,
                ((x * y + seed) % 256) as u8,
                ((x ^ y) % 256) as u8,
            ])
        }),
        "blocks" => RgbImage::from_fn(w, h, |x, y| {
            if (x / 16 + y / 16 + seed) % 2 == 1 {
                Rgb([200, 40, 90])
            } else {
                Rgb([20, 180, 60])
            }
        }),
        "flat" => RgbImage::from_pixel(w, h, Rgb([(seed % 256) as u8; 3])),
        other => panic!("unknown pattern {other}"),
    }
}

fn golden() -> Vec<(RgbImage, String, [u8; PHASH_BYTES])> {
    let text = include_str!("data/phash_golden.json");
    let cases: Vec<serde_json::Value> = serde_json::from_str(text).expect("golden JSON");
    cases
        .iter()
        .map(|c| {
            let (kind, w, h, seed) = (
                c["kind"].as_str().unwrap(),
                c["width"].as_u64().unwrap() as u32,
                c["height"].as_u64().unwrap() as u32,
                c["seed"].as_u64().unwrap() as u32,
            );
            let hex = c["phash"].as_str().unwrap();
            let mut want = [0u8; PHASH_BYTES];
            for (i, b) in want.iter_mut().enumerate() {
                *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
            }
            (
                pattern(kind, w, h, seed),
                format!("{kind} {w}x{h} seed {seed}"),
                want,
            )
        })
        .collect()
}

#[test]
fn matches_the_independent_reference_bit_for_bit() {
    let cases = golden();
    assert!(cases.len() >= 10);
    for (img, name, want) in &cases {
        assert_eq!(phash(img), *want, "{name}");
    }
}

#[test]
fn result_bytes_are_hashes_concatenated_in_order() {
    let cases = golden();
    let images: Vec<RgbImage> = cases.iter().map(|c| c.0.clone()).collect();
    let want: Vec<u8> = cases.iter().flat_map(|c| c.2).collect();
    assert_eq!(phash_images(&images), want);
}

#[test]
fn small_pixel_noise_moves_few_bits_and_other_images_many() {
    // A smooth scene, like a generated image: gradients and a soft disc.
    let base = RgbImage::from_fn(512, 512, |x, y| {
        let d2 = (x as f64 - 300.0).powi(2) + (y as f64 - 200.0).powi(2);
        let disc = 255.0 / (1.0 + d2 / 4000.0);
        Rgb([(x / 2) as u8, (y / 2) as u8, disc as u8])
    });
    let mut state = 99u32;
    let mut noisy = base.clone();
    for p in noisy.pixels_mut() {
        for c in p.0.iter_mut() {
            let delta = (xorshift32(&mut state) % 7) as i32 - 3;
            *c = (*c as i32 + delta).clamp(0, 255) as u8;
        }
    }
    let near = hamming(phash(&base), phash(&noisy));
    assert!(near <= 2, "±3 levels of noise moved {near} bits");

    let other = pattern("noise", 512, 512, 5);
    let far = hamming(phash(&base), phash(&other));
    assert!(far >= 16, "an unrelated image is only {far} bits away");
}
