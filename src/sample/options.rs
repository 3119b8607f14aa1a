//! Several alternative chord progressions for one melody, generated in one batched pass.

use std::collections::HashSet;

use rand::Rng;

use super::engine::{self, Slot};
use super::filter::{Part, SamplingParams};
use super::SampleError;
use crate::frames::{ChordFrame, MelodyFrame};
use crate::model::Decoder;
use crate::tokens::{Vocabulary, BOS};

/// What to accompany and how many alternatives to offer.
#[derive(Debug, Clone, Copy)]
pub struct OptionsRequest<'a> {
    /// The melody, one entry per 16th-note frame; teacher-forced.
    pub melody: &'a [MelodyFrame],
    /// Chords the user fixed: empty, or one entry per melody frame (`Some` = forced at that frame).
    pub locked: &'a [Option<ChordFrame>],
    /// Number of options (batch rows).
    pub count: usize,
    /// Extra batched passes allowed to replace options that duplicate an earlier one.
    pub max_retries: usize,
}

/// One chord progression for the whole melody.
#[derive(Debug, Clone, PartialEq)]
pub struct ChordOption {
    /// One chord frame per melody frame.
    pub chords: Vec<ChordFrame>,
    /// Sum over the *sampled* (not locked) frames of the model's log-probability of the chosen
    /// chord token, under the model's temperature-1 distribution over chord tokens and SILENCE
    /// (see [`super::filter::part_log_prob`]). Independent of the sampling settings, so options
    /// can be ranked by it; higher is more plausible.
    pub log_likelihood: f64,
}

/// Samples `request.count` chord progressions for the melody in one batched decoder pass (one
/// batch row per option), re-sampling duplicates up to `max_retries` times, and returns them
/// most likely first. With greedy parameters all options coincide and no retries run.
pub fn generate_options<R: Rng>(
    decoder: &Decoder,
    vocab: &Vocabulary,
    request: &OptionsRequest,
    params: &SamplingParams,
    rng: &mut R,
) -> Result<Vec<ChordOption>, SampleError> {
    let frames = request.melody.len();
    let max = decoder.config().max_frames();
    if frames > max {
        return Err(SampleError::TooLong { frames, max });
    }
    if !request.locked.is_empty() && request.locked.len() != frames {
        return Err(SampleError::LockedLength {
            locked: request.locked.len(),
            frames,
        });
    }
    let mut slots = Vec::with_capacity(1 + 2 * frames);
    slots.push(Slot::forced(None, BOS));
    for (t, &melody) in request.melody.iter().enumerate() {
        slots.push(match request.locked.get(t).copied().flatten() {
            Some(chord) => Slot::forced(Some(Part::Chord), vocab.chord_id(chord)?),
            None => Slot::sampled(Part::Chord),
        });
        slots.push(Slot::forced(Some(Part::Melody), vocab.melody_id(melody)?));
    }
    if frames > 0 {
        // The last melody token is never needed as context.
        slots.pop();
    }

    let mut options = sample_batch(decoder, vocab, &slots, request.count, params, rng)?;
    for _ in 0..request.max_retries {
        if params.is_greedy() {
            break;
        }
        let mut seen = HashSet::new();
        let duplicates: Vec<usize> = (0..options.len())
            .filter(|&i| !seen.insert(options[i].chords.clone()))
            .collect();
        if duplicates.is_empty() {
            break;
        }
        let fresh = sample_batch(decoder, vocab, &slots, duplicates.len(), params, rng)?;
        for (index, option) in duplicates.into_iter().zip(fresh) {
            if let Some(slot) = options.get_mut(index) {
                *slot = option;
            }
        }
    }
    options.sort_by(|a, b| b.log_likelihood.total_cmp(&a.log_likelihood));
    Ok(options)
}

fn sample_batch<R: Rng>(
    decoder: &Decoder,
    vocab: &Vocabulary,
    slots: &[Slot],
    count: usize,
    params: &SamplingParams,
    rng: &mut R,
) -> Result<Vec<ChordOption>, SampleError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let generated = engine::run(decoder, vocab, count, slots, params, rng)?;
    generated
        .tokens
        .iter()
        .zip(generated.log_likelihood)
        .map(|(row, log_likelihood)| {
            // Chord slots sit at odd positions: BOS, c0, m0, c1, …
            let chords = row
                .iter()
                .skip(1)
                .step_by(2)
                .map(|&id| vocab.chord_frame(id))
                .collect::<Result<_, _>>()?;
            Ok(ChordOption {
                chords,
                log_likelihood,
            })
        })
        .collect()
}
