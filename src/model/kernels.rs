//! CPU kernels for incremental decoding, where a step has only a handful of rows and the cost is
//! streaming the weights: `out = x · Wᵀ` reading each weight row once, with AVX2/FMA when the CPU
//! has it (checked at run time) and a portable fallback otherwise.

use rayon::prelude::*;

/// Weight rows per parallel task of [`linear`].
const ROWS_PER_TASK: usize = 64;

/// A row-major matrix view: `rows` rows of `cols` values, row `r` starting at `r · stride`.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub stride: usize,
}

impl<'a> Rows<'a> {
    /// A dense `rows × cols` matrix.
    pub fn dense(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            stride: cols,
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0 || (self.rows - 1) * self.stride + self.cols <= self.data.len()
    }

    fn sub_rows(&self, start: usize, count: usize) -> Rows<'a> {
        let from = (start * self.stride).min(self.data.len());
        Rows {
            data: &self.data[from..],
            rows: count,
            cols: self.cols,
            stride: self.stride,
        }
    }
}

/// `out_t[j · x.rows + i] = Σ_t x[i, t] · w[j, t]` (the product transposed), single-threaded.
/// Panics if the views are inconsistent (an internal bug, never input-dependent).
pub fn matmul_t(x: Rows, w: Rows, out_t: &mut [f32]) {
    assert!(x.cols == w.cols && x.fits() && w.fits() && out_t.len() >= x.rows * w.rows);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA, and the bounds were checked above.
            unsafe { avx2::matmul_t(x, w, out_t) };
            return;
        }
    }
    portable_matmul_t(x, w, out_t);
}

/// `x[m, k] · W[n, k]ᵀ → [m, n]`, split over weight rows across the rayon pool.
pub fn linear(x: &[f32], m: usize, w: &[f32], n: usize, k: usize) -> Vec<f32> {
    let mut out_t = vec![0.0f32; n * m];
    let x = Rows::dense(x, m, k);
    let w = Rows::dense(w, n, k);
    out_t
        .par_chunks_mut(ROWS_PER_TASK * m.max(1))
        .enumerate()
        .for_each(|(task, chunk)| {
            let first = task * ROWS_PER_TASK;
            matmul_t(x, w.sub_rows(first, chunk.len() / m.max(1)), chunk);
        });
    if m == 1 {
        return out_t;
    }
    let mut out = vec![0.0f32; m * n];
    for (j, column) in out_t.chunks_exact(m).enumerate() {
        for (i, &value) in column.iter().enumerate() {
            out[i * n + j] = value;
        }
    }
    out
}

