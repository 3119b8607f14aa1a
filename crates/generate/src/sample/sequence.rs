//! The generation loop shared by the options panel and live continuation.

use rand::Rng;

use super::filter::{choose, part_log_prob, valid_tokens, Part, SamplingParams, Scratch};
use super::SampleError;
use comper_model::{with_team, LogitRows, Stepper, TokenCache};
use comper_music::harmony::ChordGuide;
use comper_music::tokens::{TokenId, Vocabulary};

/// One position of the interleaved sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The part the token belongs to (`None` for BOS), which drives the validity rules.
    pub part: Option<Part>,
    /// The token, when it is known (melody, locked/committed chords, prompt) rather than sampled.
    pub forced: Option<TokenId>,
    /// The frame of a sampled chord slot, counted from a beat, for
    /// [`SamplingParams::change_grid`]; `None` lets the chord change whatever the grid.
    pub frame: Option<usize>,
    /// The frame of a sampled chord slot in the [`ChordGuide`]'s numbering, when the run is
    /// guided.
    pub guided: Option<usize>,
}

impl Slot {
    pub fn forced(part: Option<Part>, id: TokenId) -> Self {
        Self {
            part,
            forced: Some(id),
            frame: None,
            guided: None,
        }
    }

    pub fn sampled(part: Part) -> Self {
        Self {
            part: Some(part),
            forced: None,
            frame: None,
            guided: None,
        }
    }

    /// The same slot, placed at `frame` (counted from a beat).
    pub fn at(self, frame: usize) -> Self {
        Self {
            frame: Some(frame),
            ..self
        }
    }

    /// The same slot, biased by frame `frame` of the run's [`ChordGuide`].
    pub fn guided(self, frame: usize) -> Self {
        Self {
            guided: Some(frame),
            ..self
        }
    }
}

/// Result of [`run`]: one token per slot and batch row, and each row's log-likelihood.
pub(crate) struct Generated {
    pub tokens: Vec<Vec<TokenId>>,
    /// Sum of [`part_log_prob`] over the row's *sampled* chord slots.
    pub log_likelihood: Vec<f64>,
}

/// Fills `slots` for every batch row of `cache`, which already holds the first `cache.len()` slots
/// (they must all be forced); only the rest is pushed through the network. Forced tokens are
/// queued and pushed together with the next sampled slot's context, so the network runs once per
/// sampled slot (not once per token) and computes logits only for the positions sampled from.
/// On return the cache holds every token that was fed, i.e. all but the trailing forced/sampled
/// ones never needed.
///
/// The whole run leads a team ([`with_team`]) of rayon's threads: each network step is dozens of
/// small parallel products, and handing each one to rayon costs a wake-up of a sleeping worker and
/// a blocking wait, while the team's helpers spin between products for the length of the run.
pub(crate) fn run_cached<M: Stepper, R: Rng + Send>(
    decoder: &M,
    vocab: &Vocabulary,
    cache: &mut M::Cache,
    slots: &[Slot],
    guide: Option<&ChordGuide>,
    params: &SamplingParams,
    rng: &mut R,
) -> Result<Generated, SampleError> {
    with_team(|| fill_slots(decoder, vocab, cache, slots, guide, params, rng))
}

/// The body of [`run_cached`], inside the team: each slot forced, held or sampled in turn.
fn fill_slots<M: Stepper, R: Rng>(
    decoder: &M,
    vocab: &Vocabulary,
    cache: &mut M::Cache,
    slots: &[Slot],
    guide: Option<&ChordGuide>,
    params: &SamplingParams,
    rng: &mut R,
) -> Result<Generated, SampleError> {
    let batch = cache.batch();
    let cached = cache.len();
    check_inputs(decoder, vocab, cached, slots, params)?;
    let mut filling = Filling::new(decoder, vocab, cache, guide, params, batch, slots.len());
    for (index, slot) in slots.iter().enumerate() {
        let chosen: Vec<TokenId> = match (slot.forced, slot.part) {
            (Some(id), _) => vec![id; batch],
            (None, None) => {
                return Err(SampleError::BadParams("a sampled slot needs a part".into()))
            }
            (None, Some(part)) => filling.sample(slot, part, rng)?,
        };
        filling.record(slot.part, chosen, index >= cached);
    }
    filling.finish()
}

