//! The ReaLchords offline encoder–decoder (realjam's `EncoderDecoderTransformer`: an
//! x-transformers 2.11.23 `Encoder` over the melody and a cross-attending `Decoder` over the
//! chords), f32 on the CPU.
//!
//! It differs from the online decoder ([`super::decoder`]) in three ways (spec §4): positions
//! enter as a T5 relative position bias added to the attention scores of every self-attention
//! (one learned table per stack, bidirectional buckets in the encoder, causal ones in the decoder)
//! instead of RoPE; the encoder sees the whole melody `[BOS, m0 … m_{T−1}, EOS]` and ends in a
//! SimpleRMSNorm with no output layer; and each decoder block attends, between its self-attention
//! and its feed-forward, to the encoder output (keys and values computed once per melody).
//!
//! A [`CrossCache`] holds one melody's cross-attention keys/values, shared by every batch row, and
//! the decoder's own keys/values per row, so five options for one phrase run as one batch.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::config::OfflineConfig;
use super::decoder::LogitRows;
use super::kernels::add_in_place;
use super::layers::{
    attend, to_vec, FeedForward, KvLayout, KvStore, Linear, QkScales, ScoreBias, Scratch,
    SelfAttention, StepShape, Visibility,
};
use super::{ModelError, Stepper, TokenCache};

/// x-transformers' `rel_pos_num_buckets` and `rel_pos_max_distance` defaults.
const REL_POS_BUCKETS: usize = 32;
const REL_POS_MAX_DISTANCE: usize = 128;

/// A T5 relative position bias, tabulated by query − key offset for every head.
struct RelPosBias {
    /// `[head][offset + capacity − 1]` for offsets `−(capacity−1) ..= capacity−1`.
    by_offset: Vec<f32>,
    capacity: usize,
}

impl RelPosBias {
    /// `weight: [buckets, heads]` (`relative_attention_bias.weight`), scaled by `√dim_head`.
    fn new(weight: &[f32], heads: usize, dim_head: usize, causal: bool, capacity: usize) -> Self {
        let scale = (dim_head as f64).sqrt() as f32;
        let span = 2 * capacity - 1;
        let mut by_offset = vec![0.0; heads * span];
        for index in 0..span {
            let offset = index as i64 - (capacity as i64 - 1);
            let bucket = t5_bucket(offset, causal);
            for head in 0..heads {
                by_offset[head * span + index] = weight[bucket * heads + head] * scale;
            }
        }
        Self {
            by_offset,
            capacity,
        }
    }
}

impl ScoreBias for RelPosBias {
    fn add(&self, head: usize, query: usize, row: &mut [f32]) {
        let span = 2 * self.capacity - 1;
        let table = &self.by_offset[head * span..(head + 1) * span];
        // Key k sits at offset query − k, i.e. index query − k + capacity − 1.
        let first = query + self.capacity - 1;
        for (k, score) in row.iter_mut().enumerate() {
            *score += table[first - k];
        }
    }
}

/// x-transformers' `RelativePositionBias._relative_position_bucket` for `offset = query − key`,
/// evaluated in f32 as PyTorch does.
fn t5_bucket(offset: i64, causal: bool) -> usize {
    let (mut buckets, mut ret) = (REL_POS_BUCKETS, 0);
    let distance = if causal {
        offset.max(0) as usize
    } else {
        buckets /= 2;
        if offset < 0 {
            ret = buckets;
        }
        offset.unsigned_abs() as usize
    };
    let max_exact = buckets / 2;
    if distance < max_exact {
        return ret + distance;
    }
    let log_ratio = (distance as f32 / max_exact as f32).ln()
        / ((REL_POS_MAX_DISTANCE as f64 / max_exact as f64).ln() as f32);
    let large = max_exact + (log_ratio * (buckets - max_exact) as f32) as usize;
    ret + large.min(buckets - 1)
}

/// Cross-attention weights of one decoder block (same names and shapes as self-attention).
struct CrossAttention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    scales: QkScales,
    out: Linear,
}

impl CrossAttention {
    fn load(
        attn: &VarBuilder,
        dim: usize,
        heads: usize,
        dim_head: usize,
    ) -> candle_core::Result<Self> {
        let inner = heads * dim_head;
        Ok(Self {
            to_q: Linear::new(attn.get((inner, dim), "to_q.weight")?)?,
            to_k: Linear::new(attn.get((inner, dim), "to_k.weight")?)?,
            to_v: Linear::new(attn.get((inner, dim), "to_v.weight")?)?,
            scales: QkScales::load(attn, heads, dim_head)?,
            out: Linear::new(attn.get((dim, inner), "to_out.weight")?)?,
        })
    }