fn portable_matmul_t(x: Rows, w: Rows, out_t: &mut [f32]) {
    for j in 0..w.rows {
        let wr = &w.data[j * w.stride..j * w.stride + w.cols];
        for i in 0..x.rows {
            let xr = &x.data[i * x.stride..i * x.stride + x.cols];
            let mut lanes = [0.0f32; 8];
            let mut wc = wr.chunks_exact(8);
            let mut xc = xr.chunks_exact(8);
            for (a, b) in (&mut wc).zip(&mut xc) {
                for l in 0..8 {
                    lanes[l] += a[l] * b[l];
                }
            }
            let tail: f32 = wc
                .remainder()
                .iter()
                .zip(xc.remainder())
                .map(|(a, b)| a * b)
                .sum();
            out_t[j * x.rows + i] = lanes.iter().sum::<f32>() + tail;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Rows;
    use std::arch::x86_64::*;

    /// How many weight rows ahead to prefetch.
    const PREFETCH_ROWS: usize = 8;

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// `WR` weight rows × `XR` input rows, accumulated in registers over the shared axis.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block<const WR: usize, const XR: usize>(
        x: *const f32,
        x_stride: usize,
        w: *const f32,
        w_stride: usize,
        k: usize,
    ) -> [[f32; XR]; WR] {
        let mut acc = [[_mm256_setzero_ps(); XR]; WR];
        let k8 = k & !7;
        let mut t = 0;
        while t < k8 {
            let mut wv = [_mm256_setzero_ps(); WR];
            for (r, v) in wv.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(w.add(r * w_stride + t));
                // Keep memory busy while this block computes: fetch the next rows' lines early.
                // (Prefetching past the end is harmless: prefetches never fault.)
                let ahead = w.wrapping_add((r + PREFETCH_ROWS) * w_stride + t);
                _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
            }
            for c in 0..XR {
                let xv = _mm256_loadu_ps(x.add(c * x_stride + t));
                for (row_acc, &wr) in acc.iter_mut().zip(&wv) {
                    row_acc[c] = _mm256_fmadd_ps(wr, xv, row_acc[c]);
                }
            }
            t += 8;
        }
        let mut out = [[0.0f32; XR]; WR];
        for r in 0..WR {
            for c in 0..XR {
                let mut sum = hsum(acc[r][c]);
                for t in k8..k {
                    sum += *w.add(r * w_stride + t) * *x.add(c * x_stride + t);
                }
                out[r][c] = sum;
            }
        }
        out
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn store<const WR: usize, const XR: usize>(
        x: &Rows,
        w: &Rows,
        j: usize,
        i: usize,
        out_t: &mut [f32],
    ) {
        let block = block::<WR, XR>(
            x.data.as_ptr().add(i * x.stride),
            x.stride,
            w.data.as_ptr().add(j * w.stride),
            w.stride,
            x.cols,
        );
        for (r, row) in block.iter().enumerate() {
            for (c, &value) in row.iter().enumerate() {
                out_t[(j + r) * x.rows + i + c] = value;
            }
        }
    }

    /// Safety: AVX2+FMA available; `x`, `w` fit their data and `out_t` holds `x.rows · w.rows`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn matmul_t(x: Rows, w: Rows, out_t: &mut [f32]) {
        let mut j = 0;
        while j < w.rows {
            let wr = (w.rows - j).min(2);
            let mut i = 0;
            while i < x.rows {
                let xr = (x.rows - i).min(4);
                match (wr, xr) {
                    (2, 4) => store::<2, 4>(&x, &w, j, i, out_t),
                    (2, 3) => store::<2, 3>(&x, &w, j, i, out_t),
                    (2, 2) => store::<2, 2>(&x, &w, j, i, out_t),
                    (2, _) => store::<2, 1>(&x, &w, j, i, out_t),
                    (_, 4) => store::<1, 4>(&x, &w, j, i, out_t),
                    (_, 3) => store::<1, 3>(&x, &w, j, i, out_t),
                    (_, 2) => store::<1, 2>(&x, &w, j, i, out_t),
                    _ => store::<1, 1>(&x, &w, j, i, out_t),
                }
                i += xr;
            }
            j += wr;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], m: usize, w: &[f32], n: usize, k: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum();
            }
        }
        out
    }

    #[test]
    fn linear_matches_the_naive_product_for_awkward_sizes() {
        for (m, n, k) in [
            (1, 1, 1),
            (3, 5, 7),
            (10, 131, 21),
            (5, 2, 64),
            (9, 200, 33),
        ] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0)
                .collect();
            let got = linear(&x, m, &w, n, k);
            let want = naive(&x, m, &w, n, k);
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                    "{m}x{n}x{k}: {a} vs {b}"
                );
            }
            let mut portable = vec![0.0; m * n];
            portable_matmul_t(Rows::dense(&x, m, k), Rows::dense(&w, n, k), &mut portable);
            for j in 0..n {
                for i in 0..m {
                    assert!(
                        (portable[j * m + i] - want[i * n + j]).abs()
                            < 1e-4 * (1.0 + want[i * n + j].abs())
                    );
                }
            }
        }
    }

    #[test]
    fn strided_rows_are_respected() {
        // w rows of 3 values with stride 5 (e.g. the first entries of a longer cache row).
        let w = [1.0, 2.0, 3.0, 99.0, 99.0, 4.0, 5.0, 6.0, 99.0, 99.0];
        let x = [1.0, 1.0, 1.0];
        let mut out = [0.0; 2];
        matmul_t(
            Rows::dense(&x, 1, 3),
            Rows {
                data: &w,
                rows: 2,
                cols: 3,
                stride: 5,
            },
            &mut out,
        );
        assert_eq!(out, [6.0, 15.0]);
    }
}
