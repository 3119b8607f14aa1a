//! The pieces both ReaLchords networks are made of (x-transformers 2.11.23 with ReaLJam's kwargs):
//! packed linear layers, SimpleRMSNorm, qk-normed attention over a panel-packed key/value store,
//! and the SwiGLU feed-forward. The online decoder adds rotary positions to them
//! ([`super::decoder`]); the offline encoder–decoder adds T5 relative position bias and
//! cross-attention ([`super::offline`]).
//!
//! Every product goes through the register-blocked micro-kernel of [`super::packed`], which reads
//! each weight once per call; the attention products use the same kernel on keys and values
//! stored as panels ([`KvLayout`]).

use std::ops::Range;

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use super::config::QK_NORM_SCALE;
use super::kernels::{
    add_in_place, normalize_rows, normalize_scaled, softmax_in_place, swiglu, Isa, PanelData, PANEL,
};
use super::packed::{product, HalfFloat, PackedMatrix, Panels, PARALLEL_MIN_WORK};
use super::team;

/// Clamp for L2 norms (`F.normalize`'s eps).
const NORM_EPS: f32 = 1e-12;

pub(super) fn to_vec(t: Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

/// The bit patterns of a 16-bit float tensor, flattened.
fn half_bits<T: candle_core::WithDType>(
    t: &Tensor,
    to_bits: fn(T) -> u16,
) -> candle_core::Result<Vec<u16>> {
    Ok(t.flatten_all()?
        .to_vec1::<T>()?
        .into_iter()
        .map(to_bits)
        .collect())
}

/// A weight matrix in PyTorch layout `[out, in]` (`y = x · Wᵀ`), packed for streaming. f16 and
/// bf16 weights stay 16-bit (widened to f32 inside the products); anything else becomes f32.
pub(super) struct Linear(PackedMatrix);

impl Linear {
    pub fn new(weight: Tensor) -> candle_core::Result<Self> {
        let (out_dim, in_dim) = weight.dims2()?;
        let packed = match weight.dtype() {
            DType::F16 => {
                let bits = half_bits(&weight, half::f16::to_bits)?;
                PackedMatrix::pack_half(&bits, HalfFloat::F16, out_dim, in_dim)
            }
            DType::BF16 => {
                let bits = half_bits(&weight, half::bf16::to_bits)?;
                PackedMatrix::pack_half(&bits, HalfFloat::Bf16, out_dim, in_dim)
            }
            _ => PackedMatrix::pack(&to_vec(weight)?, out_dim, in_dim),
        };
        packed.map(Self).ok_or_else(|| {
            candle_core::Error::Msg("weight holds fewer values than its shape".into())
        })
    }

    /// `x[rows, in] · Wᵀ → [rows, out]`.
    pub fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut out = Vec::new();
        self.forward_into(x, rows, &mut out);
        out
    }

    /// [`Linear::forward`] into a reused buffer.
    pub fn forward_into(&self, x: &[f32], rows: usize, out: &mut Vec<f32>) {
        self.0.matmul(x, rows, refill(out, rows * self.0.out_dim()));
    }

    /// Bytes a product streams from this matrix.
    pub fn weight_bytes(&self) -> usize {
        self.0.weight_bytes()
    }
}

/// Learned per-head qk-norm scales (`qk_norm_q_scale`, `qk_norm_k_scale`, `[heads, 1, dim_head]`),
/// flattened head-major; the query scale already includes the fixed [`QK_NORM_SCALE`].
pub(super) struct QkScales {
    q: Vec<f32>,
    k: Vec<f32>,
}

impl QkScales {
    pub fn load(attn: &VarBuilder, heads: usize, dim_head: usize) -> candle_core::Result<Self> {
        // Scaled in f32 whatever the stored precision, as PyTorch computes it.
        let q = to_vec(attn.get((heads, 1, dim_head), "qk_norm_q_scale")?)?;
        Ok(Self {
            q: q.into_iter().map(|v| v * QK_NORM_SCALE).collect(),
            k: to_vec(attn.get((heads, 1, dim_head), "qk_norm_k_scale")?)?,
        })
    }

    /// `x / ‖x‖ ⊙ q_scale[head]` (× 10) in place.
    pub fn query(&self, x: &mut [f32], head: usize) {
        normalize_scaled(x, NORM_EPS, &self.q[head * x.len()..(head + 1) * x.len()]);
    }

