//! The ReaLchords online decoder (x-transformers 2.11.23 `TransformerWrapper(Decoder(...))` with
//! ReaLJam's kwargs) in candle, f32 on the CPU.
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

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

use super::config::{ModelConfig, QK_NORM_SCALE};
use super::ModelError;

/// Clamp for L2 norms (`F.normalize`'s eps).
const NORM_EPS: f64 = 1e-12;

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
/// incremental decoding never reallocates.
pub struct KvCache {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
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

/// One transformer block's weights, stored matmul-ready (`[in, out]`).
struct Block {
    /// `[dim, 3 · heads · dim_head]`: q, k and v projections side by side.
    qkv: Tensor,
    /// `[1, heads, 1, dim_head]`: learned q scale × [`QK_NORM_SCALE`].
    q_scale: Tensor,
    /// `[1, heads, 1, dim_head]`: learned k scale.
    k_scale: Tensor,
    /// `[heads · dim_head, dim]`.
    attn_out: Tensor,
    /// `[dim, 2 · ff_inner]`: value half then gate half.
    ff_in: Tensor,
    /// `[2 · ff_inner]`.
    ff_in_bias: Tensor,
    /// `[ff_inner, dim]`.
    ff_out: Tensor,
    /// `[dim]`.
    ff_out_bias: Tensor,
}

/// Cos/sin tables for every position up to `max_seq_len`, built from the stored `inv_freq`.
struct Rope {
    /// `[max_seq_len, rotary_dim / 2]`.
    cos: Tensor,
    /// `[max_seq_len, rotary_dim / 2]`.
    sin: Tensor,
    rotary_dim: usize,
}

/// A loaded decoder, ready to run.
pub struct Decoder {
    config: ModelConfig,
    token_emb: Tensor,
    blocks: Vec<Block>,
    /// `[dim, num_tokens]`.
    to_logits: Tensor,
    rope: Rope,
    device: Device,
}

/// `W[out, in]` (PyTorch layout) → `[in, out]`, contiguous, so `x · W` runs as a plain gemm.
fn matmul_ready(w: Tensor) -> candle_core::Result<Tensor> {
    w.t()?.contiguous()
}

/// `x / max(‖x‖₂, eps)` over the last axis (PyTorch's `F.normalize`).
fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(NORM_EPS, f64::MAX)?;
    x.broadcast_div(&norm)
}

impl Decoder {
    /// Loads the weights from a VarBuilder rooted at the PyTorch state-dict root (names such as
    /// `decoder.token_emb.emb.weight`, spec §2.1). Shapes are checked against `config`; any stored
    /// float dtype is upcast to f32 by the VarBuilder.
    pub fn load(config: &ModelConfig, vb: VarBuilder) -> Result<Self, ModelError> {
        let vb = vb.pp("decoder");
        let (dim, heads, dim_head) = (config.dim, config.heads, config.dim_head);
        let inner = config.attn_inner_dim();
        let ff = config.ff_inner_dim();
        let token_emb = vb.get((config.num_tokens, dim), "token_emb.emb.weight")?;
        let to_logits = matmul_ready(vb.get((config.num_tokens, dim), "to_logits.weight")?)?;
        let inv_freq = vb.get_unchecked("attn_layers.rotary_pos_emb.inv_freq")?;
        let rope = Rope::new(config, &inv_freq, vb.device())?;

        let layers = vb.pp("attn_layers").pp("layers");
        let mut blocks = Vec::with_capacity(config.depth);
        for l in 0..config.depth {
            let attn = layers.pp(2 * l).pp(1);
            let q = attn.get((inner, dim), "to_q.weight")?;
            let k = attn.get((inner, dim), "to_k.weight")?;
            let v = attn.get((inner, dim), "to_v.weight")?;
            let qkv = matmul_ready(Tensor::cat(&[q, k, v], 0)?)?;
            let q_scale = (attn.get((heads, 1, dim_head), "qk_norm_q_scale")?
                * QK_NORM_SCALE as f64)?
                .reshape((1, heads, 1, dim_head))?;
            let k_scale = attn
                .get((heads, 1, dim_head), "qk_norm_k_scale")?
                .reshape((1, heads, 1, dim_head))?;
            let attn_out = matmul_ready(attn.get((dim, inner), "to_out.weight")?)?;
            let ffb = layers.pp(2 * l + 1).pp(1).pp("ff");
            blocks.push(Block {
                qkv,
                q_scale,
                k_scale,
                attn_out,
                ff_in: matmul_ready(ffb.get((2 * ff, dim), "0.proj.weight")?)?,
                ff_in_bias: ffb.get(2 * ff, "0.proj.bias")?,
                ff_out: matmul_ready(ffb.get((dim, ff), "2.weight")?)?,
                ff_out_bias: ffb.get(dim, "2.bias")?,
            });
        }
        Ok(Self {
            config: config.clone(),
            token_emb,
            blocks,
            to_logits,
            rope,
            device: vb.device().clone(),
        })
    }

