//! Reproducible latency-like samples for tests and benches (no RNG crate: the same values everywhere).

/// `n` lognormal-ish latencies around 5 ms, exp(N(ln 5 ms, `sigma`)), from a fixed splitmix64
/// sequence seeded with `seed` through Box-Muller: the same values on every run.
pub fn lognormal(seed: u64, n: usize, sigma: f64) -> Vec<f64> {
    let mut s = seed;
    let mut unif = move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (unif().max(1e-300), unif());
            let g = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (0.005f64.ln() + sigma * g).exp()
        })
        .collect()
}
