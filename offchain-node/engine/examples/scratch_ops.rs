use burn::tensor::activation::gelu;
use burn::tensor::module::{layer_norm, linear};
use burn::tensor::{Device, Tensor, Distribution};
use std::time::Instant;

fn t<T>(name: &str, n: usize, mut f: impl FnMut() -> T) {
    f();
    let t0 = Instant::now();
    for _ in 0..n { let _ = f(); }
    println!("{name:<30} {:8.3} ms", t0.elapsed().as_secs_f64() * 1e3 / n as f64);
}

fn main() {
    let d = Device::flex();
    let x = Tensor::<3>::random([2, 256, 64], Distribution::Default, &d);
    let w1 = Tensor::<2>::random([64, 512], Distribution::Default, &d);
    let b1 = Tensor::<1>::random([512], Distribution::Default, &d);
    let w2 = Tensor::<2>::random([256, 64], Distribution::Default, &d);
    let g = Tensor::<1>::ones([64], &d);
    let bb = Tensor::<1>::zeros([64], &d);
    t("layer_norm", 50, || layer_norm(x.clone(), g.clone(), Some(bb.clone()), 1e-5).into_data());
    t("linear 64->512", 50, || linear(x.clone(), w1.clone(), Some(b1.clone())).into_data());
    let h = linear(x.clone(), w1.clone(), Some(b1.clone()));
    t("slice+gelu+mul", 50, || {
        let v = h.clone().slice([0..2, 0..256, 0..256]);
        let gt = h.clone().slice([0..2, 0..256, 256..512]);
        (v * gelu(gt)).into_data()
    });
    let m = Tensor::<3>::random([2, 256, 256], Distribution::Default, &d);
    t("gelu contiguous", 50, || gelu(m.clone()).into_data());
    t("mul contiguous", 50, || (m.clone() * m.clone()).into_data());
    t("add contiguous", 50, || (m.clone() + m.clone()).into_data());
    t("linear 256->64", 50, || linear(m.clone(), w2.clone(), None).into_data());
    t("matmul 512x256x64", 50, || m.clone().reshape([512, 256]).matmul(w2.clone()).into_data());
    let big = Tensor::<2>::random([512, 512], Distribution::Default, &d);
    let bw = Tensor::<2>::random([512, 512], Distribution::Default, &d);
    t("matmul 512^3", 20, || big.clone().matmul(bw.clone()).into_data());
    let w1t = Tensor::<2>::random([512, 64], Distribution::Default, &d).transpose();
    t("linear 64->512 w transposed", 50, || linear(x.clone(), w1t.clone(), Some(b1.clone())).into_data());
    t("linear 64->512 no bias", 50, || linear(x.clone(), w1.clone(), None).into_data());
    t("matmul 2d 512x64x512", 50, || x.clone().reshape([512, 64]).matmul(w1.clone()).into_data());
    let q = Tensor::<4>::random([2, 8, 256, 8], Distribution::Default, &d);
    let opts = burn::tensor::ops::AttentionModuleOptions { scale: None, softcap: None, is_causal: false };
    t("attention fused 2x8x256x8", 50, || burn::tensor::module::attention(q.clone(), q.clone(), q.clone(), None, None, opts).into_data());
    t("split heads copy", 50, || x.clone().reshape([2, 256, 8, 8]).swap_dims(1, 2).into_data());
    t("erf", 50, || m.clone().erf().into_data());
    t("tanh", 50, || m.clone().tanh().into_data());
    t("exp", 50, || m.clone().exp().into_data());
    t("sigmoid", 50, || burn::tensor::activation::sigmoid(m.clone()).into_data());
    t("swap_dims+reshape", 50, || m.clone().swap_dims(1, 2).reshape([2, 256*256]).into_data());
}
