//! Elementwise kernels for the CPU backend where Burn's are scalar.
//!
//! Burn Flex runs `exp`, `erf`, `sigmoid` and so softmax, SiLU and GELU one
//! element at a time through libm on one core: in the profiler these were a
//! third of a CPU image. The kernels here run on the tensor's host buffer,
//! split across rayon's pool, in loops LLVM vectorizes (AVX2+FMA where the
//! CPU has it, detected at run time). Each element's result depends on that
//! element (or its softmax row) alone, so the output is the same whatever the
//! thread count: a node stays byte-reproducible.
//!
//! `exp` is Cephes' `expf` polynomial (≤ 2 ulp over the range softmax and
//! SiLU use) and `erf` Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7,
//! under f32's rounding of GELU's output): nodes on the CPU and on a GPU
//! already differ by their `exp`s, which the consensus threshold absorbs.

use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;

/// Whether `x` lives on the CPU backend in f32, where these kernels apply.
pub fn applies<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32 && x.device() == Device::flex()
}

/// Elements per parallel task: large enough that rayon's overhead is noise.
const CHUNK: usize = 16 * 1024;

fn with_host<const D: usize>(x: Tensor<D>, f: impl Fn(&mut Vec<f32>)) -> Tensor<D> {
    let device = x.device();
    let shape = x.shape();
    let mut v: Vec<f32> = x.into_data().try_into_vec::<f32>().expect("an f32 tensor");
    f(&mut v);
    Tensor::from_data(TensorData::new(v, shape), &device)
}

/// A kernel over a slice, compiled twice: for AVX2+FMA (taken when the CPU
/// has them, checked at run time) and for the baseline target. The body is
/// an `#[inline(always)]` function so it is compiled inside each variant;
/// a closure passed in would be compiled once, for the baseline only.
macro_rules! simd_kernel {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU was just checked to have AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

simd_kernel! {
    fn silu_slice(data: &mut [f32]) {
        data.iter_mut().for_each(|x| *x = silu_scalar(*x))
    }
}

simd_kernel! {
    fn gelu_slice(data: &mut [f32]) {
        data.iter_mut().for_each(|x| *x = gelu_scalar(*x))
    }
}

simd_kernel! {
    fn scale_shift_slice(data: &mut [f32], a: f32, b: f32, silu: bool) {
        if silu {
            data.iter_mut().for_each(|x| *x = silu_scalar(*x * a + b))
        } else {
            data.iter_mut().for_each(|x| *x = *x * a + b)
        }
    }
}

simd_kernel! {
    /// Softmax of each `row`-long row; with `causal = Some(r0)`, row `i` first
    /// hides the keys after position `r0 + i`.
    fn softmax_rows(data: &mut [f32], row: usize, causal: Option<usize>) {
        for (i, r) in data.chunks_mut(row).enumerate() {
            if let Some(r0) = causal {
                r[r0 + i + 1..].fill(f32::NEG_INFINITY);
            }
            softmax_row(r);
        }
    }
}

/// `e^x` for f32 (Cephes `expf`): range reduction by ln 2, a degree-6
/// polynomial, and the exponent put into the bits. Branch-free, so it
/// vectorizes; inputs below -87.3 give ~1e-38 instead of 0, inputs above
/// 88.7 give ~f32::MAX.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer in plain float arithmetic.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.7);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5; // Cephes: 5.0000001201e-1, which is 0.5 in f32
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// `erf(x)`, Abramowitz & Stegun 7.1.26.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let mut p = 1.061_405_4;
    p = p * t - 1.453_152_1;
    p = p * t + 1.421_413_8;
    p = p * t - 0.284_496_73;
    p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp(-a * a);
    y.copysign(x)
}

#[inline(always)]
fn silu_scalar(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

#[inline(always)]
fn gelu_scalar(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `x · sigmoid(x)`.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    with_host(x, |v| v.par_chunks_mut(CHUNK).for_each(silu_slice))
}

/// GELU with the exact (erf) form, as `torch.nn.functional.gelu`.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    with_host(x, |v| v.par_chunks_mut(CHUNK).for_each(gelu_slice))
}