    /// Keys (qk-normed) and values of the encoder output `context: [len, dim]`, stored once.
    fn context(&self, context: &[f32], len: usize, layout: KvLayout) -> KvStore {
        let (heads, dim_head) = (layout.heads, layout.dim_head);
        let keys = self.to_k.forward(context, len);
        let values = self.to_v.forward(context, len);
        let mut store = KvStore::new(layout, 1);
        let mut key = vec![0.0f32; dim_head];
        let inner = heads * dim_head;
        for pos in 0..len {
            for head in 0..heads {
                let at = pos * inner + head * dim_head;
                key.copy_from_slice(&keys[at..at + dim_head]);
                self.scales.key(&mut key, head);
                store.store(head, pos, &key, &values[at..at + dim_head]);
            }
        }
        store
    }

    /// qk-normed queries `[batch][head][n][dim_head]` of the normed stream `x`.
    fn queries(&self, x: &[f32], shape: StepShape, heads: usize, dim_head: usize) -> Vec<f32> {
        let StepShape { batch, n, .. } = shape;
        let projected = self.to_q.forward(x, batch * n);
        let mut queries = vec![0.0f32; projected.len()];
        for (row, proj) in projected.chunks_exact(heads * dim_head).enumerate() {
            let (b, t) = (row / n, row % n);
            for head in 0..heads {
                let at = ((b * heads + head) * n + t) * dim_head;
                let q = &mut queries[at..at + dim_head];
                q.copy_from_slice(&proj[head * dim_head..(head + 1) * dim_head]);
                self.scales.query(q, head);
            }
        }
        queries
    }

    fn weight_bytes(&self) -> usize {
        self.to_q.weight_bytes() + self.out.weight_bytes()
    }
}

struct EncoderBlock {
    attn: SelfAttention,
    ff: FeedForward,
}

struct DecoderBlock {
    attn: SelfAttention,
    cross: CrossAttention,
    ff: FeedForward,
}

/// A loaded offline model, ready to run.
pub struct OfflineModel {
    config: OfflineConfig,
    /// `[num_tokens, dim]` of each stack.
    encoder_emb: Vec<f32>,
    decoder_emb: Vec<f32>,
    encoder: Vec<EncoderBlock>,
    decoder: Vec<DecoderBlock>,
    encoder_bias: RelPosBias,
    decoder_bias: RelPosBias,
    to_logits: Linear,
}

/// One melody's cross-attention keys/values and the decoder's keys/values for a batch of chord
/// sequences, preallocated to `max_seq_len`.
pub struct CrossCache {
    cross: Vec<KvStore>,
    context_len: usize,
    layers: Vec<KvStore>,
    /// The working buffers of a step, reused between steps.
    scratch: Scratch,
    batch: usize,
    len: usize,
}

impl TokenCache for CrossCache {
    fn len(&self) -> usize {
        self.len
    }

    fn batch(&self) -> usize {
        self.batch
    }
}

