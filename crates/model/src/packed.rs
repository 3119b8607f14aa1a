//! Weight matrices laid out for streaming, and the threaded product `x · Wᵀ` over them.
//!
//! Decoding a few tokens at a time is bound by reading the weights, so every product should read
//! each weight exactly once, sequentially, with all the step's rows multiplied while the weight is
//! in registers. [`PackedMatrix`] stores `W[out, in]` as panels of [`PANEL`] output columns, each
//! panel input-major: a panel is one contiguous run that a micro-kernel walks front to back,
//! keeping a block of input rows × the panel's columns in registers.

use std::ops::Range;

use super::kernels::{self, Isa, Operands, PanelData, Tile, MAX_PANEL_GROUP, MAX_ROW_BLOCK, PANEL};
use super::team;

/// From this many rows on, a product splits its rows (not its panels) across threads: each
/// thread then reuses every panel it reads for several row blocks.
const ROW_SPLIT_MIN: usize = 24;

/// Parallel tasks per thread, so a thread slowed by other work does not hold up the whole
/// product (the idle threads take over its remaining tasks). Each task has a fixed cost (its
/// claim, its output segments, a kernel set-up per panel group), which at a step's few rows
/// outweighs finer balance: on the Zen 5 machine, two per thread ran the shipped five options
/// 5–10% faster than four, and the ReaLchords size no slower.
const TASKS_PER_THREAD: usize = 2;

/// Below this many multiply-adds a product runs on the calling thread: splitting it would cost
/// about as much in synchronisation as it saves.
pub const PARALLEL_MIN_WORK: usize = 1 << 17;

/// Cache-line size, in bytes: packed panels start on one.
const LINE_BYTES: usize = 64;

/// A 16-bit float format weights can stay in (see [`PackedMatrix::pack_half`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfFloat {
    F16,
    Bf16,
}

/// Packed values in the precision they were stored in.
enum Storage {
    F32(Vec<f32>),
    F16(Vec<u16>),
    Bf16(Vec<u16>),
}

/// A weight matrix `W[out, in]` (PyTorch layout, `y = x · Wᵀ`) repacked for streaming.
pub struct PackedMatrix {
    /// `panels × in_dim × PANEL` values from `offset` on (zero past `out_dim`).
    data: Storage,
    /// Start of the panels in `data`, chosen so they begin on a cache line.
    offset: usize,
    out_dim: usize,
    in_dim: usize,
}

/// Lays a row-major `[out_dim, in_dim]` matrix out as panels starting on a cache line; returns
/// the buffer and the panels' offset in it, or `None` if `weight` holds fewer values.
fn pack_panels<T: Copy + Default>(
    weight: &[T],
    out_dim: usize,
    in_dim: usize,
) -> Option<(Vec<T>, usize)> {
    let weight = weight.get(..out_dim * in_dim)?;
    let size = std::mem::size_of::<T>();
    let align = LINE_BYTES / size;
    let panels = out_dim.div_ceil(PANEL);
    let mut data = vec![T::default(); panels * in_dim * PANEL + align];
    let misalignment = (data.as_ptr() as usize / size) % align;
    let offset = (align - misalignment) % align;
    let packed = &mut data[offset..];
    for (j, row) in weight.chunks_exact(in_dim.max(1)).enumerate() {
        let (panel, lane) = (j / PANEL, j % PANEL);
        for (t, &value) in row.iter().enumerate() {
            packed[(panel * in_dim + t) * PANEL + lane] = value;
        }
    }
    Some((data, offset))
}

impl PackedMatrix {
    /// Packs a row-major `[out_dim, in_dim]` matrix; `None` if `weight` holds fewer values.
    pub fn pack(weight: &[f32], out_dim: usize, in_dim: usize) -> Option<Self> {
        let (data, offset) = pack_panels(weight, out_dim, in_dim)?;
        Some(Self {
            data: Storage::F32(data),
            offset,
            out_dim,
            in_dim,
        })
    }

