//! Several alternative chord progressions for one melody, generated in one batched pass, by the
//! online decoder (melody teacher-forced in the interleaved sequence) or by the offline
//! encoder–decoder (melody encoded whole, chords decoded).

use std::collections::HashSet;

use rand::Rng;

use super::filter::{Part, SamplingParams};
use super::sequence::{self, Slot};
use super::SampleError;
use comper_model::{Decoder, OfflineModel, Stepper};
use comper_music::harmony::ChordGuide;
use comper_music::tokens::{Vocabulary, BOS};
use comper_realtime::frames::{ChordFrame, MelodyFrame};

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
    /// Leans each chord choice toward the melody (frames numbered like `melody`); `None`
    /// samples the model as trained.
    pub guide: Option<&'a ChordGuide>,
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
pub fn generate_options<R: Rng + Send>(
    decoder: &Decoder,
    vocab: &Vocabulary,
    request: &OptionsRequest,
    params: &SamplingParams,
    rng: &mut R,
) -> Result<Vec<ChordOption>, SampleError> {
    let frames = check_request(request, decoder.config().max_frames())?;
    let mut slots = Vec::with_capacity(1 + 2 * frames);
    slots.push(Slot::forced(None, BOS));
    for (t, &melody) in request.melody.iter().enumerate() {
        slots.push(chord_slot(vocab, request, t)?);
        slots.push(Slot::forced(Some(Part::Melody), vocab.melody_id(melody)?));
    }
    if frames > 0 {
        // The last melody token is never needed as context.
        slots.pop();
    }
    // Chord slots sit at odd positions: BOS, c0, m0, c1, …
    let layout = ChordSlots {
        first: 1,
        stride: 2,
    };
    distinct_options(request, params, |count| {
        let mut cache = decoder.new_cache(count)?;
        sample_batch(
            decoder,
            &mut cache,
            vocab,
            &slots,
            layout,
            request.guide,
            params,
            rng,
        )
    })
}

/// [`generate_options`] with the offline model: the encoder reads `[BOS, m0 … m_{T−1}, EOS]`
/// once, and the decoder samples `[BOS, c0 … c_{T−1}]` for every option in one batch under the
/// single-part chord validity rules (ReaLJam's intro generation).
pub fn generate_offline_options<R: Rng + Send>(
    model: &OfflineModel,
    vocab: &Vocabulary,
    request: &OptionsRequest,
    params: &SamplingParams,
    rng: &mut R,
) -> Result<Vec<ChordOption>, SampleError> {
    let frames = check_request(request, model.config().max_frames())?;
    let melody = vocab.offline_melody(request.melody)?;
    let mut slots = Vec::with_capacity(1 + frames);
    slots.push(Slot::forced(None, BOS));
    for t in 0..frames {
        slots.push(chord_slot(vocab, request, t)?);
    }
    let layout = ChordSlots {
        first: 1,
        stride: 1,
    };
    distinct_options(request, params, |count| {
        let mut cache = model.new_cache(&melody, count)?;
        sample_batch(
            model,
            &mut cache,
            vocab,
            &slots,
            layout,
            request.guide,
            params,
            rng,
        )
    })
}

/// Checks the request against a model that takes at most `max_frames`; returns the frame count.
fn check_request(request: &OptionsRequest, max_frames: usize) -> Result<usize, SampleError> {
    let frames = request.melody.len();
    if frames > max_frames {
        return Err(SampleError::TooLong {
            frames,
            max: max_frames,
        });
    }
    if !request.locked.is_empty() && request.locked.len() != frames {
        return Err(SampleError::LockedLength {
            locked: request.locked.len(),
            frames,
        });
    }
    Ok(frames)
}

/// The chord slot of frame `t`: forced when the user locked a chord there, else sampled.
fn chord_slot(vocab: &Vocabulary, request: &OptionsRequest, t: usize) -> Result<Slot, SampleError> {
    Ok(match request.locked.get(t).copied().flatten() {
        Some(chord) => Slot::forced(Some(Part::Chord), vocab.chord_id(chord)?),
        None => Slot::sampled(Part::Chord).at(t).guided(t),
    })
}

/// Samples `request.count` options with `sample(count)`, re-sampling duplicates up to
/// `max_retries` times, most likely first.
fn distinct_options(
    request: &OptionsRequest,
    params: &SamplingParams,
    mut sample: impl FnMut(usize) -> Result<Vec<ChordOption>, SampleError>,
) -> Result<Vec<ChordOption>, SampleError> {
    if request.count == 0 {
        return Ok(Vec::new());
    }
    let mut options = sample(request.count)?;
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
        let fresh = sample(duplicates.len())?;
        for (index, option) in duplicates.into_iter().zip(fresh) {
            if let Some(slot) = options.get_mut(index) {
                *slot = option;
            }
        }
    }
    options.sort_by(|a, b| b.log_likelihood.total_cmp(&a.log_likelihood));
    Ok(options)
}

/// Where the chord tokens sit in a generated row.
#[derive(Clone, Copy)]
struct ChordSlots {
    first: usize,
    stride: usize,
}

#[allow(clippy::too_many_arguments)]
fn sample_batch<M: Stepper, R: Rng + Send>(
    model: &M,
    cache: &mut M::Cache,
    vocab: &Vocabulary,
    slots: &[Slot],
    layout: ChordSlots,
    guide: Option<&ChordGuide>,
    params: &SamplingParams,
    rng: &mut R,
) -> Result<Vec<ChordOption>, SampleError> {
    let generated = sequence::run_cached(model, vocab, cache, slots, guide, params, rng)?;
    generated
        .tokens
        .iter()
        .zip(generated.log_likelihood)
        .map(|(row, log_likelihood)| {
            let chords = row
                .iter()
                .skip(layout.first)
                .step_by(layout.stride)
                .map(|&id| vocab.chord_frame(id))
                .collect::<Result<_, _>>()?;
            Ok(ChordOption {
                chords,
                log_likelihood,
            })
        })
        .collect()
}
