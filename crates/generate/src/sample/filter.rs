//! Choosing one token from a row of logits: ReaLJam's validity rules, then temperature, top-k,
//! top-p and min-p.

use rand::Rng;

use super::SampleError;
use comper_music::tokens::{
    TokenId, Vocabulary, CHORD_BASE, NOTE_HOLD_BASE, NOTE_ON_BASE, SILENCE,
};

/// Which part of the interleaved sequence a slot belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Chord slot: SILENCE, chord onsets, chord holds.
    Chord,
    /// Melody slot: SILENCE, note onsets, note holds.
    Melody,
}

/// How to turn logits into a choice. Temperature scaling comes first, then the truncations
/// (top-k, min-p, top-p, in that order); all of them only ever see valid tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; `0` picks the most likely valid token (greedy).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest most-likely set whose probability reaches `p` (nucleus sampling).
    pub top_p: Option<f32>,
    /// Drop tokens less likely than `min_p` times the most likely one.
    pub min_p: Option<f32>,
    /// Frames between the points where a sampled chord may change (start, stop or switch): 1
    /// lets it change on any 16th note, as ReaLJam does; 4 only on beats. Frames count from the
    /// melody's first frame, which sits on a beat. Between those points the sounding chord (or
    /// silence) is held.
    pub change_grid: usize,
}

impl Default for SamplingParams {
    /// Plain sampling at temperature 1, as ReaLchords was trained to be sampled.
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: None,
            top_p: None,
            min_p: None,
            change_grid: 1,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding (temperature 0).
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Rejects values that would make the distribution empty or meaningless.
    pub fn validate(&self) -> Result<(), SampleError> {
        let bad = |msg: String| Err(SampleError::BadParams(msg));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(format!("temperature {} must be ≥ 0", self.temperature));
        }
        if self.change_grid == 0 {
            return bad("the chord-change grid must be at least 1 frame".into());
        }
        if self.top_k == Some(0) {
            return bad("top_k must be at least 1".into());
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return bad(format!("top_p {p} must be in (0, 1]"));
            }
        }
        if let Some(p) = self.min_p {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("min_p {p} must be in [0, 1]"));
            }
        }
        Ok(())
    }

    /// Whether the choice is deterministic (no randomness involved).
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }
}

/// Token ids allowed in a slot of `part` after `prev` (the previous token of the same part, if
/// any), following ReaLJam's `filter_invalid_tokens` (spec §9.2): no special tokens; only the
/// part's own tokens and SILENCE; a hold only continues the sounding chord/note; after SILENCE any
/// hold (as upstream); at the very start no hold. Ids come out in ascending order.
///
/// Without `may_change` (a chord slot between two points of [`SamplingParams::change_grid`]) the
/// only valid token is the one that continues `prev`: its hold, or SILENCE after SILENCE.
pub fn valid_tokens(
    vocab: &Vocabulary,
    part: Part,
    prev: Option<TokenId>,
    may_change: bool,
    out: &mut Vec<TokenId>,
) {
    out.clear();
    let (hold_base, on_base, count) = match part {
        Part::Chord => (
            CHORD_BASE,
            vocab.chord_on_base(),
            vocab.num_chords() as TokenId,
        ),
        Part::Melody => (NOTE_HOLD_BASE, NOTE_ON_BASE, 128),
    };
    if !may_change {
        let continuation = match prev {
            Some(SILENCE) => Some(SILENCE),
            Some(id) if (hold_base..hold_base + count).contains(&id) => Some(id),
            Some(id) if (on_base..on_base + count).contains(&id) => {
                Some(hold_base + (id - on_base))
            }
            _ => None,
        };
        if let Some(id) = continuation {
            out.push(id);
            return;
        }
    }
    out.push(SILENCE);
    match prev {
        Some(SILENCE) => out.extend(hold_base..hold_base + count),
        Some(id) if (hold_base..hold_base + count).contains(&id) => out.push(id),
        Some(id) if (on_base..on_base + count).contains(&id) => {
            out.push(hold_base + (id - on_base))
        }
        _ => {}
    }
    out.extend(on_base..on_base + count);
}

