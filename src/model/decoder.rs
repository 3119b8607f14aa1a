//! The ReaLchords online decoder (x-transformers 2.11.23 `TransformerWrapper(Decoder(...))` with
//! ReaLJam's kwargs), f32 on the CPU.
//!
//! Per block: SimpleRMSNorm (no gain, ×√dim) → attention with qk l2-norm × learned per-head scales,
//! fixed scale 10, partial interleaved RoPE from the stored `inv_freq` → residual → SimpleRMSNorm →
//! SwiGLU with biases (value half first, gate second) → residual. Then a final SimpleRMSNorm and an
//! untied `to_logits`. There is no absolute position embedding.
//!
//! Every call goes through [`Decoder::step`], which appends a chunk of tokens to a [`KvCache`]; a
//! whole-sequence forward is one step on an empty cache. Keys are cached after qk-norm *and*
//! RoPE at their absolute positions, which equals x-transformers' "cache un-rotated keys, rotate the
//! whole window" as long as the sequence never exceeds `max_seq_len` (enforced here).
//!
//! Weights are loaded with candle and repacked into [`PackedMatrix`] panels; the arithmetic runs on
//! plain `f32` buffers. Every product — the weight matrices, `q·Kᵀ` and `P·V` over the cache, which
//! is stored in the same panel layout — goes through one register-blocked micro-kernel that reads
//! each weight once per step (see [`super::packed`]). In the last layer only the rows that become
//! logits get the output projection and feed-forward.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::config::{ModelConfig, QK_NORM_SCALE};
use super::kernels::{Isa, PANEL};
use super::packed::{product, PackedMatrix, Panels, PARALLEL_MIN_WORK};
use super::ModelError;

/// Clamp for L2 norms (`F.normalize`'s eps).
const NORM_EPS: f32 = 1e-12;

/// Which positions of a chunk [`Decoder::step`] turns into logits. Logits cost a `[dim × vocab]`
/// product per row, so callers ask only for what they sample from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitRows {
    /// Only the last position of each batch row: `[batch, num_tokens]`.
    Last,
    /// Every position: `[batch, chunk_len, num_tokens]`.
    All,
}

/// Keys and values of every layer for a batch of sequences, preallocated to `max_seq_len` so
/// incremental decoding never reallocates. Both are stored as packed panels (see
/// [`CacheLayout`]) so the two attention products run on the same micro-kernel as the weights.
pub struct KvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    batch: usize,
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// Number of tokens already pushed through the decoder.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first step.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Batch rows this cache was made for.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Forgets all tokens but keeps the buffers, so a new sequence can start without allocating.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Forgets every token after the first `len` (e.g. to re-plan from a shared prefix).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

/// A weight matrix in PyTorch layout `[out, in]` (`y = x · Wᵀ`), packed for streaming.
struct Linear(PackedMatrix);

impl Linear {
    fn new(weight: Tensor) -> candle_core::Result<Self> {
        let (out_dim, in_dim) = weight.dims2()?;
        let values = to_vec(weight)?;
        PackedMatrix::pack(&values, out_dim, in_dim)
            .map(Self)
            .ok_or_else(|| {
                candle_core::Error::Msg("weight holds fewer values than its shape".into())
            })
    }

    /// `x[rows, in] · Wᵀ → [rows, out]`.
    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; rows * self.0.out_dim()];
        self.0.matmul(x, rows, &mut out);
        out
    }

    fn elem_count(&self) -> usize {
        self.0.elem_count()
    }
}

/// One transformer block.
struct Block {
    /// q, k and v projections stacked: `[3 · heads · dim_head, dim]`.
    qkv: Linear,
    /// `[heads · dim_head]`: learned q scale × [`QK_NORM_SCALE`].
    q_scale: Vec<f32>,
    /// `[heads · dim_head]`: learned k scale.
    k_scale: Vec<f32>,
    attn_out: Linear,
    /// `[2 · ff_inner, dim]`: value half then gate half.
    ff_in: Linear,
    ff_in_bias: Vec<f32>,
    ff_out: Linear,
    ff_out_bias: Vec<f32>,
}