    /// The hyper-parameters this decoder was loaded with.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Channels per head rotated by RoPE (twice the stored `inv_freq` length).
    pub fn rotary_dim(&self) -> usize {
        self.rope.rotary_dim
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
        (per_block + self.to_logits.elem_count()) * DType::F32.size_in_bytes()
    }

    /// An empty cache for `batch` parallel sequences of up to `max_seq_len` tokens.
    pub fn new_cache(&self, batch: usize) -> Result<KvCache, ModelError> {
        let shape = (
            batch,
            self.config.heads,
            self.config.max_seq_len,
            self.config.dim_head,
        );
        let mut keys = Vec::with_capacity(self.config.depth);
        let mut values = Vec::with_capacity(self.config.depth);
        for _ in 0..self.config.depth {
            keys.push(Tensor::zeros(shape, DType::F32, &self.device)?);
            values.push(Tensor::zeros(shape, DType::F32, &self.device)?);
        }
        Ok(KvCache {
            keys,
            values,
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
        if cache.keys.len() != self.blocks.len() || cache.capacity != self.config.max_seq_len {
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
        let num_tokens = self.config.num_tokens as u32;
        let mut ids = Vec::with_capacity(batch * n);
        for &id in chunk.iter().flatten() {
            if id >= num_tokens {
                return Err(ModelError::TokenOutOfRange { id, num_tokens });
            }
            ids.push(id);
        }
        let ids = Tensor::from_vec(ids, batch * n, &self.device)?;
        let mut h = self.token_emb.index_select(&ids, 0)?;
        let mask = causal_mask(cache.len, n, &self.device)?;
        for (layer, block) in self.blocks.iter().enumerate() {
            h = (&h
                + self.attention(
                    block,
                    &self.simple_rms_norm(&h)?,
                    cache,
                    layer,
                    batch,
                    n,
                    mask.as_ref(),
                )?)?;
            h = (&h + feed_forward(block, &self.simple_rms_norm(&h)?)?)?;
        }
        cache.len += n;
        let h = match rows {
            LogitRows::Last => h
                .reshape((batch, n, self.config.dim))?
                .narrow(1, n - 1, 1)?
                .squeeze(1)?,
            LogitRows::All => h,
        };
        let logits = self.simple_rms_norm(&h)?.matmul(&self.to_logits)?;
        Ok(match rows {
            LogitRows::Last => logits,
            LogitRows::All => logits.reshape((batch, n, self.config.num_tokens))?,
        })
    }

    /// x-transformers' `SimpleRMSNorm`: `x / max(‖x‖₂, 1e-12) · √dim`, no learned gain.
    fn simple_rms_norm(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        l2_normalize(x)? * (self.config.dim as f32).sqrt() as f64
    }

    /// Self-attention of one block for `x: [batch · n, dim]` (already normed).
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        block: &Block,
        x: &Tensor,
        cache: &mut KvCache,
        layer: usize,
        batch: usize,
        n: usize,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (heads, dim_head) = (self.config.heads, self.config.dim_head);
        let inner = heads * dim_head;
        let qkv = x.matmul(&block.qkv)?;
        let split = |i: usize| -> candle_core::Result<Tensor> {
            qkv.narrow(1, i * inner, inner)?
                .reshape((batch, n, heads, dim_head))?
                .transpose(1, 2)
        };
        let q = l2_normalize(&split(0)?)?.broadcast_mul(&block.q_scale)?;
        let k = l2_normalize(&split(1)?)?.broadcast_mul(&block.k_scale)?;
        let v = split(2)?.contiguous()?;
        let start = cache.len;
        let q = self.rope.apply(&q, start)?;
        let k = self.rope.apply(&k, start)?;
        let (Some(keys), Some(values)) = (cache.keys.get(layer), cache.values.get(layer)) else {
            candle_core::bail!("cache has no layer {layer}")
        };
        keys.slice_set(&k, 2, start)?;
        values.slice_set(&v, 2, start)?;
        let total = start + n;
        let keys = keys.narrow(2, 0, total)?;
        let values = values.narrow(2, 0, total)?;
        let mut scores = q.matmul(&keys.t()?)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs
            .matmul(&values)?
            .transpose(1, 2)?
            .reshape((batch * n, inner))?;
        out.matmul(&block.attn_out)
    }
}

/// SwiGLU: `z = x·W1 + b1`, value = first half, gate = second half, `(value ⊙ silu(gate))·W2 + b2`.
fn feed_forward(block: &Block, x: &Tensor) -> candle_core::Result<Tensor> {
    let z = x.matmul(&block.ff_in)?.broadcast_add(&block.ff_in_bias)?;
    let half = z.dim(1)? / 2;
    let value = z.narrow(1, 0, half)?;
    let gate = candle_nn::ops::silu(&z.narrow(1, half, half)?)?;
    (value * gate)?
        .matmul(&block.ff_out)?
        .broadcast_add(&block.ff_out_bias)
}

/// Additive mask `[n, start + n]` letting query `i` (absolute position `start + i`) see keys
/// `0 ..= start + i`; `None` for a single token, which may see everything cached.
fn causal_mask(start: usize, n: usize, device: &Device) -> candle_core::Result<Option<Tensor>> {
    if n == 1 {
        return Ok(None);
    }
    let total = start + n;
    let mask: Vec<f32> = (0..n)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j <= start + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (n, total), device).map(Some)
}

impl Rope {
    /// Builds the tables `θ[p, i] = p · inv_freq[i]` (f32 product, as PyTorch) for all positions.
    fn new(config: &ModelConfig, inv_freq: &Tensor, device: &Device) -> Result<Self, ModelError> {
        let inv_freq: Vec<f32> = inv_freq.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let rotary_dim = 2 * inv_freq.len();
        if inv_freq.is_empty() || rotary_dim > config.dim_head {
            return Err(ModelError::BadRotary {
                len: inv_freq.len(),
                dim_head: config.dim_head,
            });
        }
        let half = inv_freq.len();
        let mut cos = Vec::with_capacity(config.max_seq_len * half);
        let mut sin = Vec::with_capacity(config.max_seq_len * half);
        for p in 0..config.max_seq_len {
            for &f in &inv_freq {
                let theta = p as f32 * f;
                cos.push(theta.cos());
                sin.push(theta.sin());
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (config.max_seq_len, half), device)?,
            sin: Tensor::from_vec(sin, (config.max_seq_len, half), device)?,
            rotary_dim,
        })
    }

    /// Rotates channels `0..rotary_dim` of `x: [b, heads, n, dim_head]` (GPT-J interleaved pairs)
    /// for positions `start..start + n`; the other channels pass through.
    fn apply(&self, x: &Tensor, start: usize) -> candle_core::Result<Tensor> {
        let (_, _, n, dim_head) = x.dims4()?;
        let cos = self.cos.narrow(0, start, n)?;
        let sin = self.sin.narrow(0, start, n)?;
        if self.rotary_dim == dim_head {
            return candle_nn::rotary_emb::rope_i(&x.contiguous()?, &cos, &sin);
        }
        let rotated = candle_nn::rotary_emb::rope_i(
            &x.narrow(3, 0, self.rotary_dim)?.contiguous()?,
            &cos,
            &sin,
        )?;
        let rest = x.narrow(3, self.rotary_dim, dim_head - self.rotary_dim)?;
        Tensor::cat(&[rotated, rest], 3)?.contiguous()
    }
}
