//! `comper best-of`: fine-tuning data for the online model, made from its own samples.
//!
//! ReaLchords lifts its online model's note-in-chord ratio with reinforcement learning: the online
//! model commits to chord *t* before it hears note *t*, and maximum likelihood teaches it to
//! imitate accompanists who heard the whole song. This is RL's cheap relative, reward-ranked
//! self-training: for each training melody, sample several progressions with the online model
//! (melody teacher-forced, as the five options do), score each by how well it fits the melody it
//! met and by how plausible the offline model (which hears the whole melody) finds it, and keep
//! the best. Fine-tuning on the kept progressions (`training/train.py --extra`, mixed with the
//! real data so the model stays a model of music) moves the online model towards chords that
//! will fit the notes it has not heard yet.
//!
//! A candidate must change chord at least `min_change_share` and at most `max_change_share` times
//! as often as the ground truth: without the floor the easiest winner is one chord held under a
//! diatonic tune, without the ceiling a chord per note. Chords that
//! start between beats cost `offbeat_weight` × their share of the onsets: a change on the "e" of
//! a beat fits the odd passing note and sounds wrong (the training data changes on a beat 96% of
//! the time, raw samples 89%).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use serde::Serialize;

use super::data::{Example, Split};
use super::metrics::{chord_durations, offbeat_chords};
use super::nll::offline_log_likelihoods;
use super::{EvalError, ExampleError};
use comper_generate::sample::{generate_options, OptionsRequest, SamplingParams};
use comper_model::weights::read_chord_names;
use comper_model::{LoadedModel, LoadedOffline};
use comper_music::chord::ChordTable;
use comper_music::fit::chord_masks;
use comper_music::fit::melody_fit;
use comper_music::tokens::{TokenId, Vocabulary};
use comper_realtime::frames::ChordFrame;

/// What to sample, how to judge it and where to write the winners.
#[derive(Debug, Clone)]
pub struct BestOfOptions {
    /// The split to draw melodies from (a `training/convert.py` `.npz`, normally `train.npz`).
    pub split: PathBuf,
    /// The data folder's `chord_names.json`, which the models must share.
    pub chord_names: PathBuf,
    /// The online model that samples the candidates.
    pub weights: PathBuf,
    /// The offline model that judges them (`None`: melody fit alone).
    pub critic: Option<PathBuf>,
    /// Melodies to draw, at random without repetition (all of them when the split is smaller).
    pub examples: usize,
    /// Candidates sampled per melody (one batch).
    pub candidates: usize,
    /// Sampling temperature of the candidates.
    pub temperature: f32,
    /// Frames between the points where a candidate's chord may change
    /// ([`SamplingParams::change_grid`]; 1 = any 16th).
    pub change_grid: usize,
    /// Weight of the critic's mean log-probability per chord token next to the melody fit (a
    /// share in 0..1).
    pub critic_weight: f64,
    /// A candidate needs at least this share of the ground truth's chord count.
    pub min_change_share: f64,
    /// … and at most this share.
    pub max_change_share: f64,
    /// Penalty per unit share of chord onsets that fall between beats.
    pub offbeat_weight: f64,
    /// Seed of the melody draw and the sampling.
    pub seed: u64,
    /// Where to write the kept examples (`.npz` in the converter's format).
    pub out: PathBuf,
}

/// One candidate's judgement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    /// Share of sounding melody frames whose pitch class is in the chord.
    pub fit: f64,
    /// The critic's mean log-probability per chord token (0 without a critic).
    pub critic: f64,
    /// Chords in the progression.
    pub chords: usize,
    /// Share of its chord onsets that fall between beats.
    pub offbeat: f64,
}

/// How the candidates are ranked: melody fit, plus the critic's view, minus off-beat changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reward {
    /// Weight of the critic's mean log-probability per chord token.
    pub critic_weight: f64,
    /// Weight of the share of off-beat chord onsets (subtracted).
    pub offbeat_weight: f64,
}

impl Reward {
    /// The reward of one judged candidate.
    pub fn score(&self, j: &Judged) -> f64 {
        j.fit + self.critic_weight * j.critic - self.offbeat_weight * j.offbeat
    }
}

/// Share of the track's chords that start between beats (frame 0 is a downbeat, as in every
/// converted example); 0 for a track without chords.
pub fn offbeat_share(chords: &[ChordFrame]) -> f64 {
    match offbeat_chords(chords) {
        (_, 0) => 0.0,
        (offbeat, all) => offbeat as f64 / all as f64,
    }
}