/// Cos/sin tables `[max_seq_len][rotary_dim / 2]`, built from the stored `inv_freq`.
struct Rope {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

/// A loaded decoder, ready to run.
pub struct Decoder {
    config: ModelConfig,
    /// `[num_tokens, dim]`.
    token_emb: Vec<f32>,
    blocks: Vec<Block>,
    to_logits: Linear,
    rope: Rope,
}

fn to_vec(t: Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

impl Decoder {
    /// Loads the weights from a VarBuilder rooted at the PyTorch state-dict root (names such as
    /// `decoder.token_emb.emb.weight`, spec §2.1). Shapes are checked against `config`; any stored
    /// float dtype is upcast to f32.
    pub fn load(config: &ModelConfig, vb: VarBuilder) -> Result<Self, ModelError> {
        let vb = vb.pp("decoder");
        let (dim, heads, dim_head) = (config.dim, config.heads, config.dim_head);
        let inner = config.attn_inner_dim();
        let ff = config.ff_inner_dim();
        let token_emb = to_vec(vb.get((config.num_tokens, dim), "token_emb.emb.weight")?)?;
        let to_logits = Linear::new(vb.get((config.num_tokens, dim), "to_logits.weight")?)?;
        let inv_freq = to_vec(vb.get_unchecked("attn_layers.rotary_pos_emb.inv_freq")?)?;
        let rope = Rope::new(config, &inv_freq)?;

        let layers = vb.pp("attn_layers").pp("layers");
        let mut blocks = Vec::with_capacity(config.depth);
        for l in 0..config.depth {
            let attn = layers.pp(2 * l).pp(1);
            let q = attn.get((inner, dim), "to_q.weight")?;
            let k = attn.get((inner, dim), "to_k.weight")?;
            let v = attn.get((inner, dim), "to_v.weight")?;
            let q_scale = to_vec(
                (attn.get((heads, 1, dim_head), "qk_norm_q_scale")? * QK_NORM_SCALE as f64)?,
            )?;
            let k_scale = to_vec(attn.get((heads, 1, dim_head), "qk_norm_k_scale")?)?;
            let ffb = layers.pp(2 * l + 1).pp(1).pp("ff");
            blocks.push(Block {
                qkv: Linear::new(Tensor::cat(&[q, k, v], 0)?)?,
                q_scale,
                k_scale,
                attn_out: Linear::new(attn.get((dim, inner), "to_out.weight")?)?,
                ff_in: Linear::new(ffb.get((2 * ff, dim), "0.proj.weight")?)?,
                ff_in_bias: to_vec(ffb.get(2 * ff, "0.proj.bias")?)?,
                ff_out: Linear::new(ffb.get((dim, ff), "2.weight")?)?,
                ff_out_bias: to_vec(ffb.get(dim, "2.bias")?)?,
            });
        }
        Ok(Self {
            config: config.clone(),
            token_emb,
            blocks,
            to_logits,
            rope,
        })
    }

    /// The hyper-parameters this decoder was loaded with.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Channels per head rotated by RoPE (twice the stored `inv_freq` length).
    pub fn rotary_dim(&self) -> usize {
        2 * self.rope.half
    }

    /// Bytes of weights one decoding step streams from memory (all matrices except the embedding,
    /// of which only the looked-up rows are read). Used for the bandwidth floor in the bench.
    pub fn streamed_weight_bytes(&self) -> usize {
        let per_block: usize = self
            .blocks
            .iter()
            .map(|b| {
                b.qkv.elem_count()
                    + b.attn_out.elem_count()
                    + b.ff_in.elem_count()
                    + b.ff_out.elem_count()
            })
            .sum();
        (per_block + self.to_logits.elem_count()) * std::mem::size_of::<f32>()
    }

    /// An empty cache for `batch` parallel sequences of up to `max_seq_len` tokens.
    pub fn new_cache(&self, batch: usize) -> Result<KvCache, ModelError> {
        let layout = CacheLayout::new(&self.config);
        let (keys, values) = (batch * layout.keys_len(), batch * layout.values_len());
        Ok(KvCache {
            keys: (0..self.config.depth).map(|_| vec![0.0; keys]).collect(),
            values: (0..self.config.depth).map(|_| vec![0.0; values]).collect(),
            batch,
            len: 0,
            capacity: self.config.max_seq_len,
        })
    }

    /// Logits for a whole sequence batch `tokens[b][n]` from scratch: `[b, n, num_tokens]`.
    pub fn forward(&self, tokens: &[Vec<u32>]) -> Result<Tensor, ModelError> {
        let mut cache = self.new_cache(tokens.len())?;
        self.step(&mut cache, tokens, LogitRows::All)
    }

    /// Pushes one chunk of tokens per batch row (all rows the same length) through the decoder,
    /// appending their keys/values to `cache`, and returns logits for the requested positions.
    pub fn step(
        &self,
        cache: &mut KvCache,
        chunk: &[Vec<u32>],
        rows: LogitRows,
    ) -> Result<Tensor, ModelError> {
        let batch = chunk.len();
        let n = chunk.first().map_or(0, Vec::len);
        if batch != cache.batch {
            return Err(ModelError::BatchMismatch {
                cache: cache.batch,
                chunk: batch,
            });
        }
        let layout = CacheLayout::new(&self.config);
        if cache.keys.len() != self.blocks.len()
            || cache.values.len() != self.blocks.len()
            || cache.capacity != self.config.max_seq_len
            || cache
                .keys
                .iter()
                .any(|l| l.len() != batch * layout.keys_len())
            || cache
                .values
                .iter()
                .any(|l| l.len() != batch * layout.values_len())
        {
            return Err(ModelError::ForeignCache);
        }
        if n == 0 || chunk.iter().any(|row| row.len() != n) {
            return Err(ModelError::RaggedChunk);
        }
        if cache.len + n > cache.capacity {
            return Err(ModelError::ContextOverflow {
                requested: cache.len + n,
                max_seq_len: cache.capacity,
            });
        }
        let dim = self.config.dim;
        let num_tokens = self.config.num_tokens as u32;
        let mut h = Vec::with_capacity(batch * n * dim);
        for &id in chunk.iter().flatten() {
            let row = (id < num_tokens)
                .then(|| {
                    self.token_emb
                        .get(id as usize * dim..(id as usize + 1) * dim)
                })
                .flatten()
                .ok_or(ModelError::TokenOutOfRange { id, num_tokens })?;
            h.extend_from_slice(row);
        }
        let shape = StepShape {
            batch,
            n,
            start: cache.len,
        };
        let last_layer = self.blocks.len().saturating_sub(1);
        for (layer, block) in self.blocks.iter().enumerate() {
            let (Some(keys), Some(values)) =
                (cache.keys.get_mut(layer), cache.values.get_mut(layer))
            else {
                return Err(ModelError::ForeignCache);
            };
            let mut heads = self.attention(block, &self.simple_rms_norm(&h), keys, values, shape);
            if rows == LogitRows::Last && layer == last_layer {
                // Past the last layer's keys/values only the rows turned into logits matter.
                h = last_rows(&h, n, dim);
                heads = last_rows(&heads, n, self.config.attn_inner_dim());
            }
            let live_rows = h.len() / dim;
            add_assign(&mut h, &block.attn_out.forward(&heads, live_rows));
            let ff = self.feed_forward(block, &self.simple_rms_norm(&h), live_rows);
            add_assign(&mut h, &ff);
        }
        cache.len += n;
        if rows == LogitRows::Last && h.len() != batch * dim {
            h = last_rows(&h, n, dim);
        }
        let logits = self
            .to_logits
            .forward(&self.simple_rms_norm(&h), h.len() / dim);
        let tensor = match rows {
            LogitRows::Last => {
                Tensor::from_vec(logits, (batch, self.config.num_tokens), &Device::Cpu)?
            }
            LogitRows::All => {
                Tensor::from_vec(logits, (batch, n, self.config.num_tokens), &Device::Cpu)?
            }
        };
        Ok(tensor)
    }

    /// x-transformers' `SimpleRMSNorm` per row: `x / max(‖x‖₂, 1e-12) · √dim`, no learned gain.
    fn simple_rms_norm(&self, x: &[f32]) -> Vec<f32> {
        let dim = self.config.dim;
        let scale = (dim as f32).sqrt();
        let mut out = x.to_vec();
        for row in out.chunks_exact_mut(dim) {
            l2_normalize(row);
            row.iter_mut().for_each(|v| *v *= scale);
        }
        out
    }

    /// Self-attention of one block for `x: [batch · n, dim]` (already normed), up to the merged
    /// heads `[batch · n, heads · dim_head]` (the output projection is the caller's); appends
    /// this chunk's keys/values to the layer's cache buffers.
    fn attention(
        &self,
        block: &Block,
        x: &[f32],
        keys: &mut [f32],
        values: &mut [f32],
        shape: StepShape,
    ) -> Vec<f32> {
        let StepShape { batch, n, start } = shape;
        let (heads, dim_head) = (self.config.heads, self.config.dim_head);
        let layout = CacheLayout::new(&self.config);
        let inner = heads * dim_head;
        let total = start + n;
        let qkv = block.qkv.forward(x, batch * n);
        // Queries laid out [batch][head][n][dim_head]; keys/values go straight into the cache.
        let mut queries = vec![0.0f32; batch * heads * n * dim_head];
        let mut key = vec![0.0f32; dim_head];
        for (row, proj) in qkv.chunks_exact(3 * inner).enumerate() {
            let (b, t) = (row / n, row % n);
            let pos = start + t;
            for head in 0..heads {
                let hd = head * dim_head..(head + 1) * dim_head;
                let bh = b * heads + head;
                let q = &mut queries[(bh * n + t) * dim_head..(bh * n + t + 1) * dim_head];
                q.copy_from_slice(&proj[hd.clone()]);
                l2_normalize(q);
                q.iter_mut()
                    .zip(&block.q_scale[hd.clone()])
                    .for_each(|(v, s)| *v *= s);
                self.rope.rotate(q, pos);
                key.copy_from_slice(&proj[inner + hd.start..inner + hd.end]);
                l2_normalize(&mut key);
                key.iter_mut()
                    .zip(&block.k_scale[hd.clone()])
                    .for_each(|(v, s)| *v *= s);
                self.rope.rotate(&mut key, pos);
                layout.store_key(keys, bh, pos, &key);
                layout.store_value(
                    values,
                    bh,
                    pos,
                    &proj[2 * inner + hd.start..2 * inner + hd.end],
                );
            }
        }
        // One task per (batch row, head): scores = q·Kᵀ, causal softmax, out = P·V.
        let isa = Isa::detect();
        let mut heads_out = vec![0.0f32; batch * heads * n * dim_head];
        let keys: &[f32] = keys;
        let values: &[f32] = values;
        let attend = |(bh, out): (usize, &mut [f32])| {
            let q = &queries[bh * n * dim_head..(bh + 1) * n * dim_head];
            let k = layout.key_panels(keys, bh, total);
            let mut scores = vec![0.0f32; n * total];
            product(isa, q, n, k, 0..k.count(), &mut scores, total);
            for (t, row) in scores.chunks_exact_mut(total).enumerate() {
                causal_softmax(row, start + t + 1);
            }
            let v = layout.value_panels(values, bh, total);
            product(isa, &scores, n, v, 0..v.count(), out, dim_head);
        };
        let chunk = n * dim_head;
        if batch * heads * n * total * dim_head < PARALLEL_MIN_WORK {
            heads_out.chunks_mut(chunk).enumerate().for_each(attend);
        } else {
            heads_out.par_chunks_mut(chunk).enumerate().for_each(attend);
        }
        // Merge heads: [batch][head][n][d] → [batch][n][head · d].
        let mut merged = vec![0.0f32; batch * n * inner];
        for (bh, block_out) in heads_out.chunks_exact(n * dim_head).enumerate() {
            let (b, head) = (bh / heads, bh % heads);
            for (t, row) in block_out.chunks_exact(dim_head).enumerate() {
                let at = (b * n + t) * inner + head * dim_head;
                merged[at..at + dim_head].copy_from_slice(row);
            }
        }
        merged
    }

    /// SwiGLU: `z = x·W1ᵀ + b1`, value = first half, gate = second half,
    /// `(value ⊙ silu(gate))·W2ᵀ + b2`.
    fn feed_forward(&self, block: &Block, x: &[f32], rows: usize) -> Vec<f32> {
        let z = block.ff_in.forward(x, rows);
        let inner = block.ff_in_bias.len() / 2;
        let mut hidden = Vec::with_capacity(rows * inner);
        for row in z.chunks_exact(2 * inner) {
            let (value, gate) = row.split_at(inner);
            let (value_bias, gate_bias) = block.ff_in_bias.split_at(inner);
            hidden.extend(
                value
                    .iter()
                    .zip(value_bias)
                    .zip(gate.iter().zip(gate_bias))
                    .map(|((v, vb), (g, gb))| {
                        let g = g + gb;
                        (v + vb) * (g / (1.0 + (-g).exp()))
                    }),
            );
        }
        let mut out = block.ff_out.forward(&hidden, rows);
        for row in out.chunks_exact_mut(block.ff_out_bias.len()) {
            add_assign(row, &block.ff_out_bias);
        }
        out
    }
}

/// Geometry of one [`Decoder::step`].
#[derive(Clone, Copy)]
struct StepShape {
    batch: usize,
    n: usize,
    /// Tokens already in the cache (position of the chunk's first token).
    start: usize,
}

/// Softmax over the first `visible` scores of a row; the rest (future positions) become 0.
fn causal_softmax(row: &mut [f32], visible: usize) {
    let (seen, future) = row.split_at_mut(visible.min(row.len()));
    let max = seen.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0;
    for v in seen.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    seen.iter_mut().for_each(|v| *v /= sum);
    future.fill(0.0);
}

/// Where one layer's keys and values live in a [`KvCache`] buffer, per `(batch row, head)`:
/// keys as panels of [`PANEL`] positions (`[position panel][dim_head][PANEL]`, the matrix
/// `K[position, dim_head]` packed), values as panels of [`PANEL`] channels
/// (`[channel panel][max_seq_len][PANEL]`, the matrix `Vᵀ[dim_head, position]` packed).
#[derive(Clone, Copy)]
struct CacheLayout {
    dim_head: usize,
    heads: usize,
    capacity: usize,
}

impl CacheLayout {
    fn new(config: &ModelConfig) -> Self {
        Self {
            dim_head: config.dim_head,
            heads: config.heads,
            capacity: config.max_seq_len,
        }
    }

    /// Key values per batch row.
    fn keys_len(&self) -> usize {
        self.heads * self.key_block()
    }

    /// Value values per batch row.
    fn values_len(&self) -> usize {
        self.heads * self.value_block()
    }

    fn key_block(&self) -> usize {
        self.capacity.div_ceil(PANEL) * self.dim_head * PANEL
    }

    fn value_block(&self) -> usize {
        self.dim_head.div_ceil(PANEL) * self.capacity * PANEL
    }

    fn store_key(&self, keys: &mut [f32], bh: usize, pos: usize, key: &[f32]) {
        let base = bh * self.key_block() + (pos / PANEL) * self.dim_head * PANEL + pos % PANEL;
        for (d, &value) in key.iter().enumerate() {
            keys[base + d * PANEL] = value;
        }
    }

    fn store_value(&self, values: &mut [f32], bh: usize, pos: usize, value: &[f32]) {
        let base = bh * self.value_block() + pos * PANEL;
        for (d, &v) in value.iter().enumerate() {
            values[base + (d / PANEL) * self.capacity * PANEL + d % PANEL] = v;
        }
    }

    /// The first `total` cached keys of `(batch row, head)` `bh` as `W[total, dim_head]`.
    fn key_panels<'a>(&self, keys: &'a [f32], bh: usize, total: usize) -> Panels<'a> {
        Panels {
            data: &keys[bh * self.key_block()..(bh + 1) * self.key_block()],
            stride: self.dim_head * PANEL,
            k: self.dim_head,
            cols: total,
        }
    }

