//! Live continuation with ReaLJam's semantics (spec §10, steps 5–9): given what was played and
//! the chords already committed, plan the chords for the next `lookahead` frames.

use rand::Rng;

use super::filter::{Part, SamplingParams};
use super::sequence::{self, Slot};
use super::SampleError;
use comper_model::{Decoder, KvCache};
use comper_music::harmony::ChordGuide;
use comper_music::tokens::{TokenId, Vocabulary, BOS};
use comper_realtime::frames::{ChordFrame, MelodyFrame};

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
    /// How many frames past a beat the melody's first frame lies (0 when the session started
    /// on a beat), so that [`SamplingParams::change_grid`] counts from the host's beats.
    pub beat_phase: usize,
    /// Leans sampled chords toward the melody's key and strong-beat changes; its frames count
    /// from the session's first frame (the melody's frame 0).
    pub guide: Option<&'a ChordGuide>,
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
pub fn plan_live<R: Rng + Send>(
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
///
/// Once the history is longer than the context window, ReaLJam's trimming moves the window's
/// start every frame, which changes every token's position and forces the whole context through
/// the decoder on each request. [`LivePlanner::with_window_hop`] trades a slightly shorter context
/// for reuse: the window start moves in hops, so only one request per hop recomputes it.
#[derive(Default)]
pub struct LivePlanner {
    cache: Option<KvCache>,
    /// The tokens whose keys/values `cache` holds, in order.
    cached_tokens: Vec<TokenId>,
    /// Context tokens the last call took from the cache instead of recomputing.
    last_reused: usize,
    /// Frames the window start moves at a time (0 or 1: every frame, as ReaLJam).
    window_hop: usize,
}

impl LivePlanner {
    /// A planner with an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// A planner whose context window starts on a multiple of `hop` frames (once the history no
    /// longer fits): the context then holds between `max_frames − L − hop + 1` and
    /// `max_frames − L` frames instead of exactly `max_frames − L`, and only one request in `hop`
    /// recomputes it. `hop` ≤ 1 trims exactly like ReaLJam (and [`plan_live`]).
    pub fn with_window_hop(hop: usize) -> Self {
        Self {
            window_hop: hop,
            ..Self::default()
        }
    }

    /// Context tokens the last [`LivePlanner::plan`] call reused instead of recomputing.
    pub fn last_reused(&self) -> usize {
        self.last_reused
    }

    /// Plans like [`plan_live`], reusing the longest common prefix of the previous context.
    pub fn plan<R: Rng + Send>(
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
        let (slots, prompt_len) = live_slots(decoder, vocab, request, self.window_hop)?;
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
        let generated = sequence::run_cached(
            decoder,
            vocab,
            &mut cache,
            &slots,
            request.guide,
            params,
            rng,
        );
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

/// The interleaved slots of a live request and the length of its forced prompt; the context
/// window starts on a multiple of `hop` frames (see [`LivePlanner::with_window_hop`]).
fn live_slots(
    decoder: &Decoder,
    vocab: &Vocabulary,
    request: &LiveRequest,
    hop: usize,
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
    let start = (frame - frame.min(max - lookahead)).next_multiple_of(hop.max(1));
    let start = start.min(frame);
    let commit = request.committed.len();

    let mut slots = Vec::with_capacity(1 + 2 * (frame - start + lookahead));
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
    for t in frame + commit..frame + lookahead {
        slots.push(
            Slot::sampled(Part::Chord)
                .at(request.beat_phase + t)
                .guided(t),
        );
        slots.push(Slot::sampled(Part::Melody));
    }
    // The last melody token is never sampled (2L − 1 generated tokens, as ReaLJam).
    slots.pop();
    Ok((slots, prompt_len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::SamplingParams;
    use comper_model::random::random_decoder;
    use comper_model::ModelConfig;
    use rand::SeedableRng;

    #[test]
    fn window_hop_moves_the_window_start_in_hops_and_reuses_the_context_in_between() {
        let config = ModelConfig {
            name: "tiny".into(),
            dim: 16,
            depth: 1,
            heads: 2,
            dim_head: 8,
            num_tokens: 270,
            max_seq_len: 42,
        };
        let decoder = random_decoder(&config).unwrap();
        let vocab = Vocabulary::new((0..5).map(|i| format!("chord{i}")).collect()).unwrap();
        let melody: Vec<MelodyFrame> = (0..40)
            .map(|t| MelodyFrame::Onset(60 + (t * 5 % 12) as u8))
            .collect();
        // max_frames 20, lookahead 4: ReaLJam keeps exactly 16 frames of context.
        let (lookahead, hop) = (4, 4);
        let mut planner = LivePlanner::with_window_hop(hop);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut previous: Option<(usize, usize)> = None;
        for frame in 18..34 {
            let request = LiveRequest {
                beat_phase: 0,
                melody: &melody[..frame],
                chords: &[],
                committed: &[],
                lookahead,
                guide: None,
            };
            let (_, prompt_len) = live_slots(&decoder, &vocab, &request, hop).unwrap();
            let context = (prompt_len - 1) / 2;
            let start = frame - context;
            assert!(
                context <= 16 && context > 16 - hop,
                "frame {frame}: {context}"
            );
            assert_eq!(start % hop, 0, "frame {frame}");
            let plan = planner
                .plan(
                    &decoder,
                    &vocab,
                    &request,
                    &SamplingParams::default(),
                    &mut rng,
                )
                .unwrap();
            assert_eq!(plan.chords.len(), lookahead);
            if let Some((previous_start, previous_prompt)) = previous {
                if previous_start == start {
                    assert!(planner.last_reused() >= previous_prompt, "frame {frame}");
                }
            }
            previous = Some((start, prompt_len));
        }
        let (_, exact) = live_slots(
            &decoder,
            &vocab,
            &LiveRequest {
                beat_phase: 0,
                melody: &melody[..33],
                chords: &[],
                committed: &[],
                lookahead,
                guide: None,
            },
            1,
        )
        .unwrap();
        assert_eq!(exact, 1 + 2 * 16, "hop 1 keeps ReaLJam's exact window");
    }
}