/// Log-probability of `id` under the model's distribution over `part` (SILENCE and all of the
/// part's tokens) at temperature 1: how plausible the model finds the token as this slot's
/// content, independent of the sampling settings.
pub fn part_log_prob(vocab: &Vocabulary, logits: &[f32], part: Part, id: TokenId) -> f64 {
    let range = match part {
        Part::Chord => CHORD_BASE as usize..vocab.num_tokens() as usize,
        Part::Melody => NOTE_HOLD_BASE as usize..CHORD_BASE as usize,
    };
    let part_logits = logits
        .get(range)
        .unwrap_or_default()
        .iter()
        .chain(logits.get(SILENCE as usize));
    let max = part_logits
        .clone()
        .fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let sum: f64 = part_logits.map(|&x| (x as f64 - max).exp()).sum();
    let logit = logits
        .get(id as usize)
        .copied()
        .unwrap_or(f32::NEG_INFINITY) as f64;
    logit - max - sum.ln()
}

/// Reusable buffers for [`choose`], so sampling a step allocates nothing.
#[derive(Default)]
pub struct Scratch {
    valid: Vec<TokenId>,
    weighted: Vec<(TokenId, f64)>,
}

/// Picks a token for a `part` slot from one row of logits.
#[allow(clippy::too_many_arguments)]
pub fn choose<R: Rng>(
    vocab: &Vocabulary,
    logits: &[f32],
    part: Part,
    prev: Option<TokenId>,
    may_change: bool,
    params: &SamplingParams,
    rng: &mut R,
    scratch: &mut Scratch,
) -> TokenId {
    valid_tokens(vocab, part, prev, may_change, &mut scratch.valid);
    let logit = |id: TokenId| {
        logits
            .get(id as usize)
            .copied()
            .unwrap_or(f32::NEG_INFINITY)
    };
    if params.is_greedy() {
        // First maximum, like torch.argmax; `valid` is never empty (it holds SILENCE).
        let mut best = SILENCE;
        let mut best_logit = f32::NEG_INFINITY;
        for &id in &scratch.valid {
            if logit(id) > best_logit {
                best = id;
                best_logit = logit(id);
            }
        }
        return best;
    }
    let inv_t = 1.0 / params.temperature as f64;
    let max = scratch
        .valid
        .iter()
        .map(|&id| logit(id) as f64 * inv_t)
        .fold(f64::NEG_INFINITY, f64::max);
    scratch.weighted.clear();
    scratch.weighted.extend(
        scratch
            .valid
            .iter()
            .map(|&id| (id, (logit(id) as f64 * inv_t - max).exp())),
    );
    truncate(&mut scratch.weighted, params);
    let total: f64 = scratch.weighted.iter().map(|&(_, w)| w).sum();
    let mut target = rng.random::<f64>() * total;
    for &(id, w) in &scratch.weighted {
        if target < w {
            return id;
        }
        target -= w;
    }
    scratch.weighted.last().map_or(SILENCE, |&(id, _)| id)
}

