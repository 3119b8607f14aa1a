//! The register-blocked micro-kernel behind every product of the decoder (see [`super::packed`]):
//! a block of input rows times one or more packed panels, in AVX-512 or AVX2+FMA when the CPU
//! reports it (checked at run time) and in portable Rust otherwise. All `unsafe` arithmetic of the
//! decoder lives here (the other `unsafe` code is [`super::team`]'s hand-over of parallel work).
//!
//! Weights may be stored as f32 or as 16-bit floats (f16, bf16) that the kernels widen to f32 as
//! they load them: the products equal those of upcasting at load time, with half the bytes to
//! stream from memory, which is what bounds a decoding step.
//!
//! Beside it live the vectorised helpers of the decoder's per-row work (the SwiGLU gate, the
//! softmax, reductions in interleaved partial sums), compiled for the widest instruction set the
//! CPU has.
//!
//! AVX-512 holds a whole panel in one register and twice as many rows' accumulators, so a step's
//! ten rows (five options × two tokens) share one pass over the panel; on CPUs with two 512-bit
//! FMA units (Intel server parts) it does twice the multiply-adds per cycle of AVX2. It also
//! takes two or four panels per call ([`Isa::panel_group`]), which halves the loads per
//! multiply-add and gives a single-row step several accumulator chains.

/// Output columns per packed panel: one 64-byte cache line per input index.
pub const PANEL: usize = 16;

/// Most input rows any micro-kernel call handles (see [`Isa::row_block`]).
pub const MAX_ROW_BLOCK: usize = 12;

/// Most panels one micro-kernel call multiplies side by side (see [`Isa::panel_group`]).
pub const MAX_PANEL_GROUP: usize = 4;

/// Most rows a block may have to take [`MAX_PANEL_GROUP`] panels per call in AVX-512's registers
/// (`rows × panels ≤ 24` accumulators).
const WIDE_GROUP_ROWS: usize = 6;

/// Results of one micro-kernel call: `rows × (panels · PANEL)` values, row-major, panel `p`'s
/// columns at `p · PANEL`.
pub type Tile = [[f32; MAX_PANEL_GROUP * PANEL]; MAX_ROW_BLOCK];

/// The environment variable that forces the kernel's instruction set (see [`Isa::detect`]).
pub const ISA_ENV: &str = "COMPER_ISA";

/// Instruction sets the kernel is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F: 32 vector registers of 16 lanes.
    Avx512,
    /// AVX2 + FMA (+ F16C for 16-bit weights): 16 vector registers of 8 lanes.
    Avx2,
    /// Plain Rust, for any CPU.
    Portable,
}

