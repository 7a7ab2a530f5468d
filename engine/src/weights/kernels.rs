//! Branch-free weighing kernels over blocks of raw values, dispatched at run
//! time to AVX-512 or AVX2 where the CPU has them (one binary for every
//! x86-64 machine).
//!
//! # Nova compatibility
//! The arithmetic is Nova's, operation for operation: clamp to
//! `[minval, maxval]`, then `(x - lo) / (hi - lo)` (a true division, not a
//! multiplication by the reciprocal, so results are bit-identical), then
//! `weight += multiplier * n` in weigher order.

use multiversion::multiversion;

/// Lanes kept apart in reductions so the compiler can use vector min/max.
const LANES: usize = 8;

/// Clamps every value of `buf` into `[minc, maxc]` in place.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
pub fn clamp(buf: &mut [f64], minc: f64, maxc: f64) {
    for x in buf.iter_mut() {
        let v = if *x < minc { minc } else { *x };
        *x = if v > maxc { maxc } else { v };
    }
}

/// Expands mask words into one byte per host (1 = survivor), so the
/// reductions below select with a byte compare instead of a variable shift.
pub fn expand_mask(words: &[u64], sel: &mut [u8]) {
    for (i, s) in sel.iter_mut().enumerate() {
        *s = ((words[i / 64] >> (i % 64)) & 1) as u8;
    }
}

/// Minimum and maximum of the values whose selector byte is set.
/// `(+inf, -inf)` when none is.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
pub fn masked_min_max(buf: &[f64], sel: &[u8]) -> (f64, f64) {
    let n = buf.len().min(sel.len());
    let (buf, sel) = (&buf[..n], &sel[..n]);
    let mut lo = [f64::INFINITY; LANES];
    let mut hi = [f64::NEG_INFINITY; LANES];
    let mut xs = buf.chunks_exact(LANES);
    let mut ss = sel.chunks_exact(LANES);
    for (x, s) in (&mut xs).zip(&mut ss) {
        let x: &[f64; LANES] = x.try_into().expect("exact chunk");
        let s: &[u8; LANES] = s.try_into().expect("exact chunk");
        for l in 0..LANES {
            let on = s[l] != 0;
            let a = if on { x[l] } else { f64::INFINITY };
            let b = if on { x[l] } else { f64::NEG_INFINITY };
            lo[l] = if a < lo[l] { a } else { lo[l] };
            hi[l] = if b > hi[l] { b } else { hi[l] };
        }
    }
    for (&x, &s) in xs.remainder().iter().zip(ss.remainder()) {
        if s != 0 {
            lo[0] = if x < lo[0] { x } else { lo[0] };
            hi[0] = if x > hi[0] { x } else { hi[0] };
        }
    }
    let lo = lo.iter().copied().fold(f64::INFINITY, |m, x| if x < m { x } else { m });
    let hi = hi.iter().copied().fold(f64::NEG_INFINITY, |m, x| if x > m { x } else { m });
    (lo, hi)
}

/// The largest value of `buf` (`-inf` when empty). An upper bound for any
/// subset, which is all the top-k skip test needs.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
pub fn max(buf: &[f64]) -> f64 {
    let mut m = [f64::NEG_INFINITY; LANES];
    let mut chunks = buf.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            m[l] = m[l].max(c[l]);
        }
    }
    let tail = chunks.remainder().iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m.iter().copied().fold(tail, f64::max)
}

/// `(min, index of its first occurrence, max, index of its first
/// occurrence)` over every value of a non-empty `buf`.
pub fn min_max_arg(buf: &[f64]) -> (f64, u32, f64, u32) {
    let (mut lo, mut lo_i, mut hi, mut hi_i) = (f64::INFINITY, 0u32, f64::NEG_INFINITY, 0u32);
    for (i, &x) in buf.iter().enumerate() {
        if x < lo {
            lo = x;
            lo_i = i as u32;
        }
        if x > hi {
            hi = x;
            hi_i = i as u32;
        }
    }
    (lo, lo_i, hi, hi_i)
}