impl CrossCache {
    /// Forgets every chord token after the first `len`, keeping the melody.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl OfflineModel {
    /// Loads from a VarBuilder at the state-dict root (`encoder.…`, `decoder.decoder.…`, spec §2.2);
    /// any stored float dtype is upcast to f32.
    pub fn load(config: &OfflineConfig, vb: VarBuilder) -> Result<Self, ModelError> {
        let base = &config.base;
        let (dim, heads, dim_head, vocab) = (base.dim, base.heads, base.dim_head, base.num_tokens);
        let ff = base.ff_inner_dim();
        let bias = |stack: &VarBuilder, causal: bool| -> Result<RelPosBias, ModelError> {
            let weight = to_vec(stack.get(
                (REL_POS_BUCKETS, heads),
                "attn_layers.rel_pos.relative_attention_bias.weight",
            )?)?;
            Ok(RelPosBias::new(
                &weight,
                heads,
                dim_head,
                causal,
                base.max_seq_len,
            ))
        };

        let enc = vb.pp("encoder");
        let layers = enc.pp("attn_layers").pp("layers");
        let encoder = (0..config.enc_depth)
            .map(|l| {
                Ok(EncoderBlock {
                    attn: SelfAttention::load(&layers.pp(2 * l).pp(1), dim, heads, dim_head)?,
                    ff: FeedForward::load(&layers.pp(2 * l + 1).pp(1).pp("ff"), dim, ff)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;

        let dec = vb.pp("decoder").pp("decoder");
        let layers = dec.pp("attn_layers").pp("layers");
        let decoder = (0..base.depth)
            .map(|l| {
                Ok(DecoderBlock {
                    attn: SelfAttention::load(&layers.pp(3 * l).pp(1), dim, heads, dim_head)?,
                    cross: CrossAttention::load(&layers.pp(3 * l + 1).pp(1), dim, heads, dim_head)?,
                    ff: FeedForward::load(&layers.pp(3 * l + 2).pp(1).pp("ff"), dim, ff)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;

        Ok(Self {
            config: config.clone(),
            encoder_emb: to_vec(enc.get((vocab, dim), "token_emb.emb.weight")?)?,
            decoder_emb: to_vec(dec.get((vocab, dim), "token_emb.emb.weight")?)?,
            encoder,
            decoder,
            encoder_bias: bias(&enc, false)?,
            decoder_bias: bias(&dec, true)?,
            to_logits: Linear::new(dec.get((vocab, dim), "to_logits.weight")?)?,
        })
    }

    /// The hyper-parameters this model was loaded with.
    pub fn config(&self) -> &OfflineConfig {
        &self.config
    }

    /// Bytes of decoder weights one decoding step streams (cross-attention keys/values come from
    /// the cache); for the bandwidth floor in the bench.
    pub fn streamed_weight_bytes(&self) -> usize {
        let blocks: usize = self
            .decoder
            .iter()
            .map(|b| b.attn.weight_bytes() + b.cross.weight_bytes() + b.ff.weight_bytes())
            .sum();
        blocks + self.to_logits.weight_bytes()
    }

    fn layout(&self, capacity: usize) -> KvLayout {
        KvLayout {
            dim_head: self.config.base.dim_head,
            heads: self.config.base.heads,
            capacity,
        }
    }

    /// Encodes `melody` (`[BOS, m0 … m_{T−1}, EOS]`) and returns an empty chord cache for `batch`
    /// sequences that all accompany it.
    pub fn new_cache(&self, melody: &[u32], batch: usize) -> Result<CrossCache, ModelError> {
        let context = self.encode(melody)?;
        let layout = self.layout(self.config.base.max_seq_len);
        let context_layout = self.layout(melody.len());
        Ok(CrossCache {
            cross: self
                .decoder
                .iter()
                .map(|block| block.cross.context(&context, melody.len(), context_layout))
                .collect(),
            context_len: melody.len(),
            layers: self
                .decoder
                .iter()
                .map(|_| KvStore::new(layout, batch))
                .collect(),
            scratch: Scratch::default(),
            batch,
            len: 0,
        })
    }

    /// The encoder output `[len, dim]` for a melody token sequence.
    fn encode(&self, melody: &[u32]) -> Result<Vec<f32>, ModelError> {
        let base = &self.config.base;
        let n = melody.len();
        if n == 0 {
            return Err(ModelError::RaggedChunk);
        }
        if n > base.max_seq_len {
            return Err(ModelError::ContextOverflow {
                requested: n,
                max_seq_len: base.max_seq_len,
            });
        }
        let num_tokens = base.num_tokens as u32;
        let dim = base.dim;
        let mut scratch = Scratch::default();
        scratch
            .embed(&self.encoder_emb, dim, melody)
            .map_err(|id| ModelError::TokenOutOfRange { id, num_tokens })?;
        let shape = StepShape {
            batch: 1,
            n,
            start: 0,
        };
        let visibility = Visibility {
            causal: false,
            bias: Some(&self.encoder_bias),
        };
        let mut kv = KvStore::new(self.layout(n), 1);
        for block in &self.encoder {
            block
                .attn
                .add_to(&mut scratch, shape, n, &mut kv, |_, _| {}, visibility);
            block.ff.add_to(&mut scratch);
        }
        Ok(scratch.normed().to_vec())
    }

    /// Logits of whole chord sequences `chords[b][n]` (starting with BOS) for one melody:
    /// `[b, n, num_tokens]`.
    pub fn forward(&self, melody: &[u32], chords: &[Vec<u32>]) -> Result<Tensor, ModelError> {
        let mut cache = self.new_cache(melody, chords.len())?;
        self.step(&mut cache, chords, LogitRows::All)
    }

    fn check_cache(&self, cache: &CrossCache, batch: usize, n: usize) -> Result<(), ModelError> {
        let layout = self.layout(self.config.base.max_seq_len);
        let context = self.layout(cache.context_len);
        if cache.layers.len() != self.decoder.len()
            || cache.cross.len() != self.decoder.len()
            || cache.layers.iter().any(|l| !l.fits(layout, batch))
            || cache.cross.iter().any(|l| !l.fits(context, 1))
        {
            return Err(ModelError::ForeignCache);
        }
        if cache.len + n > layout.capacity {
            return Err(ModelError::ContextOverflow {
                requested: cache.len + n,
                max_seq_len: layout.capacity,
            });
        }
        Ok(())
    }
}

impl Stepper for OfflineModel {
    type Cache = CrossCache;

    fn num_tokens(&self) -> usize {
        self.config.base.num_tokens
    }

    /// Pushes one chunk of chord tokens per batch row through the decoder.
    fn step(
        &self,
        cache: &mut CrossCache,
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
        if n == 0 || chunk.iter().any(|row| row.len() != n) {
            return Err(ModelError::RaggedChunk);
        }
        self.check_cache(cache, batch, n)?;
        let keep = rows.count(n)?;
        let base = &self.config.base;
        let (dim, num_tokens) = (base.dim, base.num_tokens as u32);
        let scratch = &mut cache.scratch;
        scratch
            .embed(&self.decoder_emb, dim, chunk.iter().flatten())
            .map_err(|id| ModelError::TokenOutOfRange { id, num_tokens })?;
        let shape = StepShape {
            batch,
            n,
            start: cache.len,
        };
        let causal = Visibility {
            causal: true,
            bias: Some(&self.decoder_bias),
        };
        let open = Visibility {
            causal: false,
            bias: None,
        };
        let last_layer = self.decoder.len().saturating_sub(1);
        for (layer, block) in self.decoder.iter().enumerate() {
            let (Some(kv), Some(context)) = (cache.layers.get_mut(layer), cache.cross.get(layer))
            else {
                return Err(ModelError::ForeignCache);
            };
            // Past the last layer's keys/values only the rows turned into logits matter.
            let answered = if layer == last_layer { keep } else { n };
            block
                .attn
                .add_to(scratch, shape, answered, kv, |_, _| {}, causal);
            let live = StepShape {
                n: answered,
                ..shape
            };
            let live_rows = live.batch * live.n;
            let queries = block
                .cross
                .queries(scratch.normed(), live, base.heads, base.dim_head);
            let heads = attend(&queries, live, context, cache.context_len, true, open);
            add_in_place(
                &mut scratch.stream,
                &block.cross.out.forward(&heads, live_rows),
            );
            block.ff.add_to(scratch);
        }
        cache.len += n;
        let live_rows = scratch.rows();
        let logits = self.to_logits.forward(scratch.normed(), live_rows);
        rows.tensor(logits, batch, n, base.num_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::t5_bucket;

    /// The integer tables of the spec (§4.1), which it checked against PyTorch's f32 formula.
    #[test]
    fn t5_buckets_match_the_tabulated_boundaries() {
        let causal_starts = [
            (16, 16),
            (19, 17),
            (21, 18),
            (24, 19),
            (27, 20),
            (31, 21),
            (35, 22),
            (40, 23),
            (46, 24),
            (52, 25),
            (59, 26),
            (67, 27),
            (77, 28),
            (87, 29),
            (99, 30),
            (113, 31),
        ];
        for d in 0..16 {
            assert_eq!(t5_bucket(d, true), d as usize);
        }
        for (first, bucket) in causal_starts {
            assert_eq!(t5_bucket(first, true), bucket, "causal d={first}");
            assert_eq!(
                t5_bucket(first - 1, true),
                bucket - 1,
                "causal d={}",
                first - 1
            );
        }
        assert_eq!(t5_bucket(500, true), 31);
        assert_eq!(t5_bucket(-5, true), 0);

        let open_starts = [
            (8, 8),
            (12, 9),
            (16, 10),
            (23, 11),
            (32, 12),
            (46, 13),
            (64, 14),
            (91, 15),
        ];
        for d in 0..8 {
            assert_eq!(t5_bucket(d, false), d as usize);
            if d > 0 {
                assert_eq!(t5_bucket(-d, false), 16 + d as usize);
            }
        }
        for (first, bucket) in open_starts {
            assert_eq!(t5_bucket(first, false), bucket, "query after key d={first}");
            assert_eq!(t5_bucket(first - 1, false), bucket - 1);
            assert_eq!(
                t5_bucket(-first, false),
                16 + bucket,
                "key after query d={first}"
            );
        }
        assert_eq!(t5_bucket(300, false), 15);
        assert_eq!(t5_bucket(-300, false), 31);
    }
}