/// The index of the best candidate whose chord count lies in `chords`, or `None` when none
/// does. Ties go to the earlier candidate.
pub fn choose_best(
    judged: &[Judged],
    reward: Reward,
    chords: std::ops::RangeInclusive<usize>,
) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, j) in judged.iter().enumerate() {
        if !chords.contains(&j.chords) {
            continue;
        }
        let score = reward.score(j);
        if best.is_none_or(|(_, b)| score > b) {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| i)
}

/// What a `best-of` run produced, pooled over the melodies it drew.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BestOfReport {
    /// Melodies drawn.
    pub examples: usize,
    /// Melodies written (the rest had no candidate with a chord count in range).
    pub kept: usize,
    /// Mean melody fit of every candidate.
    pub fit_all: f64,
    /// Mean melody fit of the kept candidates.
    pub fit_kept: f64,
    /// Mean melody fit of the ground truth of the kept melodies.
    pub fit_truth: f64,
    /// Mean critic log-probability per chord token of every candidate.
    pub critic_all: f64,
    /// Mean critic log-probability per chord token of the kept candidates.
    pub critic_kept: f64,
    /// Chords per kept candidate.
    pub chords_kept: f64,
    /// Chords per ground-truth progression of the kept melodies.
    pub chords_truth: f64,
    /// Share of off-beat chord onsets: every candidate, the kept ones, their ground truth.
    pub offbeat_all: f64,
    /// See `offbeat_all`.
    pub offbeat_kept: f64,
    /// See `offbeat_all`.
    pub offbeat_truth: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Runs the sampling, judging and writing; `progress` gets a line every 50 melodies.
pub fn best_of(
    options: &BestOfOptions,
    mut progress: impl FnMut(&str),
) -> Result<BestOfReport, EvalError> {
    if options.candidates == 0 {
        return Err(EvalError::BadOption(
            "--candidates must be at least 1".into(),
        ));
    }
    let vocab = read_chord_names(&options.chord_names)?;
    let masks = chord_masks(&ChordTable::new(&vocab));
    let model = LoadedModel::load(&options.weights)?;
    same_vocabulary(&vocab, &model.vocabulary, options)?;
    let critic = match &options.critic {
        Some(dir) => {
            let critic = LoadedOffline::load(dir)?;
            same_vocabulary(&vocab, &critic.vocabulary, options)?;
            Some(critic)
        }
        None => None,
    };
    let split = Split::read(&options.split)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let count = options.examples.min(split.len());
    let mut indices = rand::seq::index::sample(&mut rng, split.len(), count).into_vec();
    indices.sort_unstable();

    let params = SamplingParams {
        temperature: options.temperature,
        change_grid: options.change_grid,
        ..SamplingParams::default()
    };
    let reward = Reward {
        critic_weight: options.critic_weight,
        offbeat_weight: options.offbeat_weight,
    };
    let timer = Instant::now();
    let mut out = SplitWriter::default();
    let mut sums = Sums::default();
    for (n, &index) in indices.iter().enumerate() {
        let example = split.example(index, &vocab)?;
        let request = OptionsRequest {
            melody: &example.melody,
            locked: &[],
            count: options.candidates,
            max_retries: 0,
            guide: None,
        };
        let candidates = generate_options(&model.decoder, &vocab, &request, &params, &mut rng)
            .map_err(|e| ExampleError::from(e).at(index))?;
        let tracks: Vec<Vec<ChordFrame>> = candidates.into_iter().map(|c| c.chords).collect();
        let critic_scores = match &critic {
            Some(critic) => critic_log_likelihoods(critic, &vocab, &example, &tracks)
                .map_err(|e| e.at(index))?,
            None => vec![0.0; tracks.len()],
        };
        let judged: Vec<Judged> = tracks
            .iter()
            .zip(&critic_scores)
            .map(|(track, &critic)| Judged {
                fit: melody_fit(&example.melody, track, &masks),
                critic,
                chords: chord_durations(track).len(),
                offbeat: offbeat_share(track),
            })
            .collect();
        sums.add_all(&judged);
        let truth_chords = chord_durations(&example.chords).len();
        let min_chords = (truth_chords as f64 * options.min_change_share).ceil() as usize;
        let max_chords = (truth_chords as f64 * options.max_change_share).floor() as usize;
        if let Some(best) = choose_best(&judged, reward, min_chords..=max_chords.max(min_chords)) {
            let (Some(track), Some(j)) = (tracks.get(best), judged.get(best)) else {
                continue;
            };
            let ids = vocab
                .online_sequence(track, &example.melody)
                .map_err(|e| ExampleError::from(e).at(index))?;
            out.push(&ids, &example.bars);
            sums.add_kept(j, &truth_judgement(&example, &masks, truth_chords));
        }
        if (n + 1) % 50 == 0 {
            progress(&format!(
                "{}/{count} melodies, {} kept, {:.0} s",
                n + 1,
                sums.kept,
                timer.elapsed().as_secs_f64()
            ));
        }
    }
    out.write(&options.out)?;
    Ok(sums.report(count, timer.elapsed().as_secs_f64()))
}