    /// The first `total` cached values of `bh` as `W[dim_head, total]`.
    fn value_panels<'a>(&self, values: &'a [f32], bh: usize, total: usize) -> Panels<'a> {
        Panels {
            data: &values[bh * self.value_block()..(bh + 1) * self.value_block()],
            stride: self.capacity * PANEL,
            k: total,
            cols: self.dim_head,
        }
    }
}

/// `x / max(‖x‖₂, eps)` in place (PyTorch's `F.normalize`).
fn l2_normalize(x: &mut [f32]) {
    let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt().max(NORM_EPS);
    x.iter_mut().for_each(|v| *v /= norm);
}

/// The last of every `n` rows of `width` values (each batch row's last position).
fn last_rows(x: &[f32], n: usize, width: usize) -> Vec<f32> {
    x.chunks_exact(n * width)
        .flat_map(|seq| &seq[(n - 1) * width..])
        .copied()
        .collect()
}

fn add_assign(acc: &mut [f32], other: &[f32]) {
    acc.iter_mut().zip(other).for_each(|(a, b)| *a += b);
}

impl Rope {
    /// Builds the tables `θ[p, i] = p · inv_freq[i]` (f32 product, as PyTorch) for all positions.
    fn new(config: &ModelConfig, inv_freq: &[f32]) -> Result<Self, ModelError> {
        let half = inv_freq.len();
        if half == 0 || 2 * half > config.dim_head {
            return Err(ModelError::BadRotary {
                len: half,
                dim_head: config.dim_head,
            });
        }
        let mut cos = Vec::with_capacity(config.max_seq_len * half);
        let mut sin = Vec::with_capacity(config.max_seq_len * half);
        for p in 0..config.max_seq_len {
            for &f in inv_freq {
                let theta = p as f32 * f;
                cos.push(theta.cos());
                sin.push(theta.sin());
            }
        }
        Ok(Self { cos, sin, half })
    }

    /// Rotates channel pairs `(2j, 2j+1)`, `j < rotary_dim / 2`, of one head vector at position
    /// `pos` (GPT-J interleaved convention); the remaining channels pass through.
    fn rotate(&self, x: &mut [f32], pos: usize) {
        let cos = &self.cos[pos * self.half..(pos + 1) * self.half];
        let sin = &self.sin[pos * self.half..(pos + 1) * self.half];
        for ((pair, &c), &s) in x.chunks_exact_mut(2).zip(cos).zip(sin) {
            let (x0, x1) = (pair[0], pair[1]);
            pair[0] = x0 * c - x1 * s;
            pair[1] = x1 * c + x0 * s;
        }
    }
}