/// `y = x·scale[b, c] + shift[b, c]` over `x: [b, c, h, w]`, then SiLU if
/// `silu`: a normalisation's affine step and its activation in one pass.
pub fn scale_shift(x: Tensor<4>, scale: Tensor<2>, shift: Tensor<2>, silu: bool) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let scale: Vec<f32> = scale.into_data().try_into_vec::<f32>().expect("f32 scale");
    let shift: Vec<f32> = shift.into_data().try_into_vec::<f32>().expect("f32 shift");
    let plane = h * w;
    with_host(x, |v| {
        v.par_chunks_mut(plane)
            .zip(scale.par_iter().zip(shift.par_iter()))
            .for_each(|(p, (&a, &b))| scale_shift_slice(p, a, b, silu))
    })
}

/// Softmax over the last dimension.
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let row = x.dims()[D - 1];
    with_host(x, |v| {
        // Whole rows per task, several rows when they are short.
        let rows_per_task = (CHUNK / row).max(1);
        v.par_chunks_mut(row * rows_per_task)
            .for_each(|rows| softmax_rows(rows, row, None))
    })
}

/// Query rows per attention task: their score rows (`64·t` floats) stay in
/// L2 between the two matmuls.
const QUERY_BLOCK: usize = 64;

/// `softmax(q·kᵀ/√d)·v` for `q: [b, heads, s, d]`, `k: [b, heads, t, d]`,
/// `v: [b, heads, t, dv]`; `causal` hides later keys (needs `s == t`).
///
/// Blocks of query rows run in parallel: scores by gemm, the softmax with
/// the vectorized `exp`, the mix by gemm. Flex's fused attention runs the
/// same loop with a scalar libm `exp` per score, which dominated it. The
/// blocks split rows, never a row's sum, so results do not depend on the
/// thread count.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, causal: bool) -> Tensor<4> {
    let [b, heads, s, d] = q.dims();
    let t = k.dims()[2];
    let dv = v.dims()[3];
    assert!(
        !causal || s == t,
        "causal attention needs as many keys as queries"
    );
    let device = q.device();
    let host = |x: Tensor<4>| -> Vec<f32> { x.into_data().try_into_vec::<f32>().expect("f32") };
    let (q, k, v) = (host(q), host(k), host(v));
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0.0f32; b * heads * s * dv];
    out.par_chunks_mut(s * dv)
        .enumerate()
        .for_each(|(bh, out)| {
            let (q, k, v) = (
                &q[bh * s * d..(bh + 1) * s * d],
                &k[bh * t * d..(bh + 1) * t * d],
                &v[bh * t * dv..(bh + 1) * t * dv],
            );
            out.par_chunks_mut(QUERY_BLOCK * dv)
                .enumerate()
                .for_each(|(blk, out)| {
                    let r0 = blk * QUERY_BLOCK;
                    let n = out.len() / dv;
                    let mut scores = vec![0.0f32; n * t];
                    // SAFETY: every pointer/stride pair below stays inside its slice:
                    // q rows r0..r0+n of width d, k as a d×t matrix (column stride d),
                    // scores n×t, v t×dv and out n×dv, all row-major.
                    unsafe {
                        gemm::gemm(
                            n,
                            t,
                            d,
                            scores.as_mut_ptr(),
                            1,
                            t as isize,
                            false,
                            q[r0 * d..].as_ptr(),
                            1,
                            d as isize,
                            k.as_ptr(),
                            d as isize,
                            1,
                            0.0,
                            scale,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                    softmax_rows(&mut scores, t, causal.then_some(r0));
                    unsafe {
                        gemm::gemm(
                            n,
                            dv,
                            t,
                            out.as_mut_ptr(),
                            1,
                            dv as isize,
                            false,
                            scores.as_ptr(),
                            1,
                            t as isize,
                            v.as_ptr(),
                            1,
                            dv as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                });
        });
    Tensor::from_data(TensorData::new(out, [b, heads, s, dv]), &device)
}

#[inline(always)]
fn softmax_row(r: &mut [f32]) {
    // Eight independent accumulators: a fixed order (so a fixed result) that still vectorizes.
    let mut m = [f32::NEG_INFINITY; 8];
    let mut chunks = r.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            m[i] = m[i].max(c[i]);
        }
    }
    let max = chunks.remainder().iter().fold(
        m.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        |a, &b| a.max(b),
    );
    let mut s = [0.0f32; 8];
    let mut chunks = r.chunks_exact_mut(8);
    for c in &mut chunks {
        for i in 0..8 {
            c[i] = exp(c[i] - max);
            s[i] += c[i];
        }
    }
    let mut sum = s.iter().sum::<f32>();
    for x in chunks.into_remainder() {
        *x = exp(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    r.iter_mut().for_each(|x| *x *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_match_libm() {
        let mut worst_exp = 0.0f64;
        let mut worst_erf = 0.0f64;
        for i in -20000..=20000 {
            let x = i as f32 * 0.004; // -80 .. 80
            let e = exp(x) as f64;
            let want = (x as f64).exp();
            worst_exp = worst_exp.max(((e - want) / want).abs());
            let x = i as f32 * 0.00015; // -3 .. 3, where the series below is exact in f64
            worst_erf = worst_erf.max((erf(x) as f64 - libm_erf(x as f64)).abs());
            // Past 3, erf is within 2.3e-5 of ±1 and must stay there.
            let x = 3.0 + (i + 20000) as f32 * 1e-4; // 3 .. 7
            assert!(
                (1.0 - erf(x)).abs() <= 2.3e-5 && erf(-x) == -erf(x),
                "erf({x})"
            );
        }
        assert!(worst_exp < 3e-7, "exp relative error {worst_exp}");
        // 7.1.26 is within 1.5e-7; evaluating it in f32 adds a few ulp of 1.
        assert!(worst_erf < 6e-7, "erf absolute error {worst_erf}");
        assert_eq!(exp(-1e30), exp(-87.3));
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
    }

    /// erf by its series / continued fraction in f64, accurate far past f32.
    fn libm_erf(x: f64) -> f64 {
        // Abramowitz & Stegun 7.1.5 (series); for |x| <= 3 its cancellation costs < 4 digits of f64.
        let mut sum = 0.0;
        let mut term = x;
        for n in 0..200 {
            sum += term / (2 * n + 1) as f64;
            term *= -x * x / (n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn kernels_match_burn_on_the_cpu() {
        use burn::tensor::activation::{gelu as bgelu, silu as bsilu, softmax};
        use burn::tensor::Distribution;
        let d = Device::flex();
        let x = Tensor::<3>::random([3, 7, 77], Distribution::Normal(0.0, 3.0), &d);
        let close = |a: Tensor<3>, b: Tensor<3>, tol: f32, what: &str| {
            let a: Vec<f32> = a.into_data().try_into_vec::<f32>().unwrap();
            let b: Vec<f32> = b.into_data().try_into_vec::<f32>().unwrap();
            let worst = a
                .iter()
                .zip(&b)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(worst <= tol, "{what}: differs by {worst}");
        };
        close(silu(x.clone()), bsilu(x.clone()), 1e-5, "silu");
        close(gelu(x.clone()), bgelu(x.clone()), 1e-5, "gelu");
        close(
            softmax_last(x.clone()),
            softmax(x.clone(), 2),
            1e-6,
            "softmax",
        );
        // Attention against Burn's fused kernel, with and without the causal mask.
        for (s, t, causal) in [(70, 70, true), (130, 77, false)] {
            let q = Tensor::<4>::random([2, 3, s, 40], Distribution::Default, &d);
            let k = Tensor::<4>::random([2, 3, t, 40], Distribution::Default, &d);
            let v = Tensor::<4>::random([2, 3, t, 40], Distribution::Default, &d);
            let opts = burn::tensor::ops::AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: causal,
            };
            let want =
                burn::tensor::module::attention(q.clone(), k.clone(), v.clone(), None, None, opts);
            close(
                attention(q, k, v, causal).reshape([6, s, 40]),
                want.reshape([6, s, 40]),
                1e-5,
                "attention",
            );
        }
        let x4 = x.clone().reshape([3, 7, 7, 11]);
        let scale = Tensor::<2>::random([3, 7], Distribution::Default, &d);
        let shift = Tensor::<2>::random([3, 7], Distribution::Default, &d);
        let want = bsilu(
            x4.clone() * scale.clone().reshape([3, 7, 1, 1]) + shift.clone().reshape([3, 7, 1, 1]),
        );
        close(
            scale_shift(x4, scale, shift, true).reshape([3, 7, 77]),
            want.reshape([3, 7, 77]),
            1e-5,
            "scale_shift + silu",
        );
    }
}