    /// Packs a row-major matrix of 16-bit float bit patterns, kept at 16 bits: products widen
    /// them to f32 as they stream them (the same results as upcasting first, with half the
    /// bytes to read). `None` if `bits` holds fewer values.
    pub fn pack_half(
        bits: &[u16],
        format: HalfFloat,
        out_dim: usize,
        in_dim: usize,
    ) -> Option<Self> {
        let (data, offset) = pack_panels(bits, out_dim, in_dim)?;
        let data = match format {
            HalfFloat::F16 => Storage::F16(data),
            HalfFloat::Bf16 => Storage::Bf16(data),
        };
        Some(Self {
            data,
            offset,
            out_dim,
            in_dim,
        })
    }

    /// Rows of `W` (outputs of the product).
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Number of stored weights (padding excluded).
    pub fn elem_count(&self) -> usize {
        self.out_dim * self.in_dim
    }

    /// Bytes a product reads from the weights (padding excluded).
    pub fn weight_bytes(&self) -> usize {
        let size = match self.data {
            Storage::F32(_) => std::mem::size_of::<f32>(),
            Storage::F16(_) | Storage::Bf16(_) => std::mem::size_of::<u16>(),
        };
        self.elem_count() * size
    }

    fn panel_count(&self) -> usize {
        self.out_dim.div_ceil(PANEL)
    }

    /// The whole matrix as a panel view.
    fn view(&self) -> Panels<'_> {
        let data = match &self.data {
            Storage::F32(v) => PanelData::F32(&v[self.offset..]),
            Storage::F16(v) => PanelData::F16(&v[self.offset..]),
            Storage::Bf16(v) => PanelData::Bf16(&v[self.offset..]),
        };
        Panels {
            data,
            stride: self.in_dim * PANEL,
            k: self.in_dim,
            cols: self.out_dim,
        }
    }

    /// `out[rows, out_dim] = x[rows, in_dim] · Wᵀ` in parallel ([`team::for_each_chunk`]), with the best kernel this
    /// CPU supports. Panics if `x` or `out` is shorter than its shape (an internal bug).
    pub fn matmul(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        self.matmul_with(Isa::detect(), x, rows, out);
    }

    /// [`PackedMatrix::matmul`] with a given instruction set (which the CPU must support).
    pub fn matmul_with(&self, isa: Isa, x: &[f32], rows: usize, out: &mut [f32]) {
        let (n, k) = (self.out_dim, self.in_dim);
        assert!(x.len() >= rows * k && out.len() >= rows * n);
        if rows == 0 || n == 0 {
            return;
        }
        let threads = team::threads().max(1);
        if threads == 1 || rows * n * k < PARALLEL_MIN_WORK {
            product(isa, x, rows, self.view(), 0..self.panel_count(), out, n);
            return;
        }
        if rows >= ROW_SPLIT_MIN {
            // Each task takes whole row blocks and writes its rows of `out` directly.
            let per_task = rows
                .div_ceil(threads * TASKS_PER_THREAD)
                .max(ROW_SPLIT_MIN / 2)
                .next_multiple_of(isa.row_block());
            team::for_each_chunk(&mut out[..rows * n], per_task * n, |task, out| {
                let rows = out.len() / n;
                let x = &x[task * per_task * k..(task * per_task + rows) * k];
                product(isa, x, rows, self.view(), 0..self.panel_count(), out, n);
            });
            return;
        }
        // Few rows: split the panels. Each task writes its columns of every row of `out`
        // directly.
        let panels = self.panel_count();
        let per_task = panels.div_ceil(threads * TASKS_PER_THREAD);
        let tasks = panels.div_ceil(per_task);
        let shared = team::SharedSlice::new(&mut out[..rows * n]);
        team::for_each_index(tasks, |task| {
            let first = task * per_task;
            let panels = first..(first + per_task).min(panels);
            let columns = Out::Columns {
                out: &shared,
                stride: n,
                columns: panels.start * PANEL..(panels.end * PANEL).min(n),
            };
            product_into(isa, x, rows, self.view(), panels, columns);
        });
    }
}