    /// `x / ‖x‖ ⊙ k_scale[head]` in place.
    pub fn key(&self, x: &mut [f32], head: usize) {
        normalize_scaled(x, NORM_EPS, &self.k[head * x.len()..(head + 1) * x.len()]);
    }
}

/// SwiGLU with biases: `z = x·W1ᵀ + b1`, value = first half, gate = second half,
/// `(value ⊙ silu(gate))·W2ᵀ + b2`.
pub(super) struct FeedForward {
    /// `[2 · ff_inner, dim]`: value half then gate half.
    ff_in: Linear,
    ff_in_bias: Vec<f32>,
    ff_out: Linear,
    ff_out_bias: Vec<f32>,
}

impl FeedForward {
    /// Loads from a VarBuilder at the block's `…ff` prefix (`0.proj`, `2`).
    pub fn load(ff: &VarBuilder, dim: usize, inner: usize) -> candle_core::Result<Self> {
        Ok(Self {
            ff_in: Linear::new(ff.get((2 * inner, dim), "0.proj.weight")?)?,
            ff_in_bias: to_vec(ff.get(2 * inner, "0.proj.bias")?)?,
            ff_out: Linear::new(ff.get((dim, inner), "2.weight")?)?,
            ff_out_bias: to_vec(ff.get(dim, "2.bias")?)?,
        })
    }

    /// Adds the feed-forward of the normed stream to the stream (pre-norm residual).
    pub fn add_to(&self, scratch: &mut Scratch) {
        let rows = scratch.rows();
        let Scratch {
            stream,
            normed,
            projected: z,
            inner: hidden,
            output: out,
            dim,
            ..
        } = scratch;
        simple_rms_norm(stream, *dim, normed);
        self.ff_in.forward_into(normed, rows, z);
        let inner = self.ff_in_bias.len() / 2;
        let (value_bias, gate_bias) = self.ff_in_bias.split_at(inner);
        // One row per task: the exponentials are a large share of a decoding step's serial work.
        let gate_row = |row: usize, out: &mut [f32]| {
            let (value, gate) = z[row * 2 * inner..(row + 1) * 2 * inner].split_at(inner);
            swiglu(value, value_bias, gate, gate_bias, out);
        };
        in_parallel(refill(hidden, rows * inner), inner, true, gate_row);
        self.ff_out.forward_into(hidden, rows, out);
        for row in out.chunks_exact_mut(self.ff_out_bias.len()) {
            add_in_place(row, &self.ff_out_bias);
        }
        add_in_place(stream, out);
    }

    pub fn weight_bytes(&self) -> usize {
        self.ff_in.weight_bytes() + self.ff_out.weight_bytes()
    }
}

/// Self-attention weights of one block: q, k and v projections stacked
/// (`[3 · heads · dim_head, dim]`), qk-norm scales and the output projection.
pub(super) struct SelfAttention {
    qkv: Linear,
    scales: QkScales,
    out: Linear,
}

impl SelfAttention {
    /// Loads `to_q`, `to_k`, `to_v`, `to_out` and the qk scales from the block's prefix.
    pub fn load(
        attn: &VarBuilder,
        dim: usize,
        heads: usize,
        dim_head: usize,
    ) -> candle_core::Result<Self> {
        let inner = heads * dim_head;
        let q = attn.get((inner, dim), "to_q.weight")?;
        let k = attn.get((inner, dim), "to_k.weight")?;
        let v = attn.get((inner, dim), "to_v.weight")?;
        Ok(Self {
            qkv: Linear::new(Tensor::cat(&[q, k, v], 0)?)?,
            scales: QkScales::load(attn, heads, dim_head)?,
            out: Linear::new(attn.get((dim, inner), "to_out.weight")?)?,
        })
    }

