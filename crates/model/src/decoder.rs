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
//! Weights are loaded with candle and repacked into packed panels (`layers`); the arithmetic runs on
//! plain `f32` buffers. Every product — the weight matrices, `q·Kᵀ` and `P·V` over the cache, which
//! is stored in the same panel layout — goes through one register-blocked micro-kernel that reads
//! each weight once per step (see `packed`). In the last layer only the rows that become
//! logits get the output projection and feed-forward.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::config::ModelConfig;
use super::layers::{
    to_vec, FeedForward, KvLayout, KvStore, Linear, Scratch, SelfAttention, StepShape, Visibility,
};
use super::{ModelError, Stepper, TokenCache};

/// Which positions of a chunk [`Decoder::step`] turns into logits. Logits cost a `[dim × vocab]`
/// product per row, so callers ask only for what they sample from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitRows {
    /// Only the last position of each batch row: `[batch, num_tokens]`.
    Last,
    /// The last `k` positions of each batch row, `1 ≤ k ≤ chunk_len`: `[batch, k, num_tokens]`.
    /// For a sampler that queued tokens without a step of their own and still scores them.
    Tail(usize),
    /// Every position: `[batch, chunk_len, num_tokens]`.
    All,
}

impl LogitRows {
    /// How many trailing positions of each row of an `n`-token chunk get logits.
    pub(super) fn count(self, n: usize) -> Result<usize, ModelError> {
        match self {
            LogitRows::Last => Ok(1),
            LogitRows::All => Ok(n),
            LogitRows::Tail(k) if (1..=n).contains(&k) => Ok(k),
            LogitRows::Tail(k) => Err(ModelError::BadLogitRows { tail: k, chunk: n }),
        }
    }

    /// The logits of `batch` rows, `count(n)` positions each, shaped as this request promises.
    pub(super) fn tensor(
        self,
        logits: Vec<f32>,
        batch: usize,
        n: usize,
        num_tokens: usize,
    ) -> Result<Tensor, ModelError> {
        let tensor = match self {
            LogitRows::Last => Tensor::from_vec(logits, (batch, num_tokens), &Device::Cpu)?,
            _ => Tensor::from_vec(logits, (batch, self.count(n)?, num_tokens), &Device::Cpu)?,
        };
        Ok(tensor)
    }
}

/// Keys and values of every layer for a batch of sequences, preallocated to `max_seq_len` so
/// incremental decoding never reallocates. Both are stored as packed panels (see `KvLayout`) so
/// the two attention products run on the same micro-kernel as the weights. The cache also keeps
/// the working buffers of a step, so that steps reuse them.
pub struct KvCache {
    layers: Vec<KvStore>,
    scratch: Scratch,
    batch: usize,
    len: usize,
    capacity: usize,
}

impl TokenCache for KvCache {
    fn len(&self) -> usize {
        self.len
    }

    fn batch(&self) -> usize {
        self.batch
    }
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

/// One transformer block.
struct Block {
    attn: SelfAttention,
    ff: FeedForward,
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

impl Decoder {
    /// Loads the weights from a VarBuilder rooted at the PyTorch state-dict root (names such as
    /// `decoder.token_emb.emb.weight`, spec §2.1). Shapes are checked against `config`; any stored
    /// float dtype is upcast to f32.
    pub fn load(config: &ModelConfig, vb: VarBuilder) -> Result<Self, ModelError> {
        let vb = vb.pp("decoder");
        let (dim, heads, dim_head) = (config.dim, config.heads, config.dim_head);
        let ff = config.ff_inner_dim();
        let token_emb = to_vec(vb.get((config.num_tokens, dim), "token_emb.emb.weight")?)?;
        let to_logits = Linear::new(vb.get((config.num_tokens, dim), "to_logits.weight")?)?;
        // At its stored precision, whatever the matrices' (see `weights::storage_dtype`).
        let inv_freq = vb.get_unchecked_dtype("attn_layers.rotary_pos_emb.inv_freq", DType::F32)?;
        let inv_freq = to_vec(inv_freq)?;
        let rope = Rope::new(config, &inv_freq)?;

        let layers = vb.pp("attn_layers").pp("layers");
        let mut blocks = Vec::with_capacity(config.depth);
        for l in 0..config.depth {
            blocks.push(Block {
                attn: SelfAttention::load(&layers.pp(2 * l).pp(1), dim, heads, dim_head)?,
                ff: FeedForward::load(&layers.pp(2 * l + 1).pp(1).pp("ff"), dim, ff)?,
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
            .map(|b| b.attn.weight_bytes() + b.ff.weight_bytes())
            .sum();
        per_block + self.to_logits.weight_bytes()
    }

    /// An empty cache for `batch` parallel sequences of up to `max_seq_len` tokens.
    pub fn new_cache(&self, batch: usize) -> Result<KvCache, ModelError> {
        Ok(KvCache {
            layers: (0..self.config.depth)
                .map(|_| KvStore::new(self.kv_layout(), batch))
                .collect(),
            scratch: Scratch::default(),
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
        let layout = self.kv_layout();
        if cache.layers.len() != self.blocks.len()
            || cache.capacity != self.config.max_seq_len
            || cache.layers.iter().any(|l| !l.fits(layout, batch))
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
        let keep = rows.count(n)?;
        let dim = self.config.dim;
        let num_tokens = self.config.num_tokens as u32;
        let scratch = &mut cache.scratch;
        scratch
            .embed(&self.token_emb, dim, chunk.iter().flatten())
            .map_err(|id| ModelError::TokenOutOfRange { id, num_tokens })?;
        let shape = StepShape {
            batch,
            n,
            start: cache.len,
        };
        let causal = Visibility {
            causal: true,
            bias: None,
        };
        let last_layer = self.blocks.len().saturating_sub(1);
        for (layer, block) in self.blocks.iter().enumerate() {
            let Some(kv) = cache.layers.get_mut(layer) else {
                return Err(ModelError::ForeignCache);
            };
            // Past the last layer's keys/values only the rows turned into logits matter.
            let answered = if layer == last_layer { keep } else { n };
            let rotate = |v: &mut [f32], pos| self.rope.rotate(v, pos);
            block
                .attn
                .add_to(scratch, shape, answered, kv, rotate, causal);
            block.ff.add_to(scratch);
        }
        cache.len += n;
        if scratch.rows() != batch * keep {
            scratch.keep_tail(n, keep);
        }
        let kept = scratch.rows();
        let logits = self.to_logits.forward(scratch.normed(), kept);
        rows.tensor(logits, batch, n, self.config.num_tokens)
    }

    fn kv_layout(&self) -> KvLayout {
        KvLayout {
            dim_head: self.config.dim_head,
            heads: self.config.heads,
            capacity: self.config.max_seq_len,
        }
    }
}

impl Stepper for Decoder {
    type Cache = KvCache;

    fn step(
        &self,
        cache: &mut KvCache,
        chunk: &[Vec<u32>],
        rows: LogitRows,
    ) -> Result<Tensor, ModelError> {
        Decoder::step(self, cache, chunk, rows)
    }

    fn num_tokens(&self) -> usize {
        self.config.num_tokens
    }
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