/// FLOP/s of one thread multiplying `rows` input rows by a random `[out_dim, in_dim]` f32 matrix
/// small enough to stay in cache, best of `repeats` products: the arithmetic ceiling of a
/// decoding step, which `comper bench` prints beside its timings.
pub fn measure_product_rate(rows: usize, out_dim: usize, in_dim: usize, repeats: usize) -> f64 {
    let weights: Vec<f32> = (0..out_dim * in_dim)
        .map(|i| (i % 13) as f32 / 13.0 - 0.5)
        .collect();
    let x: Vec<f32> = (0..rows * in_dim).map(|i| (i % 7) as f32 / 7.0).collect();
    let Some(matrix) = PackedMatrix::pack(&weights, out_dim, in_dim) else {
        return f64::NAN;
    };
    let mut out = vec![0.0f32; rows * out_dim];
    let isa = Isa::detect();
    let mut best = f64::MAX;
    for _ in 0..repeats.max(1) {
        let start = std::time::Instant::now();
        product(
            isa,
            &x,
            rows,
            matrix.view(),
            0..matrix.panel_count(),
            &mut out,
            out_dim,
        );
        best = best.min(start.elapsed().as_secs_f64());
    }
    std::hint::black_box(&out);
    2.0 * (rows * out_dim * in_dim) as f64 / best
}

/// Packed panels seen as the matrix `W[cols, k]`: panel `p` holds columns `p·PANEL ..` input-major
/// (`k × PANEL` values) starting at `data[p · stride]`; columns from `cols` on are padding.
#[derive(Clone, Copy)]
pub struct Panels<'a> {
    pub data: PanelData<'a>,
    pub stride: usize,
    pub k: usize,
    pub cols: usize,
}

impl Panels<'_> {
    /// Number of panels covering `cols`.
    pub fn count(&self) -> usize {
        self.cols.div_ceil(PANEL)
    }
}

/// Serial product `x[rows, k] · Wᵀ` restricted to the columns of panels `range`: writes
/// `out[r · out_stride + c − first]` for every column `c < w.cols` of the range, where `first` is
/// the range's first column. Input row `r` starts at `x[r · w.k]`.
pub fn product(
    isa: Isa,
    x: &[f32],
    rows: usize,
    w: Panels,
    range: Range<usize>,
    out: &mut [f32],
    out_stride: usize,
) {
    let out = Out::Strided {
        out,
        stride: out_stride,
    };
    product_into(isa, x, rows, w, range, out);
}

