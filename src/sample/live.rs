//! Live continuation with ReaLJam's semantics (spec §10, steps 5–9): given what was played and
//! the chords already committed, plan the chords for the next `lookahead` frames.

use rand::Rng;

use super::engine::{self, Slot};
use super::filter::{Part, SamplingParams};
use super::SampleError;
use crate::frames::{ChordFrame, MelodyFrame};
use crate::model::{Decoder, KvCache};
use crate::tokens::{TokenId, Vocabulary, BOS};

/// The state of a live session at the current frame.
#[derive(Debug, Clone, Copy)]
pub struct LiveRequest<'a> {
    /// Melody of frames `0 .. frame` (what the player played so far); its length is `frame`.
    pub melody: &'a [MelodyFrame],
    /// Chords of frames `0 .. frame`; shorter is padded with silence, longer is cut at `frame`.
    pub chords: &'a [ChordFrame],
    /// Chords already committed for frames `frame ..` (teacher-forced, not re-sampled); see
    /// [`commit_frames`] for how many ReaLJam keeps.
    pub committed: &'a [ChordFrame],
    /// Frames to plan, `L`.
    pub lookahead: usize,
}

/// Planned chords for frames `frame .. frame + lookahead`.
#[derive(Debug, Clone, PartialEq)]
pub struct LivePlan {
    /// `lookahead` chord frames: the committed ones first, then newly sampled ones.
    pub chords: Vec<ChordFrame>,
    /// The melody the model imagined alongside (frames `frame ..`); `lookahead − 1` frames when
    /// the model ran (ReaLJam never samples the last melody token), empty otherwise.
    pub imagined_melody: Vec<MelodyFrame>,
}

/// ReaLJam's number of already-planned frames to keep at the current frame (step 7):
/// `max(planned_until − lookahead + commitahead − frame, 0)`, where `planned_until` is the end of
/// the previous plan (previous request frame + lookahead).
pub fn commit_frames(
    planned_until: usize,
    frame: usize,
    lookahead: usize,
    commitahead: usize,
) -> usize {
    (planned_until + commitahead).saturating_sub(lookahead + frame)
}

/// Plans the next `lookahead` frames: the context is trimmed to the last `max_frames − L`
/// frames (256 − L for ReaLchords), committed chords are teacher-forced while the melody is
/// imagined, then chords and melody are sampled freely. With at least `L` committed chords the
/// model is not run. Stateless: every call pushes the whole context through the decoder; a
/// [`LivePlanner`] reuses it between calls.
pub fn plan_live<R: Rng>(
    decoder: &Decoder,
    vocab: &Vocabulary,
    request: &LiveRequest,
    params: &SamplingParams,
    rng: &mut R,
) -> Result<LivePlan, SampleError> {
    LivePlanner::default().plan(decoder, vocab, request, params, rng)
}

/// [`plan_live`] that keeps the decoder's cache between calls: when the new context starts with
/// the tokens of the previous one (the history grew but the window did not slide yet), only the
/// new tokens are pushed through the decoder. Results equal a fresh [`plan_live`] up to float
/// rounding. Use one planner per decoder.
#[derive(Default)]
pub struct LivePlanner {
    cache: Option<KvCache>,
    /// The tokens whose keys/values `cache` holds, in order.
    cached_tokens: Vec<TokenId>,
    /// Context tokens the last call took from the cache instead of recomputing.
    last_reused: usize,
}

impl LivePlanner {
    /// A planner with an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Context tokens the last [`LivePlanner::plan`] call reused instead of recomputing.
    pub fn last_reused(&self) -> usize {
        self.last_reused
    }

    /// Plans like [`plan_live`], reusing the longest common prefix of the previous context.
    pub fn plan<R: Rng>(
        &mut self,
        decoder: &Decoder,
        vocab: &Vocabulary,
        request: &LiveRequest,
        params: &SamplingParams,
        rng: &mut R,
    ) -> Result<LivePlan, SampleError> {
        let lookahead = request.lookahead;
        if request.committed.len() >= lookahead {
            return Ok(LivePlan {
                chords: request.committed[..lookahead].to_vec(),
                imagined_melody: Vec::new(),
            });
        }
        let (slots, prompt_len) = live_slots(decoder, vocab, request)?;
        let cache = match self.cache.take() {
            Some(cache) if cache.batch() == 1 => cache,
            _ => decoder.new_cache(1)?,
        };
        let mut cache = cache;
        // Keep the shared prefix, but always feed at least one prompt token (the first sampled
        // slot needs the logits at the prompt's last position).
        let shared = self
            .cached_tokens
            .iter()
            .zip(&slots)
            .take_while(|(&cached, slot)| slot.forced == Some(cached))
            .count()
            .min(prompt_len - 1)
            .min(cache.len());
        cache.truncate(shared);
        self.last_reused = shared;
        self.cached_tokens.clear();
        let generated = engine::run_cached(decoder, vocab, &mut cache, &slots, params, rng);
        let row = generated?.tokens.into_iter().next().unwrap_or_default();
        self.cached_tokens.extend(row.iter().take(cache.len()));
        self.cache = Some(cache);

        let planned = row.get(prompt_len..).unwrap_or_default();
        let chords = planned
            .iter()
            .step_by(2)
            .map(|&id| vocab.chord_frame(id))
            .collect::<Result<_, _>>()?;
        let imagined_melody = planned
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&id| vocab.melody_frame(id))
            .collect::<Result<_, _>>()?;
        Ok(LivePlan {
            chords,
            imagined_melody,
        })
    }
}

/// The interleaved slots of a live request and the length of its forced prompt.
fn live_slots(
    decoder: &Decoder,
    vocab: &Vocabulary,
    request: &LiveRequest,
) -> Result<(Vec<Slot>, usize), SampleError> {
    let lookahead = request.lookahead;
    let max = decoder.config().max_frames();
    if lookahead >= max {
        return Err(SampleError::TooLong {
            frames: lookahead,
            max,
        });
    }
    let frame = request.melody.len();
    let context = frame.min(max - lookahead);
    let start = frame - context;
    let commit = request.committed.len();

    let mut slots = Vec::with_capacity(1 + 2 * (context + lookahead));
    slots.push(Slot::forced(None, BOS));
    for t in start..frame {
        let chord = request
            .chords
            .get(t)
            .copied()
            .unwrap_or(ChordFrame::Silence);
        let melody = request
            .melody
            .get(t)
            .copied()
            .unwrap_or(MelodyFrame::Silence);
        slots.push(Slot::forced(Some(Part::Chord), vocab.chord_id(chord)?));
        slots.push(Slot::forced(Some(Part::Melody), vocab.melody_id(melody)?));
    }
    let prompt_len = slots.len();
    for &chord in request.committed {
        slots.push(Slot::forced(Some(Part::Chord), vocab.chord_id(chord)?));
        slots.push(Slot::sampled(Part::Melody));
    }
    for _ in commit..lookahead {
        slots.push(Slot::sampled(Part::Chord));
        slots.push(Slot::sampled(Part::Melody));
    }
    // The last melody token is never sampled (2L − 1 generated tokens, as ReaLJam).
    slots.pop();
    Ok((slots, prompt_len))
}
