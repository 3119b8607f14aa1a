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
//! Weights are loaded with candle; the arithmetic runs on plain `f32` buffers: chunks of many rows
//! (prompt prefill) use candle's gemm, chunks of a few rows (incremental decoding) use
//! [`super::kernels`], which read every weight once per step.

use candle_core::{DType, Device, Storage, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::config::{ModelConfig, QK_NORM_SCALE};
use super::kernels::{self, Rows};
use super::ModelError;

/// Clamp for L2 norms (`F.normalize`'s eps).
const NORM_EPS: f32 = 1e-12;

/// From this many rows on, a linear layer is compute-bound and goes to candle's gemm.
const GEMM_MIN_ROWS: usize = 32;

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
/// incremental decoding never reallocates. Keys are stored `[batch][head][position][dim_head]`,
/// values transposed `[batch][head][dim_head][position]` so both attention products stream rows.
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

/// A weight matrix in PyTorch layout `[out, in]`: `y = x · Wᵀ`.
struct Linear {
    weight: Tensor,
    out_dim: usize,
    in_dim: usize,
}

impl Linear {
    fn new(weight: Tensor) -> candle_core::Result<Self> {
        let weight = weight
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .contiguous()?;
        let (out_dim, in_dim) = weight.dims2()?;
        Ok(Self {
            weight,
            out_dim,
            in_dim,
        })
    }

    /// `x[rows, in] · Wᵀ → [rows, out]`.
    fn forward(&self, x: &[f32], rows: usize) -> candle_core::Result<Vec<f32>> {
        if rows >= GEMM_MIN_ROWS {
            let x = Tensor::from_slice(x, (rows, self.in_dim), &Device::Cpu)?;
            return x.matmul(&self.weight.t()?)?.flatten_all()?.to_vec1();
        }
        let (storage, layout) = self.weight.storage_and_layout();
        let Storage::Cpu(cpu) = &*storage else {
            candle_core::bail!("decoder weights must live on the CPU")
        };
        let data = cpu.as_slice::<f32>()?;
        let data = data.get(layout.start_offset()..).unwrap_or_default();
        if data.len() < self.out_dim * self.in_dim || x.len() < rows * self.in_dim {
            candle_core::bail!("linear layer buffers are smaller than their shapes")
        }
        Ok(kernels::linear(x, rows, data, self.out_dim, self.in_dim))
    }

    fn elem_count(&self) -> usize {
        self.out_dim * self.in_dim
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
        let size = batch * self.config.attn_inner_dim() * self.config.max_seq_len;
        Ok(KvCache {
            keys: (0..self.config.depth).map(|_| vec![0.0; size]).collect(),
            values: (0..self.config.depth).map(|_| vec![0.0; size]).collect(),
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
        let cache_size = batch * self.config.attn_inner_dim() * self.config.max_seq_len;
        if cache.keys.len() != self.blocks.len()
            || cache.capacity != self.config.max_seq_len
            || cache
                .keys
                .iter()
                .chain(&cache.values)
                .any(|layer| layer.len() != cache_size)
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
        for (layer, block) in self.blocks.iter().enumerate() {
            let (Some(keys), Some(values)) =
                (cache.keys.get_mut(layer), cache.values.get_mut(layer))
            else {
                return Err(ModelError::ForeignCache);
            };
            let attn = self.attention(block, &self.simple_rms_norm(&h), keys, values, shape)?;
            add_assign(&mut h, &attn);
            let ff = self.feed_forward(block, &self.simple_rms_norm(&h), batch * n)?;
            add_assign(&mut h, &ff);
        }
        cache.len += n;
        let selected = match rows {
            LogitRows::Last => h
                .chunks_exact(n * dim)
                .flat_map(|seq| &seq[(n - 1) * dim..])
                .copied()
                .collect(),
            LogitRows::All => h,
        };
        let out_rows = selected.len() / dim;
        let logits = self
            .to_logits
            .forward(&self.simple_rms_norm(&selected), out_rows)?;
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

    /// Self-attention of one block for `x: [batch · n, dim]` (already normed); appends this
    /// chunk's keys/values to the layer's cache buffers.
    fn attention(
        &self,
        block: &Block,
        x: &[f32],
        keys: &mut [f32],
        values: &mut [f32],
        shape: StepShape,
    ) -> Result<Vec<f32>, ModelError> {
        let StepShape { batch, n, start } = shape;
        let (heads, dim_head, cap) = (
            self.config.heads,
            self.config.dim_head,
            self.config.max_seq_len,
        );
        let inner = heads * dim_head;
        let total = start + n;
        let qkv = block.qkv.forward(x, batch * n)?;
        // Queries laid out [batch][head][n][dim_head]; keys/values go straight into the cache.
        let mut queries = vec![0.0f32; batch * heads * n * dim_head];
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
                let k = &mut keys[(bh * cap + pos) * dim_head..(bh * cap + pos + 1) * dim_head];
                k.copy_from_slice(&proj[inner + hd.start..inner + hd.end]);
                l2_normalize(k);
                k.iter_mut()
                    .zip(&block.k_scale[hd.clone()])
                    .for_each(|(v, s)| *v *= s);
                self.rope.rotate(k, pos);
                let v = &proj[2 * inner + hd.start..2 * inner + hd.end];
                for (d, &value) in v.iter().enumerate() {
                    values[(bh * dim_head + d) * cap + pos] = value;
                }
            }
        }
        // One task per (batch row, head): scores = q·Kᵀ, causal softmax, out = P·V.
        let mut heads_out = vec![0.0f32; batch * heads * n * dim_head];
        let keys: &[f32] = keys;
        let values: &[f32] = values;
        heads_out
            .par_chunks_mut(n * dim_head)
            .enumerate()
            .for_each(|(bh, out)| {
                let q = Rows::dense(
                    &queries[bh * n * dim_head..(bh + 1) * n * dim_head],
                    n,
                    dim_head,
                );
                let k = Rows::dense(
                    &keys[bh * cap * dim_head..(bh * cap + total) * dim_head],
                    total,
                    dim_head,
                );
                let mut scores_t = vec![0.0f32; total * n];
                kernels::matmul_t(q, k, &mut scores_t);
                let mut probs = vec![0.0f32; n * total];
                for (t, p) in probs.chunks_exact_mut(total).enumerate() {
                    let visible = start + t + 1;
                    let mut max = f32::NEG_INFINITY;
                    for (j, slot) in p.iter_mut().enumerate().take(visible) {
                        *slot = scores_t[j * n + t];
                        max = max.max(*slot);
                    }
                    let mut sum = 0.0;
                    for slot in p.iter_mut().take(visible) {
                        *slot = (*slot - max).exp();
                        sum += *slot;
                    }
                    p.iter_mut().take(visible).for_each(|slot| *slot /= sum);
                }
                let v = Rows {
                    data: &values[bh * dim_head * cap..(bh + 1) * dim_head * cap],
                    rows: dim_head,
                    cols: total,
                    stride: cap,
                };
                let mut out_t = vec![0.0f32; dim_head * n];
                kernels::matmul_t(Rows::dense(&probs, n, total), v, &mut out_t);
                for (d, column) in out_t.chunks_exact(n).enumerate() {
                    for (t, &value) in column.iter().enumerate() {
                        out[t * dim_head + d] = value;
                    }
                }
            });
        // Merge heads: [batch][head][n][d] → [batch][n][head · d].
        let mut merged = vec![0.0f32; batch * n * inner];
        for (bh, block_out) in heads_out.chunks_exact(n * dim_head).enumerate() {
            let (b, head) = (bh / heads, bh % heads);
            for (t, row) in block_out.chunks_exact(dim_head).enumerate() {
                let at = (b * n + t) * inner + head * dim_head;
                merged[at..at + dim_head].copy_from_slice(row);
            }
        }
        Ok(block.attn_out.forward(&merged, batch * n)?)
    }

    /// SwiGLU: `z = x·W1ᵀ + b1`, value = first half, gate = second half,
    /// `(value ⊙ silu(gate))·W2ᵀ + b2`.
    fn feed_forward(&self, block: &Block, x: &[f32], rows: usize) -> Result<Vec<f32>, ModelError> {
        let z = block.ff_in.forward(x, rows)?;
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
        let mut out = block.ff_out.forward(&hidden, rows)?;
        for row in out.chunks_exact_mut(block.ff_out_bias.len()) {
            add_assign(row, &block.ff_out_bias);
        }
        Ok(out)
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

/// `x / max(‖x‖₂, eps)` in place (PyTorch's `F.normalize`).
fn l2_normalize(x: &mut [f32]) {
    let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt().max(NORM_EPS);
    x.iter_mut().for_each(|v| *v /= norm);
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