/// Where a product writes row `r` of its results, from the first column of its panel range on.
enum Out<'o, 'a> {
    /// Row `r` starts at `out[r · stride]`.
    Strided { out: &'o mut [f32], stride: usize },
    /// Row `r` is `out[r · stride + columns]`: a task's columns of an output other tasks
    /// write the other columns of.
    Columns {
        out: &'o team::SharedSlice<'a, f32>,
        stride: usize,
        columns: Range<usize>,
    },
}

impl Out<'_, '_> {
    fn row(&mut self, r: usize) -> &mut [f32] {
        match self {
            Out::Strided { out, stride } => &mut out[r * *stride..],
            Out::Columns {
                out,
                stride,
                columns,
            } => {
                let at = r * *stride;
                // SAFETY: every task of a product owns a different column range, and a task
                // holds one row of it at a time, so no two live pieces overlap.
                unsafe { out.piece(at + columns.start, at + columns.end) }
            }
        }
    }
}

/// [`product`] into any [`Out`].
fn product_into(isa: Isa, x: &[f32], rows: usize, w: Panels, range: Range<usize>, mut out: Out) {
    let k = w.k;
    // A step's few rows share one block, so that the weights are read once; many rows are
    // compute-bound and take the blocks with the fewest loads per multiply-add.
    let block_rows = if rows >= 2 * isa.row_block() {
        isa.prompt_row_block()
    } else {
        isa.row_block()
    };
    let blocks = rows.div_ceil(block_rows);
    let first = range.start * PANEL;
    let mut tile: Tile = [[0.0; MAX_PANEL_GROUP * PANEL]; MAX_ROW_BLOCK];
    // The largest row block decides the panel group (blocks differ by at most one row).
    let group = isa.panel_group(rows.div_ceil(blocks.max(1)));
    let mut panel = range.start;
    while panel < range.end {
        // The widest group that fits what is left: 4, 2 or 1 panels.
        let left = range.end - panel;
        let panels = [4, 2, 1]
            .into_iter()
            .find(|&g| g <= group && g <= left)
            .unwrap_or(1);
        let start = panel * w.stride;
        let data = w
            .data
            .slice(start..start + (panels - 1) * w.stride + k * PANEL);
        let col = panel * PANEL;
        let width = (panels * PANEL).min(w.cols - col);
        // Equal-sized row blocks (e.g. 10 rows → 5 + 5 rather than 6 + 4), each over the same
        // panels while they are in cache.
        let mut row = 0;
        for block in 0..blocks {
            let size = (rows - row).div_ceil(blocks - block);
            let ops = Operands {
                x: &x[row * k..],
                x_stride: k,
                rows: size,
                panel: data,
                panels,
                panel_stride: w.stride,
                k,
            };
            kernels::micro(isa, ops, &mut tile);
            for (r, values) in tile.iter().enumerate().take(size) {
                let at = col - first;
                let out = out.row(row + r);
                if width == panels * PANEL {
                    // Whole panels: copies of known length, a few vector moves rather than a
                    // call to `memcpy`.
                    let whole = out[at..at + width].chunks_exact_mut(PANEL);
                    for (to, from) in whole.zip(values.chunks_exact(PANEL)) {
                        to.copy_from_slice(from);
                    }
                } else {
                    out[at..at + width].copy_from_slice(&values[..width]);
                }
            }
            row += size;
        }
        panel += panels;
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
    fn every_kernel_matches_the_naive_product_for_awkward_sizes() {
        for (m, n, k) in [
            (1, 1, 1),
            (3, 5, 7),
            (10, 131, 21),
            (5, 2, 64),
            (9, 200, 33),
            (13, 48, 16),
            (50, 33, 40),
            (131, 70, 9),
            // Panel groups of 4 with leftovers of 2 and 1 (AVX-512, few rows).
            (1, 70, 33),
            (2, 100, 19),
            (6, 130, 17),
            // Enough work to run in parallel: split by panels, then by rows.
            (5, 600, 64),
            (30, 300, 40),
        ] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0)
                .collect();
            let packed = PackedMatrix::pack(&w, n, k).unwrap();
            let want = naive(&x, m, &w, n, k);
            for isa in Isa::available() {
                let mut got = vec![f32::NAN; m * n];
                packed.matmul_with(isa, &x, m, &mut got);
                for (a, b) in got.iter().zip(&want) {
                    assert!(
                        (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                        "{isa:?} {m}x{n}x{k}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn sixteen_bit_weights_give_the_products_of_their_f32_values() {
        // Values exact in both f16 and bf16 (small multiples of 1/8), so the widened products
        // must equal the f32 ones bit for bit.
        let (m, n, k) = (11, 37, 45);
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 8.0)
            .collect();
        let f16_bits: Vec<u16> = w
            .iter()
            .map(|&v| half::f16::from_f32(v).to_bits())
            .collect();
        let bf16_bits: Vec<u16> = w
            .iter()
            .map(|&v| half::bf16::from_f32(v).to_bits())
            .collect();
        let full = PackedMatrix::pack(&w, n, k).unwrap();
        let halves = [
            PackedMatrix::pack_half(&f16_bits, HalfFloat::F16, n, k).unwrap(),
            PackedMatrix::pack_half(&bf16_bits, HalfFloat::Bf16, n, k).unwrap(),
        ];
        for isa in Isa::available() {
            let mut want = vec![0.0; m * n];
            full.matmul_with(isa, &x, m, &mut want);
            for half in &halves {
                assert_eq!(half.weight_bytes() * 2, full.weight_bytes());
                let mut got = vec![f32::NAN; m * n];
                half.matmul_with(isa, &x, m, &mut got);
                assert_eq!(got, want, "{isa:?}");
            }
        }
    }

    #[test]
    fn packing_refuses_a_short_matrix() {
        assert!(PackedMatrix::pack(&[1.0; 5], 2, 3).is_none());
    }
}
