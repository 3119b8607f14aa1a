//! Teacher-forced negative log-likelihood of ground-truth sequences under either model.

use serde::Serialize;

use comper_model::{Decoder, ModelError, OfflineModel};
use comper_music::tokens::{TokenId, EOS};

/// Running sums of `−log p(target)` (nats, full softmax over the vocabulary, as the training
/// loss) for chord targets and for all targets.
#[derive(Debug, Clone, Copy, Default)]
pub struct NllTotals {
    chord_nats: f64,
    chord_tokens: u64,
    all_nats: f64,
    all_tokens: u64,
}

/// Mean negative log-likelihoods, in nats per token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Nll {
    /// Mean over the chord tokens (chord onsets, holds and chord-slot SILENCE).
    pub per_chord_token: f64,
    /// Mean over every target token (chords, melody and the final EOS), comparable to the
    /// training log's `valid_nll` up to its EOS key mask.
    pub per_token: f64,
    /// Chord tokens scored.
    pub chord_tokens: u64,
    /// Tokens scored.
    pub tokens: u64,
}

impl NllTotals {
    /// Scores one online sequence `[BOS, c0, m0, …, EOS]` with a single forward pass: the
    /// logits at position `i` predict token `i + 1`; chord tokens sit at the odd positions.
    pub fn add_sequence(&mut self, decoder: &Decoder, ids: &[TokenId]) -> Result<(), ModelError> {
        let Some((_, inputs)) = ids.split_last() else {
            return Ok(());
        };
        if inputs.is_empty() {
            return Ok(());
        }
        let logits = decoder.forward(&[inputs.to_vec()])?;
        let rows: Vec<Vec<f32>> = logits.squeeze(0)?.to_vec2()?;
        for (position, (row, &target)) in rows.iter().zip(ids.iter().skip(1)).enumerate() {
            let nats = -log_softmax_at(row, target);
            self.all_nats += nats;
            self.all_tokens += 1;
            let target_position = position + 1;
            if target_position % 2 == 1 && target != EOS {
                self.chord_nats += nats;
                self.chord_tokens += 1;
            }
        }
        Ok(())
    }

    /// Scores one offline example: the chord sequence `[BOS, c0 … c_{T−1}, EOS]` given the
    /// encoded melody `[BOS, m0 …, EOS]`, with one forward pass. Every target but EOS is a chord
    /// token; EOS counts only towards the per-token mean.
    pub fn add_offline(
        &mut self,
        model: &OfflineModel,
        melody: &[TokenId],
        chords: &[TokenId],
    ) -> Result<(), ModelError> {
        let Some((_, inputs)) = chords.split_last() else {
            return Ok(());
        };
        if inputs.is_empty() {
            return Ok(());
        }
        let logits = model.forward(melody, &[inputs.to_vec()])?;
        let rows: Vec<Vec<f32>> = logits.squeeze(0)?.to_vec2()?;
        for (row, &target) in rows.iter().zip(chords.iter().skip(1)) {
            let nats = -log_softmax_at(row, target);
            self.all_nats += nats;
            self.all_tokens += 1;
            if target != EOS {
                self.chord_nats += nats;
                self.chord_tokens += 1;
            }
        }
        Ok(())
    }

    /// The means (`None` before any chord token was scored).
    pub fn finish(&self) -> Option<Nll> {
        (self.chord_tokens > 0 && self.all_tokens > 0).then(|| Nll {
            per_chord_token: self.chord_nats / self.chord_tokens as f64,
            per_token: self.all_nats / self.all_tokens as f64,
            chord_tokens: self.chord_tokens,
            tokens: self.all_tokens,
        })
    }
}

/// The offline model's mean log-probability per chord token (nats, EOS not counted) of each
/// chord sequence `[BOS, c0 … c_{T−1}, EOS]` given the encoded melody, in one batched forward
/// pass; the sequences must be equally long. `comper best-of` ranks candidates by it.
pub fn offline_log_likelihoods(
    model: &OfflineModel,
    melody: &[TokenId],
    chord_sequences: &[Vec<TokenId>],
) -> Result<Vec<f64>, ModelError> {
    let inputs: Vec<Vec<TokenId>> = chord_sequences
        .iter()
        .map(|s| {
            s.split_last()
                .map_or_else(Vec::new, |(_, rest)| rest.to_vec())
        })
        .collect();
    if inputs.iter().all(Vec::is_empty) {
        return Ok(vec![0.0; chord_sequences.len()]);
    }
    let logits: Vec<Vec<Vec<f32>>> = model.forward(melody, &inputs)?.to_vec3()?;
    Ok(logits
        .iter()
        .zip(chord_sequences)
        .map(|(rows, sequence)| {
            let (sum, count) = rows
                .iter()
                .zip(sequence.iter().skip(1))
                .filter(|(_, &target)| target != EOS)
                .fold((0.0, 0usize), |(sum, count), (row, &target)| {
                    (sum + log_softmax_at(row, target), count + 1)
                });
            if count == 0 {
                0.0
            } else {
                sum / count as f64
            }
        })
        .collect())
}

/// `log softmax(row)[target]`, computed in f64; `−∞` for an id outside the row.
fn log_softmax_at(row: &[f32], target: TokenId) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    row.get(target as usize)
        .map_or(f64::NEG_INFINITY, |&x| x as f64 - max - sum.ln())
}