/// Refuses a run the cache or the model cannot serve, before any token is drawn.
fn check_inputs<M: Stepper>(
    decoder: &M,
    vocab: &Vocabulary,
    cached: usize,
    slots: &[Slot],
    params: &SamplingParams,
) -> Result<(), SampleError> {
    if slots.iter().take(cached).any(|slot| slot.forced.is_none()) || cached > slots.len() {
        return Err(SampleError::BadParams(
            "the cache holds more than the forced prefix".into(),
        ));
    }
    params.validate()?;
    if vocab.num_tokens() as usize != decoder.num_tokens() {
        return Err(SampleError::VocabularyMismatch {
            vocabulary: vocab.num_tokens(),
            model: decoder.num_tokens(),
        });
    }
    Ok(())
}

/// Where `prev` keeps a part's last token: [chord, melody].
fn part_index(part: Part) -> usize {
    match part {
        Part::Chord => 0,
        Part::Melody => 1,
    }
}

/// One run of [`fill_slots`]: the model and settings, what every batch row holds so far, and the
/// buffers reused from slot to slot.
struct Filling<'a, M: Stepper> {
    decoder: &'a M,
    vocab: &'a Vocabulary,
    cache: &'a mut M::Cache,
    guide: Option<&'a ChordGuide>,
    params: &'a SamplingParams,
    batch: usize,
    /// Tokens queued per row for the next network step.
    pending: Vec<Vec<TokenId>>,
    tokens: Vec<Vec<TokenId>>,
    log_likelihood: Vec<f64>,
    /// Last token of each part per row, indexed by [`part_index`].
    prev: Vec<[Option<TokenId>; 2]>,
    /// Chord slots the change grid held to their continuation were queued without a step of
    /// their own; each waits for the logits at `pending[at]` to add its log-likelihood term.
    deferred: Vec<Deferred>,
    scratch: Scratch,
    only: Vec<TokenId>,
    biased: Vec<f32>,
}

impl<'a, M: Stepper> Filling<'a, M> {
    /// An empty run over `batch` rows of `slots` slots.
    fn new(
        decoder: &'a M,
        vocab: &'a Vocabulary,
        cache: &'a mut M::Cache,
        guide: Option<&'a ChordGuide>,
        params: &'a SamplingParams,
        batch: usize,
        slots: usize,
    ) -> Self {
        Self {
            decoder,
            vocab,
            cache,
            guide,
            params,
            batch,
            pending: vec![Vec::new(); batch],
            tokens: vec![Vec::with_capacity(slots); batch],
            log_likelihood: vec![0.0; batch],
            prev: vec![[None, None]; batch],
            deferred: Vec::new(),
            scratch: Scratch::default(),
            only: Vec::new(),
            biased: Vec::new(),
        }
    }

    /// Every row's token for a sampled slot: the held chords where the change grid forbids a
    /// change and each row has a single continuation (no network step), else a choice from the
    /// logits of a fresh step.
    fn sample<R: Rng>(
        &mut self,
        slot: &Slot,
        part: Part,
        rng: &mut R,
    ) -> Result<Vec<TokenId>, SampleError> {
        let queued = self.pending.first().map_or(0, Vec::len);
        let may_change = part != Part::Chord
            || slot
                .frame
                .is_none_or(|frame| frame % self.params.change_grid == 0);
        let held = if may_change || queued == 0 {
            None
        } else {
            held_chords(
                self.vocab,
                self.prev.iter().map(|p| p[part_index(part)]),
                &mut self.only,
            )
        };
        if let Some(held) = held {
            self.deferred.push(Deferred {
                at: queued - 1,
                tokens: held.clone(),
            });
            return Ok(held);
        }
        let logits = step_scoring(
            self.decoder,
            self.vocab,
            self.cache,
            &mut self.pending,
            &mut self.deferred,
            &mut self.log_likelihood,
        )?;
        Ok(self.choose_rows(&logits, slot, part, may_change, rng))
    }