/// Applies top-k, min-p and top-p to unnormalised weights (the largest weight is 1).
fn truncate(weighted: &mut Vec<(TokenId, f64)>, params: &SamplingParams) {
    if let Some(min_p) = params.min_p {
        weighted.retain(|&(_, w)| w >= min_p as f64);
    }
    if params.top_k.is_none() && params.top_p.is_none() {
        return;
    }
    weighted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if let Some(k) = params.top_k {
        weighted.truncate(k.max(1));
    }
    if let Some(p) = params.top_p {
        let total: f64 = weighted.iter().map(|&(_, w)| w).sum();
        let mut cumulative = 0.0;
        let keep = weighted
            .iter()
            .position(|&(_, w)| {
                cumulative += w;
                cumulative >= p as f64 * total
            })
            .map_or(weighted.len(), |i| i + 1);
        weighted.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn vocab() -> Vocabulary {
        Vocabulary::new(vec!["C".into(), "F".into(), "G".into()]).unwrap()
    }

    fn valid(part: Part, prev: Option<TokenId>) -> Vec<TokenId> {
        let mut out = Vec::new();
        valid_tokens(&vocab(), part, prev, true, &mut out);
        out
    }

    #[test]
    fn chord_validity_follows_realjam() {
        // C = 3 chords: holds 260..263, onsets 263..266.
        assert_eq!(valid(Part::Chord, None), vec![3, 263, 264, 265]);
        assert_eq!(
            valid(Part::Chord, Some(SILENCE)),
            vec![3, 260, 261, 262, 263, 264, 265]
        );
        assert_eq!(valid(Part::Chord, Some(264)), vec![3, 261, 263, 264, 265]);
        assert_eq!(valid(Part::Chord, Some(262)), vec![3, 262, 263, 264, 265]);
    }

    #[test]
    fn between_change_points_a_chord_only_continues() {
        let held = |prev| {
            let mut out = Vec::new();
            valid_tokens(&vocab(), Part::Chord, prev, false, &mut out);
            out
        };
        assert_eq!(
            held(Some(264)),
            vec![261],
            "an onset of F continues as F held"
        );
        assert_eq!(held(Some(262)), vec![262]);
        assert_eq!(held(Some(SILENCE)), vec![SILENCE]);
        assert_eq!(
            held(None),
            valid(Part::Chord, None),
            "nothing to continue yet"
        );
    }

    #[test]
    fn melody_validity_allows_only_the_sounding_note_to_hold() {
        let v = valid(Part::Melody, Some(NOTE_ON_BASE + 60));
        assert_eq!(&v[..2], &[SILENCE, NOTE_HOLD_BASE + 60]);
        assert_eq!(v.len(), 2 + 128);
    }

    #[test]
    fn greedy_takes_the_best_valid_token() {
        let v = vocab();
        let mut logits = vec![0.0f32; v.num_tokens() as usize];
        logits[200] = 9.0; // a note: invalid on a chord slot
        logits[261] = 8.0; // hold of F: invalid after C
        logits[265] = 5.0;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let id = choose(
            &v,
            &logits,
            Part::Chord,
            Some(263),
            true,
            &SamplingParams::greedy(),
            &mut rng,
            &mut Scratch::default(),
        );
        assert_eq!(id, 265);
    }

    #[test]
    fn sampling_never_leaves_the_valid_set_and_top_k_one_is_greedy() {
        let v = vocab();
        let logits: Vec<f32> = (0..v.num_tokens()).map(|i| (i % 7) as f32).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut scratch = Scratch::default();
        let allowed = valid(Part::Chord, Some(263));
        for _ in 0..200 {
            let id = choose(
                &v,
                &logits,
                Part::Chord,
                Some(263),
                true,
                &SamplingParams::default(),
                &mut rng,
                &mut scratch,
            );
            assert!(allowed.contains(&id));
        }
        let top1 = SamplingParams {
            top_k: Some(1),
            ..SamplingParams::default()
        };
        let greedy = choose(
            &v,
            &logits,
            Part::Chord,
            Some(263),
            true,
            &SamplingParams::greedy(),
            &mut rng,
            &mut scratch,
        );
        for _ in 0..20 {
            assert_eq!(
                choose(
                    &v,
                    &logits,
                    Part::Chord,
                    Some(263),
                    true,
                    &top1,
                    &mut rng,
                    &mut scratch
                ),
                greedy
            );
        }
    }

    #[test]
    fn min_p_and_top_p_cut_unlikely_tokens() {
        let v = vocab();
        let mut logits = vec![-30.0f32; v.num_tokens() as usize];
        logits[263] = 0.0;
        logits[264] = -0.1;
        logits[SILENCE as usize] = -8.0;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut scratch = Scratch::default();
        for params in [
            SamplingParams {
                min_p: Some(0.05),
                ..SamplingParams::default()
            },
            SamplingParams {
                top_p: Some(0.9),
                ..SamplingParams::default()
            },
        ] {
            for _ in 0..200 {
                let id = choose(
                    &v,
                    &logits,
                    Part::Chord,
                    None,
                    true,
                    &params,
                    &mut rng,
                    &mut scratch,
                );
                assert!(id == 263 || id == 264, "{params:?} gave {id}");
            }
        }
    }

    #[test]
    fn part_log_probs_sum_to_one() {
        let v = vocab();
        let logits: Vec<f32> = (0..v.num_tokens())
            .map(|i| (i as f32 * 0.37).sin() * 3.0)
            .collect();
        let ids = std::iter::once(SILENCE).chain(CHORD_BASE..v.num_tokens());
        let total: f64 = ids
            .map(|id| part_log_prob(&v, &logits, Part::Chord, id).exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-9);
    }
}
