//! The register-blocked micro-kernel behind every product of the decoder (see [`super::packed`]):
//! a block of input rows times one packed panel, in AVX-512 or AVX2+FMA when the CPU reports it
//! (checked at run time) and in portable Rust otherwise. All `unsafe` code of the decoder lives
//! here.
//!
//! AVX-512 holds a whole panel in one register and twice as many rows' accumulators, so a step's
//! ten rows (five options × two tokens) share one pass over the panel; on CPUs with two 512-bit
//! FMA units (Intel server parts) it does twice the multiply-adds per cycle of AVX2.

/// Output columns per packed panel: one 64-byte cache line per input index.
pub const PANEL: usize = 16;

/// Most input rows any micro-kernel call handles (see [`Isa::row_block`]).
pub const MAX_ROW_BLOCK: usize = 12;

/// Results of one micro-kernel call: `rows × PANEL` values, row-major.
pub type Tile = [[f32; PANEL]; MAX_ROW_BLOCK];

/// Instruction sets the kernel is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F: 32 vector registers of 16 lanes.
    Avx512,
    /// AVX2 + FMA: 16 vector registers of 8 lanes.
    Avx2,
    /// Plain Rust, for any CPU.
    Portable,
}

impl Isa {
    /// The best instruction set this CPU supports (the check is cached by the standard library).
    pub fn detect() -> Self {
        if Self::avx512_present() {
            return Self::Avx512;
        }
        if Self::avx2_present() {
            return Self::Avx2;
        }
        Self::Portable
    }

    /// Every instruction set usable on this CPU, best first (for tests).
    #[cfg(test)]
    pub fn available() -> Vec<Self> {
        let mut isas = Vec::with_capacity(3);
        if Self::avx512_present() {
            isas.push(Self::Avx512);
        }
        if Self::avx2_present() {
            isas.push(Self::Avx2);
        }
        isas.push(Self::Portable);
        isas
    }

    /// Most input rows one micro-kernel call takes: all its accumulators must stay in registers.
    /// AVX2: 6 rows × 2 halves of a panel = 12 accumulators, plus the panel's two halves and a
    /// broadcast, fill its 16 registers. AVX-512: 12 rows × 1 register, plus the panel and the
    /// broadcasts, leave room in its 32. Portable code follows AVX2's blocking.
    pub fn row_block(self) -> usize {
        match self {
            Self::Avx512 => 12,
            Self::Avx2 | Self::Portable => 6,
        }
    }

    fn avx512_present() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    fn avx2_present() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// Where a micro-kernel reads its operands.
#[derive(Clone, Copy)]
pub struct Operands<'a> {
    /// Input rows, row `r` starting at `r · x_stride`.
    pub x: &'a [f32],
    pub x_stride: usize,
    pub rows: usize,
    /// One packed panel: `k × PANEL` values, input-major.
    pub panel: &'a [f32],
    /// Length of the shared (input) axis.
    pub k: usize,
}

/// `tile[r][c] = Σ_t x[r · x_stride + t] · panel[t · PANEL + c]` for `r < rows`. Panics if
/// `rows` is not in `1..=isa.row_block()` or a slice is too short (internal bugs, never
/// input-dependent).
pub fn micro(isa: Isa, ops: Operands, tile: &mut Tile) {
    assert!((1..=isa.row_block()).contains(&ops.rows));
    assert!(ops.x.len() >= (ops.rows - 1) * ops.x_stride + ops.k);
    assert!(ops.panel.len() >= ops.k * PANEL);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // SAFETY: `Avx512` is only used when the CPU has AVX-512F (`detect`, `available`),
            // and the asserts above bound every read of `x` and `panel`.
            unsafe { avx512::micro_dispatch(ops, tile) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            // SAFETY: `Avx2` is only used when the CPU has AVX2 and FMA (`detect`, `available`),
            // and the asserts above bound every read of `x` and `panel`.
            unsafe { avx2::micro_dispatch(ops, tile) }
        }
        _ => portable_micro(ops, tile),
    }
}

fn portable_micro(ops: Operands, tile: &mut Tile) {
    let k = ops.k;
    for (r, tile_row) in tile.iter_mut().enumerate().take(ops.rows) {
        let xr = &ops.x[r * ops.x_stride..r * ops.x_stride + k];
        *tile_row = [0.0; PANEL];
        for (&xv, w) in xr.iter().zip(ops.panel.chunks_exact(PANEL)) {
            for (a, &wv) in tile_row.iter_mut().zip(w) {
                *a += xv * wv;
            }
        }
    }
}