fn same_vocabulary(
    data: &Vocabulary,
    model: &Vocabulary,
    options: &BestOfOptions,
) -> Result<(), EvalError> {
    if model != data {
        return Err(EvalError::BadData {
            path: options.chord_names.clone(),
            message: format!(
                "{} chord names, but a model has {}; use the chord_names.json the models were \
                 trained on",
                data.num_chords(),
                model.num_chords()
            ),
        });
    }
    Ok(())
}

/// The ground truth's fit, chord count and off-beat share (no critic score).
fn truth_judgement(example: &Example, masks: &[u16], chords: usize) -> Judged {
    Judged {
        fit: melody_fit(&example.melody, &example.chords, masks),
        critic: 0.0,
        chords,
        offbeat: offbeat_share(&example.chords),
    }
}

/// The offline model's mean log-probability per chord token of each track, given the melody.
fn critic_log_likelihoods(
    critic: &LoadedOffline,
    vocab: &Vocabulary,
    example: &Example,
    tracks: &[Vec<ChordFrame>],
) -> Result<Vec<f64>, ExampleError> {
    let melody = vocab.offline_melody(&example.melody)?;
    let chords = tracks
        .iter()
        .map(|track| vocab.decoder_sequence(track))
        .collect::<Result<Vec<Vec<TokenId>>, _>>()?;
    Ok(offline_log_likelihoods(&critic.model, &melody, &chords)?)
}

/// Running sums behind [`BestOfReport`].
#[derive(Default)]
struct Sums {
    candidates: usize,
    fit_all: f64,
    critic_all: f64,
    kept: usize,
    fit_kept: f64,
    critic_kept: f64,
    fit_truth: f64,
    chords_kept: usize,
    chords_truth: usize,
    offbeat_all: f64,
    offbeat_kept: f64,
    offbeat_truth: f64,
}

impl Sums {
    fn add_all(&mut self, judged: &[Judged]) {
        for j in judged {
            self.candidates += 1;
            self.fit_all += j.fit;
            self.critic_all += j.critic;
            self.offbeat_all += j.offbeat;
        }
    }

    fn add_kept(&mut self, kept: &Judged, truth: &Judged) {
        self.kept += 1;
        self.fit_kept += kept.fit;
        self.critic_kept += kept.critic;
        self.chords_kept += kept.chords;
        self.offbeat_kept += kept.offbeat;
        self.fit_truth += truth.fit;
        self.chords_truth += truth.chords;
        self.offbeat_truth += truth.offbeat;
    }

    fn report(&self, examples: usize, seconds: f64) -> BestOfReport {
        let mean = |sum: f64, n: usize| if n == 0 { 0.0 } else { sum / n as f64 };
        BestOfReport {
            examples,
            kept: self.kept,
            fit_all: mean(self.fit_all, self.candidates),
            fit_kept: mean(self.fit_kept, self.kept),
            fit_truth: mean(self.fit_truth, self.kept),
            critic_all: mean(self.critic_all, self.candidates),
            critic_kept: mean(self.critic_kept, self.kept),
            chords_kept: mean(self.chords_kept as f64, self.kept),
            chords_truth: mean(self.chords_truth as f64, self.kept),
            offbeat_all: mean(self.offbeat_all, self.candidates),
            offbeat_kept: mean(self.offbeat_kept, self.kept),
            offbeat_truth: mean(self.offbeat_truth, self.kept),
            seconds,
        }
    }
}

/// Examples gathered in the converter's `.npz` layout (see [`super::data`]).
pub struct SplitWriter {
    tokens: Vec<i64>,
    offsets: Vec<i64>,
    bars: Vec<i64>,
    bar_offsets: Vec<i64>,
}

impl Default for SplitWriter {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            offsets: vec![0],
            bars: Vec::new(),
            bar_offsets: vec![0],
        }
    }
}