    /// Each row's choice from its logits, leaned toward the melody by the guide; a chord's
    /// log-likelihood term stays the model's own.
    fn choose_rows<R: Rng>(
        &mut self,
        logits: &[Vec<f32>],
        slot: &Slot,
        part: Part,
        may_change: bool,
        rng: &mut R,
    ) -> Vec<TokenId> {
        let mut chosen = Vec::with_capacity(self.batch);
        for (row, row_logits) in logits.iter().enumerate() {
            let row_prev = self.prev.get(row).and_then(|p| p[part_index(part)]);
            let guided = match (self.guide, slot.guided) {
                (Some(guide), Some(frame)) if part == Part::Chord => {
                    guide.apply(frame, row_logits, &mut self.biased)
                }
                _ => false,
            };
            let choice_logits: &[f32] = if guided { &self.biased } else { row_logits };
            let id = choose(
                self.vocab,
                choice_logits,
                part,
                row_prev,
                may_change,
                self.params,
                rng,
                &mut self.scratch,
            );
            if part == Part::Chord {
                if let Some(ll) = self.log_likelihood.get_mut(row) {
                    *ll += part_log_prob(self.vocab, row_logits, part, id);
                }
            }
            chosen.push(id);
        }
        chosen
    }

    /// Appends each row's token to its output and, unless the cache already holds it
    /// (`feed` false), queues it for the network.
    fn record(&mut self, part: Option<Part>, chosen: Vec<TokenId>, feed: bool) {
        for (row, id) in chosen.into_iter().enumerate() {
            if let (Some(p), Some(part)) = (self.prev.get_mut(row), part) {
                p[part_index(part)] = Some(id);
            }
            if let (Some(queue), Some(out)) = (self.pending.get_mut(row), self.tokens.get_mut(row))
            {
                if feed {
                    queue.push(id);
                }
                out.push(id);
            }
        }
    }

    /// The tokens and log-likelihoods, once the chords held at the end are scored too.
    fn finish(mut self) -> Result<Generated, SampleError> {
        if !self.deferred.is_empty() {
            step_scoring(
                self.decoder,
                self.vocab,
                self.cache,
                &mut self.pending,
                &mut self.deferred,
                &mut self.log_likelihood,
            )?;
        }
        Ok(Generated {
            tokens: self.tokens,
            log_likelihood: self.log_likelihood,
        })
    }
}

/// The chord every row must continue with where the grid forbids a change (one per row's
/// previous chord token), or `None` if some row has no single continuation and needs the network.
fn held_chords(
    vocab: &Vocabulary,
    prev_chords: impl Iterator<Item = Option<TokenId>>,
    only: &mut Vec<TokenId>,
) -> Option<Vec<TokenId>> {
    prev_chords
        .map(|prev| {
            valid_tokens(vocab, Part::Chord, prev, false, only);
            (only.len() == 1).then(|| only[0])
        })
        .collect()
}

/// A chord slot the change grid held to its continuation, queued without a network step.
struct Deferred {
    /// Index in the pending chunk of the token whose logits score this slot.
    at: usize,
    /// The held chord of every batch row.
    tokens: Vec<TokenId>,
}

/// Pushes the pending chunk through the network, adds the log-likelihood terms of the deferred
/// (held) chord slots from the logits at their positions, and returns each row's logits at the
/// last position, to sample the next slot from.
fn step_scoring<M: Stepper>(
    decoder: &M,
    vocab: &Vocabulary,
    cache: &mut M::Cache,
    pending: &mut [Vec<TokenId>],
    deferred: &mut Vec<Deferred>,
    log_likelihood: &mut [f64],
) -> Result<Vec<Vec<f32>>, SampleError> {
    let queued = pending.first().map_or(0, Vec::len);
    let tail = deferred.first().map_or(1, |d| queued - d.at);
    let logits = decoder.step(cache, pending, LogitRows::Tail(tail))?;
    let logits: Vec<Vec<Vec<f32>>> = logits.to_vec3().map_err(comper_model::ModelError::from)?;
    pending.iter_mut().for_each(Vec::clear);
    let first = queued - tail;
    for held in deferred.drain(..) {
        for ((row_logits, &id), ll) in logits
            .iter()
            .zip(&held.tokens)
            .zip(log_likelihood.iter_mut())
        {
            if let Some(at) = row_logits.get(held.at - first) {
                *ll += part_log_prob(vocab, at, Part::Chord, id);
            }
        }
    }
    Ok(logits
        .into_iter()
        .map(|mut row| row.pop().unwrap_or_default())
        .collect())
}