/// `out[i] = src[i] as f64`.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
pub fn widen_i32(src: &[i32], out: &mut [f64]) {
    for (o, &x) in out.iter_mut().zip(src) {
        *o = x as f64;
    }
}

/// `out[i] = src[i] as f64`.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
pub fn widen_i64(src: &[i64], out: &mut [f64]) {
    for (o, &x) in out.iter_mut().zip(src) {
        *o = x as f64;
    }
}

/// `out[i] = table[codes[i]] - sub[i] as f64` (CPUWeigher: capacity per
/// inventory code minus vCPUs used). `table` must not be empty.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
pub fn table_minus(table: &[f64], codes: &[u32], sub: &[i32], out: &mut [f64]) {
    let last = table.len() - 1;
    for ((o, &c), &u) in out.iter_mut().zip(codes).zip(sub) {
        *o = table[(c as usize).min(last)] - u as f64;
    }
}

/// `acc[i] += m * ((buf[i] - lo) / range)` with one multiplier.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
pub fn accumulate(acc: &mut [f64], buf: &[f64], m: f64, lo: f64, range: f64) {
    for (a, &x) in acc.iter_mut().zip(buf) {
        *a += m * ((x - lo) / range);
    }
}

/// `acc[i] += ms[codes[i]] * ((buf[i] - lo) / range)`: a per-host
/// multiplier looked up by aggregate-set code. The lookup is done first into
/// `mult` (scratch of `acc.len()`), so the arithmetic loop has no gather and
/// vectorizes.
pub fn accumulate_coded(
    acc: &mut [f64],
    buf: &[f64],
    ms: &[f64],
    codes: &[u32],
    lo: f64,
    range: f64,
    mult: &mut [f64],
) {
    for (m, &c) in mult.iter_mut().zip(codes) {
        *m = ms[c as usize];
    }
    accumulate_each(acc, buf, mult, lo, range);
}

/// `acc[i] += mult[i] * ((buf[i] - lo) / range)`.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn accumulate_each(acc: &mut [f64], buf: &[f64], mult: &[f64], lo: f64, range: f64) {
    for ((a, &x), &m) in acc.iter_mut().zip(buf).zip(mult) {
        *a += m * ((x - lo) / range);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_min_max_ignores_cleared_hosts() {
        let buf: Vec<f64> = (0..200).map(|i| i as f64).collect();
        let words = [0u64, 1 << 5 | 1 << 9, 0, 1 << 3]; // hosts 69, 73, 195
        let mut sel = vec![0u8; 200];
        expand_mask(&words, &mut sel);
        assert_eq!(masked_min_max(&buf, &sel), (69.0, 195.0));
        expand_mask(&[0, 0, 0, 0], &mut sel);
        assert_eq!(masked_min_max(&buf, &sel), (f64::INFINITY, f64::NEG_INFINITY));
    }

    #[test]
    fn accumulate_matches_the_scalar_formula_bit_for_bit() {
        let buf: Vec<f64> = (0..300).map(|i| (i * 7919 % 1000) as f64 * 1.37).collect();
        let mut acc = vec![0.25; 300];
        let m = -1.5;
        accumulate(&mut acc, &buf, m, 3.0, 997.0);
        for (i, a) in acc.iter().enumerate() {
            assert_eq!(a.to_bits(), (0.25 + m * ((buf[i] - 3.0) / 997.0)).to_bits());
        }
        let codes: Vec<u32> = (0..300).map(|i| i % 3).collect();
        let ms = [2.0, -1.0, 0.5];
        let mut acc2 = vec![0.25; 300];
        let mut scratch = vec![0.0; 300];
        accumulate_coded(&mut acc2, &buf, &ms, &codes, 3.0, 997.0, &mut scratch);
        for (i, a) in acc2.iter().enumerate() {
            assert_eq!(a.to_bits(), (0.25 + ms[i % 3] * ((buf[i] - 3.0) / 997.0)).to_bits());
        }
        let mut c = vec![0.0; 300];
        clamp(&mut c, 1.0, 2.0);
        assert!(c.iter().all(|&x| x == 1.0));
    }
}