impl Isa {
    /// The instruction set the products use: the best this CPU supports, or the one
    /// `COMPER_ISA` names (`avx512`, `avx2`, `portable`) when the CPU supports it, so that tests
    /// can run every path on one machine. Read once.
    pub fn detect() -> Self {
        static CHOSEN: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let best = Self::best_present();
            std::env::var(ISA_ENV)
                .ok()
                .and_then(|name| Self::parse(&name))
                .filter(|&isa| Self::supports(isa))
                .unwrap_or(best)
        })
    }

    /// The instruction set of a `COMPER_ISA` value.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "avx512" | "avx-512" => Some(Self::Avx512),
            "avx2" => Some(Self::Avx2),
            "portable" => Some(Self::Portable),
            _ => None,
        }
    }

    /// The best instruction set this CPU supports (the check is cached by the standard library).
    fn best_present() -> Self {
        if Self::avx512_present() {
            return Self::Avx512;
        }
        if Self::avx2_present() {
            return Self::Avx2;
        }
        Self::Portable
    }

    /// Whether this CPU can run `isa`.
    fn supports(isa: Self) -> bool {
        match isa {
            Self::Avx512 => Self::avx512_present(),
            Self::Avx2 => Self::avx2_present(),
            Self::Portable => true,
        }
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

    /// Rows per block for products of many rows (a prompt's), which are bound by arithmetic
    /// rather than by streaming the weights: the largest block that still takes the widest
    /// panel group ([`Isa::panel_group`]), for the fewest loads per multiply-add (with AVX-512,
    /// 10 per 24 against 14 for 12 rows × 2 panels; 2–5 % faster prompts, measured back to back).
    pub fn prompt_row_block(self) -> usize {
        WIDE_GROUP_ROWS
    }

    /// Most panels one micro-kernel call takes beside each other for a block of `rows` rows.
    /// Each input value is then broadcast once for several panels, so a multiply-add costs
    /// fewer loads (with one panel, about one load per multiply-add, and on a shared Intel core
    /// the loads slowed the kernel to half its rate while a register-only FMA loop kept its
    /// own), and a block of one or two rows keeps several independent accumulator chains in
    /// flight instead of waiting on one. AVX-512 has the registers for `rows × panels ≤ 24`
    /// accumulators; AVX2's sixteen are full with one panel.
    pub fn panel_group(self, rows: usize) -> usize {
        match self {
            Self::Avx512 if rows <= WIDE_GROUP_ROWS => 4,
            Self::Avx512 => 2,
            Self::Avx2 | Self::Portable => 1,
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
                && std::arch::is_x86_feature_detected!("f16c")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// A kernel's view of packed weights, in their stored precision.
#[derive(Clone, Copy)]
pub enum PanelData<'a> {
    F32(&'a [f32]),
    /// IEEE half-precision bit patterns.
    F16(&'a [u16]),
    /// bfloat16 bit patterns (the top half of an f32).
    Bf16(&'a [u16]),
}

impl<'a> PanelData<'a> {
    /// Number of stored values.
    pub fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::F16(v) | Self::Bf16(v) => v.len(),
        }
    }

    /// The values in `range` (panics past the end: an internal bug).
    pub fn slice(&self, range: std::ops::Range<usize>) -> PanelData<'a> {
        match *self {
            Self::F32(v) => Self::F32(&v[range]),
            Self::F16(v) => Self::F16(&v[range]),
            Self::Bf16(v) => Self::Bf16(&v[range]),
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
    /// `panels` packed panels of `k × PANEL` values each, input-major, panel `p` starting at
    /// `p · panel_stride`.
    pub panel: PanelData<'a>,
    pub panels: usize,
    pub panel_stride: usize,
    /// Length of the shared (input) axis.
    pub k: usize,
}

/// `tile[r][p · PANEL + c] = Σ_t x[r · x_stride + t] · panel[p · panel_stride + t · PANEL + c]`
/// for `r < rows`, `p < panels`; each sum is accumulated in order of `t` whatever the grouping,
/// so results do not depend on how many panels a call takes. Panics if `rows` is not in
/// `1..=isa.row_block()`, `panels` is not 1, 2 or 4 or above `isa.panel_group(rows)`, or a slice
/// is too short (internal bugs, never input-dependent).
pub fn micro(isa: Isa, ops: Operands, tile: &mut Tile) {
    assert!((1..=isa.row_block()).contains(&ops.rows));
    assert!(matches!(ops.panels, 1 | 2 | 4) && ops.panels <= isa.panel_group(ops.rows));
    assert!(ops.x.len() >= (ops.rows - 1) * ops.x_stride + ops.k);
    assert!(ops.panel_stride >= ops.k * PANEL || ops.panels == 1);
    assert!(ops.panel.len() >= (ops.panels - 1) * ops.panel_stride + ops.k * PANEL);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // SAFETY: `Avx512` is only used when the CPU has AVX-512F (`detect`, `available`),
            // and the asserts above bound every read of `x` and `panel`.
            unsafe { avx512::micro_dispatch(ops, tile) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            // SAFETY: `Avx2` is only used when the CPU has AVX2, FMA and F16C (`detect`,
            // `available`), and the asserts above bound every read of `x` and `panel`.
            unsafe { avx2::micro_dispatch(ops, tile) }
        }
        _ => match ops.panel {
            PanelData::F32(w) => portable_micro(ops, w, tile, |v| v),
            PanelData::F16(w) => portable_micro(ops, w, tile, |b| half::f16::from_bits(b).to_f32()),
            PanelData::Bf16(w) => portable_micro(ops, w, tile, bf16_to_f32),
        },
    }
}

/// Lanes of the partial sums and maxima below: two AVX registers' worth, so each lane is an
/// independent chain the compiler keeps in a register and a sum is bound by its loads, not by
/// the latency of its additions.
const LANES: usize = 16;

/// `Σ term(v)` over `values`, in [`LANES`] interleaved partial sums. A plain left-to-right sum
/// is one chain of dependent additions, which for a prompt's softmax and norm rows (and the
/// bench's bandwidth pass) costs several times the arithmetic; the partial sums change only the
/// rounding.
#[inline(always)]
fn lane_sum(values: &[f32], term: impl Fn(f32) -> f32) -> f32 {
    let mut partial = [0.0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (p, &v) in partial.iter_mut().zip(chunk) {
            *p += term(v);
        }
    }
    partial.iter().sum::<f32>() + rest.iter().map(|&v| term(v)).sum::<f32>()
}

/// Largest of `values` (−∞ for none), in [`LANES`] interleaved partial maxima (see [`lane_sum`]).
#[inline(always)]
fn lane_max(values: &[f32]) -> f32 {
    let mut partial = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (m, &v) in partial.iter_mut().zip(chunk) {
            *m = if v > *m { v } else { *m };
        }
    }
    rest.iter()
        .chain(&partial)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// Defines `pub fn $name(args)` that runs `$body` compiled for the widest instruction set of
/// [`Isa::detect`]. The crate is built for the x86-64 baseline (4-lane SSE2), so the loops of the
/// decoder's per-row work vectorise 4 wide unless they are compiled inside a function built for
/// more: here the body is inlined into one (16 lanes with AVX-512, 8 with AVX2). Its results do
/// not depend on the width: Rust never reorders or fuses float operations.
macro_rules! widest {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        widest! { $(#[$doc])* pub fn $name($($arg: $ty),*) -> () $body }
    };
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn body($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            unsafe fn on_avx512($($arg: $ty),*) -> $ret {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn on_avx2($($arg: $ty),*) -> $ret {
                body($($arg),*)
            }
            match Isa::detect() {
                // SAFETY: `Avx512` is only detected when the CPU has AVX-512F; the body is safe
                // code.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { on_avx512($($arg),*) },
                // SAFETY: `Avx2` is only detected when the CPU has AVX2 and FMA; as above.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { on_avx2($($arg),*) },
                _ => body($($arg),*),
            }
        }
    };
}

widest! {
    /// SwiGLU's gated row: `out = (value + value_bias) ⊙ silu(gate + gate_bias)`, with
    /// `silu(g) = g / (1 + e⁻ᵍ)` and the exponential of [`exp_one`], in one vectorised pass (the
    /// feed-forward of every token row takes one per hidden unit).
    pub fn swiglu(
        value: &[f32],
        value_bias: &[f32],
        gate: &[f32],
        gate_bias: &[f32],
        out: &mut [f32]
    ) {
        let inputs = value.iter().zip(value_bias).zip(gate.iter().zip(gate_bias));
        for (o, ((v, vb), (g, gb))) in out.iter_mut().zip(inputs) {
            let g = g + gb;
            *o = (v + vb) * (g / (1.0 + exp_one(-g)));
        }
    }
}

widest! {
    /// Softmax in place, `eᵛ⁻ᵐᵃˣ / Σ`, vectorised (every attention row takes one).
    pub fn softmax_in_place(values: &mut [f32]) {
        let max = lane_max(values);
        values.iter_mut().for_each(|v| *v = exp_one(*v - max));
        let sum = lane_sum(values, |v| v);
        values.iter_mut().for_each(|v| *v /= sum);
    }
}

widest! {
    /// `acc += other`, element by element: the residual additions and biases of every row, which
    /// run on the leading thread between parallel regions.
    pub fn add_in_place(acc: &mut [f32], other: &[f32]) {
        acc.iter_mut().zip(other).for_each(|(a, b)| *a += b);
    }
}

widest! {
    /// `x / max(‖x‖₂, eps) · scale` for each `dim`-long row of `x`, into `out` (x-transformers'
    /// SimpleRMSNorm with `scale = √dim`; the leading thread runs one before every sublayer).
    pub fn normalize_rows(x: &[f32], dim: usize, eps: f32, scale: f32, out: &mut [f32]) {
        for (row, normed) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            let norm = lane_sum(row, |v| v * v).sqrt().max(eps);
            for (o, &v) in normed.iter_mut().zip(row) {
                *o = v / norm * scale;
            }
        }
    }
}

widest! {
    /// `x / max(‖x‖₂, eps) ⊙ scale` in place (qk-norm with its learned per-channel scales).
    pub fn normalize_scaled(x: &mut [f32], eps: f32, scale: &[f32]) {
        let norm = lane_sum(x, |v| v * v).sqrt().max(eps);
        for (v, s) in x.iter_mut().zip(scale) {
            *v = *v / norm * s;
        }
    }
}

widest! {
    /// `Σ values` ([`lane_sum`]) at the full vector width: the bench's memory-bandwidth pass, which
    /// at 4 lanes measured a third less than the memory delivers.
    pub fn vector_sum(values: &[f32]) -> f32 {
        lane_sum(values, |v| v)
    }
}

widest! {
    /// `eˣ` for every value, vectorised (for tests of [`exp_one`] as the decoder runs it).
    #[cfg(test)]
    pub fn exp_in_place(values: &mut [f32]) {
        values.iter_mut().for_each(|v| *v = exp_one(*v));
    }
}

/// `eˣ`, branch-free so that loops over it vectorise (inside a [`widest!`] function).
///
/// The softmax of every attention row and the SwiGLU gate of every feed-forward row take an
/// exponential per value: millions per generation, which the C library computes one at a time.
/// This is the classic Cephes single-precision scheme (`eˣ = 2ⁿ · eʳ` with `n = round(x / ln 2)`,
/// `r` reduced with a two-part ln 2, a degree-5 polynomial for `eʳ`), written as plain arithmetic
/// so the compiler vectorises it: within about 2 ulp of `f32::exp`. Inputs are clamped to
/// `[-87, 88]`, where `eˣ` stays a normal float; the decoder never needs more (softmax
/// arguments are ≤ 0 and anything below −87 rounds to nothing against the row's 1).
#[inline(always)]
fn exp_one(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that `x − n·ln 2` loses no bits.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding 1.5 · 2²³ rounds x / ln 2 to the nearest integer n and leaves n in the low bits
    // of the sum (|n| < 2²²), so no float-to-integer conversion is needed (Rust's saturating
    // one does not vectorise).
    const ROUNDER: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let n_bits = (shifted.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let p = 1.987_569_2e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    // n ∈ [−126, 127]: 2ⁿ is a normal float built from its exponent bits.
    let two_n = f32::from_bits(((n_bits + 127) as u32) << 23);
    e_r * two_n
}

/// A bfloat16 is the upper 16 bits of an f32.
fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

fn portable_micro<T: Copy>(ops: Operands, panels: &[T], tile: &mut Tile, widen: impl Fn(T) -> f32) {
    let k = ops.k;
    for p in 0..ops.panels {
        let panel = &panels[p * ops.panel_stride..p * ops.panel_stride + k * PANEL];
        for (r, tile_row) in tile.iter_mut().enumerate().take(ops.rows) {
            let xr = &ops.x[r * ops.x_stride..r * ops.x_stride + k];
            let acc = &mut tile_row[p * PANEL..(p + 1) * PANEL];
            acc.fill(0.0);
            for (&xv, w) in xr.iter().zip(panel.chunks_exact(PANEL)) {
                for (a, &wv) in acc.iter_mut().zip(w) {
                    *a += xv * widen(wv);
                }
            }
        }
    }
}

/// Bytes ahead of the panel row being multiplied that the x86 kernels prefetch. Weights that do
/// not fit in cache stream from DRAM; 4 KiB ahead (a few rows of the next panel near a panel's
/// end) ran the ReaLchords-size five options about 10% faster here than 1 KiB, and the shipped
/// size the same.
#[cfg(target_arch = "x86_64")]
const PREFETCH_BYTES: usize = 4096;

/// Calls `$kernel::<R>(args)`, or `$kernel::<R, G>(args)` with a panel group `[G]`, with the
/// block's row count `R` as a constant (`1 ≤ rows ≤ $max`).
#[cfg(target_arch = "x86_64")]
macro_rules! by_rows {
    ($rows:expr, $kernel:ident, 6, [$($group:literal)?], ($($arg:expr),*)) => {
        match $rows {
            1 => $kernel::<1 $(, $group)?>($($arg),*),
            2 => $kernel::<2 $(, $group)?>($($arg),*),
            3 => $kernel::<3 $(, $group)?>($($arg),*),
            4 => $kernel::<4 $(, $group)?>($($arg),*),
            5 => $kernel::<5 $(, $group)?>($($arg),*),
            _ => $kernel::<6 $(, $group)?>($($arg),*),
        }
    };
    ($rows:expr, $kernel:ident, 12, [$($group:literal)?], ($($arg:expr),*)) => {
        match $rows {
            1 => $kernel::<1 $(, $group)?>($($arg),*),
            2 => $kernel::<2 $(, $group)?>($($arg),*),
            3 => $kernel::<3 $(, $group)?>($($arg),*),
            4 => $kernel::<4 $(, $group)?>($($arg),*),
            5 => $kernel::<5 $(, $group)?>($($arg),*),
            6 => $kernel::<6 $(, $group)?>($($arg),*),
            7 => $kernel::<7 $(, $group)?>($($arg),*),
            8 => $kernel::<8 $(, $group)?>($($arg),*),
            9 => $kernel::<9 $(, $group)?>($($arg),*),
            10 => $kernel::<10 $(, $group)?>($($arg),*),
            11 => $kernel::<11 $(, $group)?>($($arg),*),
            _ => $kernel::<12 $(, $group)?>($($arg),*),
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Operands, PanelData, Tile, PANEL, PREFETCH_BYTES};
    use std::arch::x86_64::*;

    /// Picks the kernel for the panel's precision, the block's row count and the panel group.
    ///
    /// Safety: AVX-512F available; `ops` checked by [`super::micro`] (`1 ≤ rows ≤ 12`, `panels`
    /// 1, 2 or 4 with `rows · panels ≤ 24`, every read in bounds).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn micro_dispatch(ops: Operands, tile: &mut Tile) {
        let (x, stride, k, ps) = (ops.x.as_ptr(), ops.x_stride, ops.k, ops.panel_stride);
        macro_rules! by_panels {
            ($kernel:ident, $w:expr) => {
                match ops.panels {
                    4 => by_rows!(
                        ops.rows,
                        $kernel,
                        6,
                        [4],
                        (x, stride, $w.as_ptr(), ps, k, tile)
                    ),
                    2 => by_rows!(
                        ops.rows,
                        $kernel,
                        12,
                        [2],
                        (x, stride, $w.as_ptr(), ps, k, tile)
                    ),
                    _ => by_rows!(
                        ops.rows,
                        $kernel,
                        12,
                        [1],
                        (x, stride, $w.as_ptr(), ps, k, tile)
                    ),
                }
            };
        }
        match ops.panel {
            PanelData::F32(w) => by_panels!(micro_f32, w),
            PanelData::F16(w) => by_panels!(micro_f16, w),
            PanelData::Bf16(w) => by_panels!(micro_bf16, w),
        }
    }

    /// Defines `$name::<R, P>`: `R` input rows × `P` panels side by side (one 16-lane register
    /// each, loaded from `$elem`s by `$load`), accumulated in registers. Each input value is
    /// broadcast once and multiplied into all `P` panels.
    macro_rules! kernel {
        ($name:ident, $elem:ty, |$line:ident| $load:expr) => {
            #[target_feature(enable = "avx512f")]
            unsafe fn $name<const R: usize, const P: usize>(
                x: *const f32,
                x_stride: usize,
                w: *const $elem,
                panel_stride: usize,
                k: usize,
                tile: &mut Tile,
            ) {
                let mut acc = [[_mm512_setzero_ps(); P]; R];
                for t in 0..k {
                    let mut wv = [_mm512_setzero_ps(); P];
                    for (p, wp) in wv.iter_mut().enumerate() {
                        let $line = w.add(p * panel_stride + t * PANEL);
                        *wp = $load;
                        // Prefetches never fault, so running past the panel's end is harmless.
                        _mm_prefetch::<_MM_HINT_T0>(
                            ($line as *const i8).wrapping_add(PREFETCH_BYTES),
                        );
                    }
                    for (r, row_acc) in acc.iter_mut().enumerate() {
                        let xv = _mm512_set1_ps(*x.add(r * x_stride + t));
                        for (a, &wp) in row_acc.iter_mut().zip(&wv) {
                            *a = _mm512_fmadd_ps(xv, wp, *a);
                        }
                    }
                }
                for (row, row_acc) in tile.iter_mut().zip(&acc) {
                    for (p, a) in row_acc.iter().enumerate() {
                        _mm512_storeu_ps(row.as_mut_ptr().add(p * PANEL), *a);
                    }
                }
            }
        };
    }

    kernel!(micro_f32, f32, |line| _mm512_loadu_ps(line));
    kernel!(micro_f16, u16, |line| _mm512_cvtph_ps(_mm256_loadu_si256(
        line as *const __m256i
    )));
    kernel!(micro_bf16, u16, |line| _mm512_castsi512_ps(
        _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(
            line as *const __m256i
        )))
    ));
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Operands, PanelData, Tile, PANEL, PREFETCH_BYTES};
    use std::arch::x86_64::*;

    /// Picks the kernel for the panel's precision and the block's row count.
    ///
    /// Safety: AVX2, FMA and F16C available; `ops` checked by [`super::micro`] (`1 ≤ rows ≤ 6`,
    /// every read in bounds).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn micro_dispatch(ops: Operands, tile: &mut Tile) {
        let (x, stride, k) = (ops.x.as_ptr(), ops.x_stride, ops.k);
        match ops.panel {
            PanelData::F32(w) => {
                by_rows!(ops.rows, micro_f32, 6, [], (x, stride, w.as_ptr(), k, tile))
            }
            PanelData::F16(w) => {
                by_rows!(ops.rows, micro_f16, 6, [], (x, stride, w.as_ptr(), k, tile))
            }
            PanelData::Bf16(w) => {
                by_rows!(
                    ops.rows,
                    micro_bf16,
                    6,
                    [],
                    (x, stride, w.as_ptr(), k, tile)
                )
            }
        }
    }

    /// Defines `$name::<R>`: `R` input rows × one panel (two 8-lane halves, loaded from `$elem`s
    /// at a half's start by `$load`), accumulated in registers.
    macro_rules! kernel {
        ($name:ident, $elem:ty, |$half:ident| $load:expr) => {
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn $name<const R: usize>(
                x: *const f32,
                x_stride: usize,
                w: *const $elem,
                k: usize,
                tile: &mut Tile,
            ) {
                let mut acc = [[_mm256_setzero_ps(); 2]; R];
                for t in 0..k {
                    let line = w.add(t * PANEL);
                    let lo = {
                        let $half = line;
                        $load
                    };
                    let hi = {
                        let $half = line.add(8);
                        $load
                    };
                    // Prefetches never fault, so running past the panel's end is harmless.
                    _mm_prefetch::<_MM_HINT_T0>((line as *const i8).wrapping_add(PREFETCH_BYTES));
                    for (r, row_acc) in acc.iter_mut().enumerate() {
                        let xv = _mm256_set1_ps(*x.add(r * x_stride + t));
                        row_acc[0] = _mm256_fmadd_ps(xv, lo, row_acc[0]);
                        row_acc[1] = _mm256_fmadd_ps(xv, hi, row_acc[1]);
                    }
                }
                for (row, row_acc) in tile.iter_mut().zip(&acc) {
                    _mm256_storeu_ps(row.as_mut_ptr(), row_acc[0]);
                    _mm256_storeu_ps(row.as_mut_ptr().add(8), row_acc[1]);
                }
            }
        };
    }

    kernel!(micro_f32, f32, |half| _mm256_loadu_ps(half));
    kernel!(micro_f16, u16, |half| _mm256_cvtph_ps(_mm_loadu_si128(
        half as *const __m128i
    )));
    kernel!(micro_bf16, u16, |half| _mm256_castsi256_ps(
        _mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(
            half as *const __m128i
        )))
    ));
}