/// Panel rows (cache lines) the x86 kernels prefetch ahead of the one being multiplied.
#[cfg(target_arch = "x86_64")]
const PREFETCH_LINES: usize = 16;

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Operands, Tile, PANEL, PREFETCH_LINES};
    use std::arch::x86_64::*;

    /// Monomorphises [`micro`] for the block's row count.
    ///
    /// Safety: AVX-512F available; `ops` checked by [`super::micro`] (`1 ≤ rows ≤ 12`, every read
    /// in bounds).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn micro_dispatch(ops: Operands, tile: &mut Tile) {
        match ops.rows {
            1 => micro::<1>(ops, tile),
            2 => micro::<2>(ops, tile),
            3 => micro::<3>(ops, tile),
            4 => micro::<4>(ops, tile),
            5 => micro::<5>(ops, tile),
            6 => micro::<6>(ops, tile),
            7 => micro::<7>(ops, tile),
            8 => micro::<8>(ops, tile),
            9 => micro::<9>(ops, tile),
            10 => micro::<10>(ops, tile),
            11 => micro::<11>(ops, tile),
            _ => micro::<12>(ops, tile),
        }
    }

    /// `R` input rows × one panel (one 16-lane register), accumulated in registers.
    #[target_feature(enable = "avx512f")]
    unsafe fn micro<const R: usize>(ops: Operands, tile: &mut Tile) {
        let x = ops.x.as_ptr();
        let w = ops.panel.as_ptr();
        let mut acc = [_mm512_setzero_ps(); R];
        for t in 0..ops.k {
            let line = w.add(t * PANEL);
            let wv = _mm512_loadu_ps(line);
            // Prefetches never fault, so running past the panel's end is harmless.
            _mm_prefetch::<_MM_HINT_T0>(line.wrapping_add(PREFETCH_LINES * PANEL) as *const i8);
            for (r, row_acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(*x.add(r * ops.x_stride + t));
                *row_acc = _mm512_fmadd_ps(xv, wv, *row_acc);
            }
        }
        for (row, row_acc) in tile.iter_mut().zip(&acc) {
            _mm512_storeu_ps(row.as_mut_ptr(), *row_acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Operands, Tile, PANEL, PREFETCH_LINES};
    use std::arch::x86_64::*;

    /// Monomorphises [`micro`] for the block's row count.
    ///
    /// Safety: AVX2 and FMA available; `ops` checked by [`super::micro`] (`1 ≤ rows ≤ 6`, every
    /// read in bounds).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn micro_dispatch(ops: Operands, tile: &mut Tile) {
        match ops.rows {
            1 => micro::<1>(ops, tile),
            2 => micro::<2>(ops, tile),
            3 => micro::<3>(ops, tile),
            4 => micro::<4>(ops, tile),
            5 => micro::<5>(ops, tile),
            _ => micro::<6>(ops, tile),
        }
    }

    /// `R` input rows × one panel (two 8-lane halves), accumulated in registers.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn micro<const R: usize>(ops: Operands, tile: &mut Tile) {
        let x = ops.x.as_ptr();
        let w = ops.panel.as_ptr();
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for t in 0..ops.k {
            let line = w.add(t * PANEL);
            let lo = _mm256_loadu_ps(line);
            let hi = _mm256_loadu_ps(line.add(8));
            // Prefetches never fault, so running past the panel's end is harmless.
            _mm_prefetch::<_MM_HINT_T0>(line.wrapping_add(PREFETCH_LINES * PANEL) as *const i8);
            for (r, row_acc) in acc.iter_mut().enumerate() {
                let xv = _mm256_set1_ps(*x.add(r * ops.x_stride + t));
                row_acc[0] = _mm256_fmadd_ps(xv, lo, row_acc[0]);
                row_acc[1] = _mm256_fmadd_ps(xv, hi, row_acc[1]);
            }
        }
        for (row, row_acc) in tile.iter_mut().zip(&acc) {
            _mm256_storeu_ps(row.as_mut_ptr(), row_acc[0]);
            _mm256_storeu_ps(row.as_mut_ptr().add(8), row_acc[1]);
        }
    }
}