    /// Adds the self-attention of one chunk to the stream `scratch.stream: [batch · n, dim]`
    /// (pre-norm residual): projects the normed stream, qk-norms and positions the new queries
    /// and keys, appends this chunk's keys and values to `kv` at positions `start .. start + n`,
    /// and attends over everything stored so far. Only the last `answered` positions of each
    /// batch row ask a query, and the stream keeps only those rows (every position's key and
    /// value is stored; the last layer of a prompt, where only the rows turned into logits
    /// matter, skips the rest). `position` rotates a query or key head vector for its position
    /// (RoPE), or does nothing.
    ///
    /// After the projection, one parallel task per `(batch row, head)` does all the rest: each
    /// owns its cache block and its output, so a decoding step needs one parallel region here
    /// instead of one per stage.
    pub fn add_to(
        &self,
        scratch: &mut Scratch,
        shape: StepShape,
        answered: usize,
        kv: &mut KvStore,
        position: impl Fn(&mut [f32], usize) + Sync,
        visibility: Visibility,
    ) {
        let StepShape { batch, n, start } = shape;
        let answered = answered.min(n);
        let Scratch {
            stream,
            normed,
            projected: qkv,
            inner: heads_out,
            merged,
            output,
            dim,
        } = scratch;
        let dim = *dim;
        let layout = kv.layout;
        let (heads, dim_head) = (layout.heads, layout.dim_head);
        let inner = heads * dim_head;
        simple_rms_norm(stream, dim, normed);
        self.qkv.forward_into(normed, batch * n, qkv);
        let qkv = &*qkv;
        let total = start + n;
        let isa = Isa::detect();
        let asked = StepShape {
            batch,
            n: answered,
            start: total - answered,
        };
        let task = |bh: usize, block: &mut [f32], out: &mut [f32]| {
            let (b, head) = (bh / heads, bh % heads);
            let at = head * dim_head;
            HEAD_SCRATCH.with_borrow_mut(|scratch| {
                let HeadScratch { queries, key, .. } = scratch;
                queries.clear();
                queries.resize(answered * dim_head, 0.0);
                key.clear();
                key.resize(dim_head, 0.0);
                for t in 0..n {
                    let proj = &qkv[(b * n + t) * 3 * inner..(b * n + t + 1) * 3 * inner];
                    let pos = start + t;
                    if let Some(asked_row) = (t + answered).checked_sub(n) {
                        let query = &mut queries[asked_row * dim_head..(asked_row + 1) * dim_head];
                        query.copy_from_slice(&proj[at..at + dim_head]);
                        self.scales.query(query, head);
                        position(query, pos);
                    }
                    key.copy_from_slice(&proj[inner + at..inner + at + dim_head]);
                    self.scales.key(key, head);
                    position(key, pos);
                    layout.store(
                        block,
                        pos,
                        key,
                        &proj[2 * inner + at..2 * inner + at + dim_head],
                    );
                }
                let head_kv = HeadKv {
                    keys: layout.key_panels(block, total),
                    values: layout.value_panels(block, total),
                    head,
                };
                attend_head(isa, queries, asked, head_kv, visibility, out);
            });
        };
        let blocks = &mut kv.blocks[..batch * heads * layout.block()];
        let out_block = answered * dim_head;
        let heads_out = refill(heads_out, batch * heads * out_block);
        team::for_each_chunk_pair(blocks, layout.block(), heads_out, out_block, task);
        merge_heads(heads_out, batch, heads, answered, dim_head, merged);
        if answered < n {
            keep_tail_rows(stream, n, dim, answered);
        }
        self.out.forward_into(merged, batch * answered, output);
        add_in_place(stream, output);
    }

    pub fn weight_bytes(&self) -> usize {
        self.qkv.weight_bytes() + self.out.weight_bytes()
    }
}

/// Geometry of one step: `batch` rows of `n` new tokens, the first at position `start`.
#[derive(Clone, Copy)]
pub(super) struct StepShape {
    pub batch: usize,
    pub n: usize,
    pub start: usize,
}

/// Where one layer's keys and values live in a [`KvStore`], per `(batch row, head)`: keys as
/// panels of [`PANEL`] positions (`[position panel][dim_head][PANEL]`, the matrix
/// `K[position, dim_head]` packed), values as panels of [`PANEL`] channels
/// (`[channel panel][capacity][PANEL]`, the matrix `Vᵀ[dim_head, position]` packed).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct KvLayout {
    pub dim_head: usize,
    pub heads: usize,
    pub capacity: usize,
}

impl KvLayout {
    fn key_block(&self) -> usize {
        self.capacity.div_ceil(PANEL) * self.dim_head * PANEL
    }