/// Bytes per second for reading a 256 MiB buffer with two threads (best of five passes): the
/// rate at which a decoder step can stream weights that do not fit in cache, which `comper bench`
/// prints beside its timings.
pub fn measure_read_bandwidth() -> f64 {
    const LEN: usize = 64 << 20; // f32s = 256 MiB
    let buffer: Vec<f32> = (0..LEN).map(|i| (i % 251) as f32).collect();
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(2);
    let mut best = f64::MAX;
    let mut checksum = 0.0f32;
    for _ in 0..5 {
        let start = std::time::Instant::now();
        let sum: f32 = std::thread::scope(|scope| {
            let handles: Vec<_> = buffer
                .chunks(LEN.div_ceil(threads))
                .map(|chunk| scope.spawn(move || vector_sum(chunk)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
        });
        best = best.min(start.elapsed().as_secs_f64());
        checksum += sum;
    }
    std::hint::black_box(checksum);
    (LEN * std::mem::size_of::<f32>()) as f64 / best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_chooses_any_instruction_set_the_cpu_has() {
        assert_eq!(Isa::parse("AVX2"), Some(Isa::Avx2));
        assert_eq!(Isa::parse(" avx512 "), Some(Isa::Avx512));
        assert_eq!(Isa::parse("portable"), Some(Isa::Portable));
        assert_eq!(Isa::parse("sse"), None);
        // CI runs the parity tests once per instruction set with `COMPER_ISA` set.
        let wanted = std::env::var(ISA_ENV)
            .ok()
            .and_then(|name| Isa::parse(&name));
        match wanted {
            Some(isa) if Isa::available().contains(&isa) => assert_eq!(Isa::detect(), isa),
            _ => assert_eq!(Isa::detect(), Isa::available()[0]),
        }
    }

    #[test]
    fn vector_exp_is_within_two_ulp_of_the_library_exp() {
        let mut values: Vec<f32> = (-87_000..=88_000).map(|i| i as f32 / 1000.0).collect();
        values.extend([0.0, -0.0, 1e-8, -1e-8, 0.5, -0.5]);
        let mut got = values.clone();
        exp_in_place(&mut got);
        for (&x, &e) in values.iter().zip(&got) {
            let want = x.exp();
            let ulp = want * f32::EPSILON;
            assert!((e - want).abs() <= 2.0 * ulp, "e^{x}: {e} vs {want}");
        }
        // Outside the clamp: tiny stays tiny, huge stays finite and huge.
        let mut edges = [-1e30, -200.0, 200.0, 1e30];
        exp_in_place(&mut edges);
        assert!(edges[0] < 1e-37 && edges[1] < 1e-37 && edges[0] >= 0.0);
        assert!(edges[2] > 1e38 && edges[3].is_finite());
    }

    #[test]
    fn swiglu_and_softmax_match_their_formulas() {
        let len = 37;
        let wave = |i: usize, a: usize, b: f32| ((i * a % 29) as f32 - 14.0) / b;
        let value: Vec<f32> = (0..len).map(|i| wave(i, 7, 5.0)).collect();
        let value_bias: Vec<f32> = (0..len).map(|i| wave(i, 3, 40.0)).collect();
        let gate: Vec<f32> = (0..len).map(|i| wave(i, 11, 3.0)).collect();
        let gate_bias: Vec<f32> = (0..len).map(|i| wave(i, 5, 30.0)).collect();
        let mut out = vec![f32::NAN; len];
        swiglu(&value, &value_bias, &gate, &gate_bias, &mut out);
        for i in 0..len {
            let g = f64::from(gate[i] + gate_bias[i]);
            let want = f64::from(value[i] + value_bias[i]) * g / (1.0 + (-g).exp());
            assert!(
                (f64::from(out[i]) - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{i}"
            );
        }
        let mut row = gate.clone();
        softmax_in_place(&mut row);
        let max = gate
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        let sum: f64 = gate.iter().map(|&v| (f64::from(v) - max).exp()).sum();
        for (&v, &p) in gate.iter().zip(&row) {
            let want = (f64::from(v) - max).exp() / sum;
            assert!((f64::from(p) - want).abs() <= 1e-6, "{v}: {p} vs {want}");
        }
    }

    #[test]
    fn norms_match_their_formulas_and_the_zero_row_stays_zero() {
        let dim = 37;
        let wave = |i: usize| ((i * 7 % 29) as f32 - 14.0) / 5.0;
        let mut x: Vec<f32> = (0..3 * dim).map(wave).collect();
        x[dim..2 * dim].fill(0.0);
        let scale = (dim as f32).sqrt();
        let mut out = vec![f32::NAN; x.len()];
        normalize_rows(&x, dim, 1e-12, scale, &mut out);
        let per_channel: Vec<f32> = (0..dim).map(|i| 0.5 + i as f32 / 10.0).collect();
        for (row, normed) in x.chunks_exact(dim).zip(out.chunks_exact(dim)) {
            let norm = row
                .iter()
                .map(|&v| f64::from(v).powi(2))
                .sum::<f64>()
                .sqrt();
            let mut scaled = row.to_vec();
            normalize_scaled(&mut scaled, 1e-12, &per_channel);
            for i in 0..dim {
                let unit = f64::from(row[i]) / norm.max(1e-12);
                let want = unit * f64::from(scale);
                assert!((f64::from(normed[i]) - want).abs() <= 1e-6 * (1.0 + want.abs()));
                let want = unit * f64::from(per_channel[i]);
                assert!((f64::from(scaled[i]) - want).abs() <= 1e-6 * (1.0 + want.abs()));
            }
        }
        let mut acc = x.clone();
        add_in_place(&mut acc, &out);
        for ((a, &v), &o) in acc.iter().zip(&x).zip(&out) {
            assert_eq!(*a, v + o);
        }
    }

    #[test]
    fn a_panel_group_gives_exactly_the_sums_of_its_panels_one_at_a_time() {
        let (k, stride) = (37, 37 * PANEL + 5);
        let x: Vec<f32> = (0..MAX_ROW_BLOCK * k)
            .map(|i| ((i * 7 % 19) as f32 - 9.0) / 7.0)
            .collect();
        let w: Vec<f32> = (0..3 * stride + k * PANEL)
            .map(|i| ((i * 5 % 23) as f32 - 11.0) / 9.0)
            .collect();
        for isa in Isa::available() {
            for rows in 1..=isa.row_block() {
                let group = isa.panel_group(rows);
                let ops = |panels, at: usize| Operands {
                    x: &x,
                    x_stride: k,
                    rows,
                    panel: PanelData::F32(&w[at..]),
                    panels,
                    panel_stride: stride,
                    k,
                };
                let mut together: Tile = [[f32::NAN; MAX_PANEL_GROUP * PANEL]; MAX_ROW_BLOCK];
                micro(isa, ops(group, 0), &mut together);
                for p in 0..group {
                    let mut alone: Tile = [[f32::NAN; MAX_PANEL_GROUP * PANEL]; MAX_ROW_BLOCK];
                    micro(isa, ops(1, p * stride), &mut alone);
                    for r in 0..rows {
                        assert_eq!(
                            together[r][p * PANEL..(p + 1) * PANEL],
                            alone[r][..PANEL],
                            "{isa:?}, {rows} rows, panel {p} of {group}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn lane_reductions_match_plain_ones_at_every_length() {
        for len in 0..50 {
            let values: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
                .collect();
            let plain_max = values.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            assert_eq!(lane_max(&values), plain_max, "max of {len}");
            let plain_squares: f64 = values.iter().map(|&v| f64::from(v * v)).sum();
            let squares = f64::from(lane_sum(&values, |v| v * v));
            assert!(
                (squares - plain_squares).abs() <= 1e-5 * plain_squares.max(1.0),
                "{len}"
            );
        }
    }
}