impl SplitWriter {
    /// Adds one example: its online token sequence and its bar-line frames.
    pub fn push(&mut self, ids: &[TokenId], bars: &[usize]) {
        self.tokens.extend(ids.iter().map(|&id| i64::from(id)));
        self.offsets.push(self.tokens.len() as i64);
        self.bars.extend(bars.iter().map(|&b| b as i64));
        self.bar_offsets.push(self.bars.len() as i64);
    }

    /// Writes the four arrays to `path` (readable by [`Split::read`] and `numpy.load`).
    pub fn write(&self, path: &Path) -> Result<(), EvalError> {
        let bad = |e: candle_core::Error| EvalError::BadData {
            path: path.to_owned(),
            message: format!("cannot write: {e}"),
        };
        let array = |values: &[i64]| Tensor::from_slice(values, values.len(), &Device::Cpu);
        let tensors = [
            ("tokens", array(&self.tokens).map_err(bad)?),
            ("offsets", array(&self.offsets).map_err(bad)?),
            ("bars", array(&self.bars).map_err(bad)?),
            ("bar_offsets", array(&self.bar_offsets).map_err(bad)?),
        ];
        Tensor::write_npz(&tensors, path).map_err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use comper_realtime::frames::MelodyFrame;

    fn judged(fit: f64, critic: f64, chords: usize) -> Judged {
        Judged {
            fit,
            critic,
            chords,
            offbeat: 0.0,
        }
    }

    fn reward(critic_weight: f64) -> Reward {
        Reward {
            critic_weight,
            offbeat_weight: 0.5,
        }
    }

    #[test]
    fn the_best_fit_wins_among_candidates_that_move_enough() {
        let candidates = [
            judged(0.9, -0.2, 1), // fits best but holds one chord
            judged(0.6, -0.3, 6),
            judged(0.7, -0.4, 5),
        ];
        assert_eq!(choose_best(&candidates, reward(0.0), 4..=10), Some(2));
        // The critic can outweigh a small fit difference.
        assert_eq!(choose_best(&candidates, reward(1.0), 4..=10), Some(1));
        // A ceiling below the busy candidate leaves the static one.
        assert_eq!(choose_best(&candidates, reward(0.0), 0..=4), Some(0));
        // Without the floor the static candidate wins; with a high one nothing qualifies.
        assert_eq!(choose_best(&candidates, reward(0.0), 0..=10), Some(0));
        assert_eq!(choose_best(&candidates, reward(0.0), 7..=10), None);
        // Changing chord between beats costs: half the onsets off the beat outweighs 0.1 of fit.
        let offbeat = [
            Judged {
                offbeat: 0.5,
                ..judged(0.8, -0.3, 6)
            },
            judged(0.7, -0.3, 6),
        ];
        assert_eq!(choose_best(&offbeat, reward(0.0), 4..=10), Some(1));
    }

    #[test]
    fn offbeat_share_counts_onsets_off_the_quarter_note_grid() {
        let track = [
            ChordFrame::Onset(0), // frame 0: on the beat
            ChordFrame::Hold(0),
            ChordFrame::Onset(1), // frame 2: between beats
            ChordFrame::Hold(1),
            ChordFrame::Onset(0), // frame 4: on the beat
            ChordFrame::Silence,
        ];
        assert!((offbeat_share(&track) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(offbeat_share(&[ChordFrame::Silence; 4]), 0.0);
    }

    #[test]
    fn written_examples_read_back_as_the_same_frames() -> Result<(), Box<dyn std::error::Error>> {
        let vocab = Vocabulary::new(vec!["C".into(), "G".into()])?;
        let melody = vec![
            MelodyFrame::Onset(60),
            MelodyFrame::Hold(60),
            MelodyFrame::Silence,
            MelodyFrame::Onset(67),
        ];
        let chords = vec![
            ChordFrame::Onset(0),
            ChordFrame::Hold(0),
            ChordFrame::Onset(1),
            ChordFrame::Hold(1),
        ];
        let mut writer = SplitWriter::default();
        writer.push(&vocab.online_sequence(&chords, &melody)?, &[0]);
        writer.push(&vocab.online_sequence(&chords[..2], &melody[..2])?, &[]);
        let dir = std::env::temp_dir().join(format!("comper-best-of-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("kept.npz");
        writer.write(&path)?;
        let split = Split::read(&path)?;
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(split.len(), 2);
        let first = split.example(0, &vocab)?;
        assert_eq!(
            (first.melody, first.chords, first.bars),
            (melody.clone(), chords.clone(), vec![0])
        );
        let second = split.example(1, &vocab)?;
        assert_eq!(second.chords, chords[..2].to_vec());
        assert!(second.bars.is_empty());
        Ok(())
    }
}