    fn value_block(&self) -> usize {
        self.dim_head.div_ceil(PANEL) * self.capacity * PANEL
    }

    /// Values per `(sequence, head)`: its keys, then its values.
    fn block(&self) -> usize {
        self.key_block() + self.value_block()
    }

    /// The first `total` keys of a `(sequence, head)` block as `W[total, dim_head]`.
    fn key_panels<'a>(&self, block: &'a [f32], total: usize) -> Panels<'a> {
        Panels {
            data: PanelData::F32(&block[..self.key_block()]),
            stride: self.dim_head * PANEL,
            k: self.dim_head,
            cols: total,
        }
    }

    /// The first `total` values of a `(sequence, head)` block as `W[dim_head, total]`.
    fn value_panels<'a>(&self, block: &'a [f32], total: usize) -> Panels<'a> {
        Panels {
            data: PanelData::F32(&block[self.key_block()..self.block()]),
            stride: self.capacity * PANEL,
            k: total,
            cols: self.dim_head,
        }
    }

    /// Writes one position's key and value into a `(sequence, head)` block.
    fn store(&self, block: &mut [f32], pos: usize, key: &[f32], value: &[f32]) {
        let (keys, values) = block.split_at_mut(self.key_block());
        let base = (pos / PANEL) * self.dim_head * PANEL + pos % PANEL;
        for (d, &k) in key.iter().enumerate() {
            keys[base + d * PANEL] = k;
        }
        let base = pos * PANEL;
        for (d, &v) in value.iter().enumerate() {
            values[base + (d / PANEL) * self.capacity * PANEL + d % PANEL] = v;
        }
    }
}

/// One attention layer's keys and values for `rows` sequences (batch rows, or one shared context)
/// of up to `layout.capacity` positions, preallocated so decoding never reallocates. Each
/// `(sequence, head)` owns one contiguous block, so a step's new entries are stored in parallel.
pub(super) struct KvStore {
    layout: KvLayout,
    blocks: Vec<f32>,
}

impl KvStore {
    pub fn new(layout: KvLayout, rows: usize) -> Self {
        Self {
            layout,
            blocks: vec![0.0; rows * layout.heads * layout.block()],
        }
    }

    /// True if this store was made for `layout` and `rows` sequences.
    pub fn fits(&self, layout: KvLayout, rows: usize) -> bool {
        self.layout == layout && self.blocks.len() == rows * layout.heads * layout.block()
    }

    /// Stores the key and value of `(sequence, head)` `bh` at `pos`.
    pub fn store(&mut self, bh: usize, pos: usize, key: &[f32], value: &[f32]) {
        let size = self.layout.block();
        let block = &mut self.blocks[bh * size..(bh + 1) * size];
        self.layout.store(block, pos, key, value);
    }

    /// The keys and values of `(sequence, head)` `bh`, the first `total` positions.
    fn head(&self, bh: usize, total: usize, head: usize) -> HeadKv<'_> {
        let size = self.layout.block();
        let block = &self.blocks[bh * size..(bh + 1) * size];
        HeadKv {
            keys: self.layout.key_panels(block, total),
            values: self.layout.value_panels(block, total),
            head,
        }
    }
}

/// What one attention head attends over: its keys and values as panels, and its index (for a
/// score bias).
struct HeadKv<'a> {
    keys: Panels<'a>,
    values: Panels<'a>,
    head: usize,
}

/// Something added to a query's attention scores before the softmax (a position bias).
pub(super) trait ScoreBias: Sync {
    /// Adds the bias of `head` for query position `query` against keys `0 .. scores.len()`.
    fn add(&self, head: usize, query: usize, scores: &mut [f32]);
}

/// Which keys a query sees and what is added to its scores.
#[derive(Clone, Copy)]
pub(super) struct Visibility<'a> {
    /// Keys after the query's own position are hidden.
    pub causal: bool,
    pub bias: Option<&'a dyn ScoreBias>,
}

/// Attention of `queries: [batch][head][n][dim_head]` (positions `start .. start + n`) over the
/// first `total` entries of `kv`, merged to `[batch · n, heads · dim_head]`. With `shared`, every
/// batch row reads the same sequence of `kv` (a cross-attention context stored once).
pub(super) fn attend(
    queries: &[f32],
    shape: StepShape,
    kv: &KvStore,
    total: usize,
    shared: bool,
    visibility: Visibility,
) -> Vec<f32> {
    let StepShape { batch, n, .. } = shape;
    let (heads, dim_head) = (kv.layout.heads, kv.layout.dim_head);
    let isa = Isa::detect();
    let mut heads_out = vec![0.0f32; batch * heads * n * dim_head];
    let task = |bh: usize, out: &mut [f32]| {
        let head = bh % heads;
        let source = if shared { head } else { bh };
        let q = &queries[bh * n * dim_head..(bh + 1) * n * dim_head];
        attend_head(isa, q, shape, kv.head(source, total, head), visibility, out);
    };
    let chunk = n * dim_head;
    let worth_it = batch * heads * n * total * dim_head >= PARALLEL_MIN_WORK;
    in_parallel(&mut heads_out, chunk, worth_it, task);
    let mut merged = Vec::new();
    merge_heads(&heads_out, batch, heads, n, dim_head, &mut merged);
    merged
}

/// One head's attention for the `n` queries `q: [n][dim_head]` of a chunk (positions from
/// `shape.start`): scores `q·Kᵀ` (+ bias), masked softmax, `out = P·V`. Causal queries go a row
/// block at a time, each block against only the keys it can see, so a whole prompt skips the
/// hidden half of its score matrix.
fn attend_head(
    isa: Isa,
    q: &[f32],
    shape: StepShape,
    kv: HeadKv,
    visibility: Visibility,
    out: &mut [f32],
) {
    let (dim_head, total) = (kv.values.cols, kv.keys.cols);
    let block = if visibility.causal {
        isa.row_block()
    } else {
        shape.n
    };
    // The scores live in the thread's scratch: a head is one task of a parallel region, and
    // regions allocate nothing once each thread's buffers have grown.
    let mut scores = SCORES.take();
    let blocks = q
        .chunks(block * dim_head)
        .zip(out.chunks_mut(block * dim_head));
    for (index, (q, out)) in blocks.enumerate() {
        let rows = q.len() / dim_head;
        let first = shape.start + index * block;
        let seen = if visibility.causal {
            (first + rows).min(total)
        } else {
            total
        };
        scores.clear();
        scores.resize(rows * seen, 0.0);
        let keys = Panels {
            cols: seen,
            ..kv.keys
        };
        product(isa, q, rows, keys, 0..keys.count(), &mut scores, seen);
        for (t, row) in scores.chunks_exact_mut(seen).enumerate() {
            let pos = first + t;
            if let Some(bias) = visibility.bias {
                bias.add(kv.head, pos, row);
            }
            let visible = if visibility.causal { pos + 1 } else { seen };
            masked_softmax(row, visible);
        }
        let values = Panels {
            k: seen,
            ..kv.values
        };
        product(isa, &scores, rows, values, 0..values.count(), out, dim_head);
    }
    SCORES.set(scores);
}

/// Per-thread buffers of a cached attention head's task: its rotated queries and key.
#[derive(Default)]
struct HeadScratch {
    queries: Vec<f32>,
    key: Vec<f32>,
}

thread_local! {
    static HEAD_SCRATCH: std::cell::RefCell<HeadScratch> =
        std::cell::RefCell::new(HeadScratch::default());
    /// [`attend_head`]'s score rows, kept between calls.
    static SCORES: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `task(i, row)` over the `width`-long rows of `data`: in parallel when there are several
/// rows and the work is `worth_it`, else on the calling thread.
fn in_parallel(
    data: &mut [f32],
    width: usize,
    worth_it: bool,
    task: impl Fn(usize, &mut [f32]) + Sync,
) {
    if worth_it && data.len() > width {
        team::for_each_chunk(data, width, task);
    } else {
        data.chunks_mut(width.max(1))
            .enumerate()
            .for_each(|(i, row)| task(i, row));
    }
}

/// `[batch][head][n][d] → [batch][n][head · d]`, into `merged`.
fn merge_heads(
    x: &[f32],
    batch: usize,
    heads: usize,
    n: usize,
    dim_head: usize,
    merged: &mut Vec<f32>,
) {
    let inner = heads * dim_head;
    let merged = refill(merged, batch * n * inner);
    for (bh, block_out) in x.chunks_exact(n * dim_head).enumerate() {
        let (b, head) = (bh / heads, bh % heads);
        for (t, row) in block_out.chunks_exact(dim_head).enumerate() {
            let at = (b * n + t) * inner + head * dim_head;
            merged[at..at + dim_head].copy_from_slice(row);
        }
    }
}

/// Softmax over the first `visible` scores of a row; the rest (future positions) become 0.
fn masked_softmax(row: &mut [f32], visible: usize) {
    let (seen, future) = row.split_at_mut(visible.min(row.len()));
    softmax_in_place(seen);
    future.fill(0.0);
}

/// x-transformers' `SimpleRMSNorm` per row of `dim` values, `x / max(‖x‖₂, 1e-12) · √dim` (no
/// learned gain), into `out`.
fn simple_rms_norm(x: &[f32], dim: usize, out: &mut Vec<f32>) {
    let out = refill(out, x.len());
    normalize_rows(x, dim, NORM_EPS, (dim as f32).sqrt(), out);
}

/// Keeps the last `keep` of every `n` rows of `width` values (each batch row's trailing
/// positions), in place.
fn keep_tail_rows(x: &mut Vec<f32>, n: usize, width: usize, keep: usize) {
    let sequences = x.len() / (n * width);
    for seq in 0..sequences {
        let from = (seq * n + n - keep) * width;
        x.copy_within(from..from + keep * width, seq * keep * width);
    }
    x.truncate(sequences * keep * width);
}

/// Gives `buffer` the length `len`, reusing its allocation, and returns it for the caller to
/// overwrite whole: what it held before is left in place rather than cleared (zeroing showed as
/// 1–3% of a prompt's profile).
fn refill(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    } else {
        buffer.truncate(len);
    }
    buffer
}

/// The working buffers of one pass through a stack of blocks, kept by the caller's cache
/// between calls. A prompt's activations come to megabytes per layer; allocated afresh for each,
/// the system allocator may hand them back to the OS in between and fault them in again, which
/// took a third of a 481-token f32 prompt (page faults and `brk` calls under `perf`). They keep
/// the size of the largest chunk pushed: about 8 MB after such a prompt at the shipped size,
/// 16 MB at the ReaLchords size, held as long as the cache.
#[derive(Default)]
pub(super) struct Scratch {
    /// The residual stream `[rows, dim]`.
    pub stream: Vec<f32>,
    /// The normed stream a sublayer reads.
    normed: Vec<f32>,
    /// A sublayer's input projection: q, k and v stacked, or the feed-forward's value and gate.
    projected: Vec<f32>,
    /// Attention per head `[batch][head][n][dim_head]`, or the gated feed-forward hidden layer.
    inner: Vec<f32>,
    /// Heads merged, `[rows, heads · dim_head]`.
    merged: Vec<f32>,
    /// A sublayer's output, before it joins the stream.
    output: Vec<f32>,
    /// Width of the stream.
    dim: usize,
}

impl Scratch {
    /// Starts the stream at the embeddings of `ids` (`[rows, dim]` of `table`); `Err(id)` for an
    /// id outside the table.
    pub fn embed<'a>(
        &mut self,
        table: &[f32],
        dim: usize,
        ids: impl IntoIterator<Item = &'a u32>,
    ) -> Result<(), u32> {
        self.dim = dim;
        self.stream.clear();
        for &id in ids {
            let range: Range<usize> = id as usize * dim..(id as usize + 1) * dim;
            self.stream.extend_from_slice(table.get(range).ok_or(id)?);
        }
        Ok(())
    }

    /// Rows in the stream.
    pub fn rows(&self) -> usize {
        self.stream.len() / self.dim.max(1)
    }

    /// Keeps the last `keep` of every `n` rows of the stream.
    pub fn keep_tail(&mut self, n: usize, keep: usize) {
        keep_tail_rows(&mut self.stream, n, self.dim, keep);
    }

    /// The stream through SimpleRMSNorm (the input of a sublayer, or of the logits).
    pub fn normed(&mut self) -> &[f32] {
        simple_rms_norm(&self.stream, self.dim, &mut self.normed);
        &self.normed
    }
}
