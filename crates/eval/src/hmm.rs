//! A classic data-driven harmonizer, as an evaluation baseline: a hidden Markov model over
//! triads in the style of MySong (Simon, Morris & Basu, "MySong: automatic accompaniment
//! generation for vocal melodies", CHI 2008).
//!
//! It answers "what does the textbook statistical accompanist score on our data?", between the
//! rule-based diatonic heuristic and the transformer.
//!
//! * **States**: 36 triads, 12 roots × {major, minor, diminished}. Every vocabulary chord is
//!   reduced to root and quality (`reduce`); the decoder plays the vocabulary's plain triad of
//!   each state (states the vocabulary lacks are never chosen).
//! * **Time step**: one beat (4 frames). MySong decides once per bar; the data here changes on
//!   beats inside bars often enough (≈1.5 chords per bar) that a bar-step model could not match
//!   its change rate, so the step is the beat and a penalty keeps changes on strong beats.
//! * **Transposition invariance** (as MySong): transitions are counted as (quality before,
//!   interval between the roots, quality after) and emissions as the pitch classes of the
//!   melody relative to the chord root, per quality. The key is never estimated: transitions and
//!   emissions together keep the decoder in one, as in MySong.
//! * **Emissions**: a beat's log-likelihood under a state is Σ over its frames with a sounding
//!   note of `log p(pc − root mod 12 | quality)`, add-one smoothed: MySong's duration-weighted
//!   pitch-class histogram at 16th resolution. Every frame weighs the same: weighting the
//!   beat's first frame (2× or 4×) or note onsets (2× or 3×) more made the decoder agree less
//!   with the ground truth at the same change rate.
//! * **Transitions**: beat-to-beat counts from the training tracks, self-transitions ("stay")
//!   included, add-one smoothed, plus two knobs in nats ([`CHANGE_PENALTY`] on every change,
//!   [`WEAK_BEAT_PENALTY`] more on a beat that is neither a bar line nor the middle of the bar;
//!   MySong's "happy factor" is a knob of the same kind). "Stay" is by far the likeliest single
//!   move (≈0.7 per beat), and Viterbi keeps only the likeliest path, so the learned model alone
//!   changes chord less often than the data (0.8 vs 1.3 triads per bar): the change penalty is
//!   negative, a bonus. It is capped per state so that staying keeps an edge of [`STAY_EDGE`]
//!   over every change: a change must still be paid for by the melody, and a silent stretch
//!   holds its chord.
//! * **Decoding**: Viterbi over the beats; the initial distribution is uniform over roots times
//!   the quality prior of the training tracks' first beats.

use super::baselines::TriadLookup;
use super::data::Example;
use comper_music::chord::{ChordTable, ChordTones};
use comper_music::tokens::Vocabulary;
use comper_realtime::frames::{ChordFrame, ChordIndex, MelodyFrame, FRAMES_PER_BEAT};

/// Nats every chord change costs on top of its learned transition probability; negative, a
/// bonus (see the module documentation). Tuned on the validation split so the decoded tracks
/// change triad about as often as the ground truth (1.2 vs 1.3 per bar; the measurement test
/// below). On that data the cap of [`STAY_EDGE`] binds from about −1.93 (major chords), so a
/// larger bonus would change little.
pub const CHANGE_PENALTY: f64 = -1.9;
/// Extra nats for a change on a beat that is neither a bar line nor the middle of a bar. Tuned
/// with [`CHANGE_PENALTY`]: 77% of the decoded changes fall on bar lines or half bars (ground
/// truth 82%); 2 nats would match that share but lower the change rate to 1.15 per bar.
pub const WEAK_BEAT_PENALTY: f64 = 1.5;
/// Nats by which staying on a chord beats any change when the melody says nothing.
pub const STAY_EDGE: f64 = 0.05;

/// Frames per decision step.
const BEAT: usize = FRAMES_PER_BEAT as usize;
/// Bar length assumed when the caller gives 0 (one 4/4 bar).
const DEFAULT_BAR: usize = 4 * BEAT;
/// Major, minor, diminished.
const QUALITIES: usize = 3;
/// Root-position intervals of the chord played for each quality.
const TRIADS: [[u8; 3]; QUALITIES] = [[0, 4, 7], [0, 3, 7], [0, 3, 6]];
/// Number of states: every quality on every root.
const STATES: usize = 12 * QUALITIES;

/// A state: `quality · 12 + root`.
type State = usize;

fn state(root: u8, quality: usize) -> State {
    quality * 12 + usize::from(root % 12)
}

fn root(state: State) -> usize {
    state % 12
}

fn quality(state: State) -> usize {
    state / 12
}

/// Root and triad quality of a chord: minor if it has a minor third and no major third,
/// diminished if it is minor with a flat fifth and no perfect fifth, else major (sus, augmented
/// and power chords included, as their third-less or major-third sound is closest).
fn reduce(tones: &ChordTones) -> Option<State> {
    let root = *tones.pitch_classes.first()? % 12;
    let has = |interval: u8| {
        tones
            .pitch_classes
            .iter()
            .any(|&pc| (pc % 12 + 12 - root) % 12 == interval)
    };
    let quality = match (has(3) && !has(4), has(6) && !has(7)) {
        (true, true) => 2,
        (true, false) => 1,
        (false, _) => 0,
    };
    Some(state(root, quality))
}

/// The state of one beat of a chord track: the chord sounding in most of its frames (the
/// earliest on a tie), reduced; `None` when the beat is mostly silent or the chord unplayable.
fn beat_state(beat: &[ChordFrame], table: &ChordTable) -> Option<State> {
    let silent = beat.iter().filter(|c| c.chord().is_none()).count();
    let (chord, count) = beat
        .iter()
        .filter_map(|c| c.chord())
        .map(|c| (c, beat.iter().filter(|o| o.chord() == Some(c)).count()))
        .fold(
            None,
            |best: Option<(ChordIndex, usize)>, (c, n)| match best {
                Some((_, top)) if top >= n => best,
                _ => Some((c, n)),
            },
        )?;
    if count < silent {
        return None;
    }
    table.tones(chord).and_then(reduce)
}

/// Pitch-class histogram of one beat of melody: frames per pitch class.
fn beat_histogram(beat: &[MelodyFrame]) -> [f64; 12] {
    let mut histogram = [0.0; 12];
    for pitch in beat.iter().filter_map(|frame| frame.pitch()) {
        histogram[usize::from(pitch % 12)] += 1.0;
    }
    histogram
}

/// `counts` (add-one smoothed) as log-probabilities.
fn log_probabilities<const N: usize>(counts: &[f64; N]) -> [f64; N] {
    let total: f64 = counts.iter().sum::<f64>() + N as f64;
    counts.map(|c| ((c + 1.0) / total).ln())
}

/// Index and value of the largest of `values` (the first on a tie; `(0, −∞)` when empty).
fn argmax(values: impl Iterator<Item = f64>) -> (usize, f64) {
    values
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
}

/// Whether a change at `beat` falls on a bar line or the middle of a `bar`-frame bar (the middle
/// only where it falls on a beat).
fn strong_beat(beat: usize, bar: usize) -> bool {
    let position = (beat * BEAT) % bar;
    position == 0 || (bar.is_multiple_of(2 * BEAT) && position == bar / 2)
}

/// Learned chord-transition and melody-emission statistics.
#[derive(Debug, Clone)]
pub struct HmmHarmonizer {
    /// `log P(next state | state)` per beat, expanded from the root-relative counts.
    transition: [[f64; STATES]; STATES],
    /// `log p(pitch class − root | quality)`.
    emission: [[f64; 12]; QUALITIES],
    /// `log P(first state)`.
    initial: [f64; STATES],
    /// The least a change may cost from each state: the amount by which the learned "stay" beats
    /// the likeliest change, less [`STAY_EDGE`], negated.
    least_change_cost: [f64; STATES],
    /// The vocabulary chord each state plays, `None` where the vocabulary lacks the triad.
    chords: [Option<ChordIndex>; STATES],
}

impl HmmHarmonizer {
    /// Learns from examples (ground-truth chord tracks and melodies of the training split).
    ///
    /// Every example given is used; the work is linear in their frames (4000 examples of the
    /// training split take well under a second), so the caller picks how many.
    pub fn train<'a>(
        examples: impl IntoIterator<Item = &'a Example>,
        vocab: &Vocabulary,
        table: &ChordTable,
    ) -> Self {
        // [quality before][root interval][quality after]
        let mut moves = [[[0.0; QUALITIES]; 12]; QUALITIES];
        let mut notes = [[0.0; 12]; QUALITIES];
        let mut first = [0.0; QUALITIES];
        for example in examples {
            let states: Vec<Option<State>> = example
                .chords
                .chunks(BEAT)
                .map(|beat| beat_state(beat, table))
                .collect();
            if let Some(Some(s)) = states.first() {
                first[quality(*s)] += 1.0;
            }
            for pair in states.windows(2) {
                if let [Some(from), Some(to)] = *pair {
                    moves[quality(from)][(root(to) + 12 - root(from)) % 12][quality(to)] += 1.0;
                }
            }
            for (beat, s) in example.melody.chunks(BEAT).zip(&states) {
                let Some(s) = *s else { continue };
                for (pc, weight) in beat_histogram(beat).into_iter().enumerate() {
                    notes[quality(s)][(pc + 12 - root(s)) % 12] += weight;
                }
            }
        }

        let moves = moves.map(|by_interval| {
            let flat: [f64; 12 * QUALITIES] =
                std::array::from_fn(|i| by_interval[i / QUALITIES][i % QUALITIES]);
            log_probabilities(&flat)
        });
        let transition: [[f64; STATES]; STATES] = std::array::from_fn(|from| {
            std::array::from_fn(|to| {
                let interval = (root(to) + 12 - root(from)) % 12;
                moves[quality(from)][interval * QUALITIES + quality(to)]
            })
        });
        let least_change_cost = std::array::from_fn(|from: State| {
            let likeliest_change = (0..STATES)
                .filter(|&to| to != from)
                .map(|to| transition[from][to])
                .fold(f64::NEG_INFINITY, f64::max);
            STAY_EDGE - (transition[from][from] - likeliest_change)
        });
        let prior = log_probabilities(&first);
        let lookup = TriadLookup::new(vocab, table);
        Self {
            transition,
            emission: notes.map(|counts| log_probabilities(&counts)),
            initial: std::array::from_fn(|s| prior[quality(s)] - 12f64.ln()),
            least_change_cost,
            chords: std::array::from_fn(|s| lookup.find(root(s) as u8, &TRIADS[quality(s)])),
        }
    }

    /// A chord track (one ChordFrame per melody frame) for `melody`, whose frame 0 is a bar line
    /// and whose bars are `bar` frames long.
    ///
    /// Chords change only on beats; a chord starts ([`ChordFrame::Onset`]) where the decoded
    /// triad changes and is held otherwise. `bar` = 0 means 16 (4/4). All silence if the
    /// vocabulary has none of the triads.
    pub fn harmonize(&self, melody: &[MelodyFrame], bar: usize) -> Vec<ChordFrame> {
        let bar = if bar == 0 { DEFAULT_BAR } else { bar };
        let states: Vec<State> = (0..STATES).filter(|&s| self.chords[s].is_some()).collect();
        let mut beats = melody.chunks(BEAT);
        let Some(first) = beats.next() else {
            return Vec::new();
        };
        if states.is_empty() {
            return vec![ChordFrame::Silence; melody.len()];
        }

        let emission = |histogram: &[f64; 12], s: State| -> f64 {
            let row = &self.emission[quality(s)];
            histogram
                .iter()
                .enumerate()
                .map(|(pc, &weight)| weight * row[(pc + 12 - root(s)) % 12])
                .sum()
        };
        let histogram = beat_histogram(first);
        let mut score: Vec<f64> = states
            .iter()
            .map(|&s| self.initial[s] + emission(&histogram, s))
            .collect();
        // back[t][j]: the index into `states` of the best predecessor of state j at beat t + 1.
        let mut back: Vec<Vec<usize>> = Vec::new();
        for (t, beat) in beats.enumerate() {
            let penalty = CHANGE_PENALTY
                + if strong_beat(t + 1, bar) {
                    0.0
                } else {
                    WEAK_BEAT_PENALTY
                };
            let histogram = beat_histogram(beat);
            let mut pointers = Vec::with_capacity(states.len());
            let next: Vec<f64> = states
                .iter()
                .map(|&to| {
                    let (best, value) =
                        argmax(states.iter().zip(&score).map(|(&from, &previous)| {
                            let change = if from == to {
                                0.0
                            } else {
                                penalty.max(self.least_change_cost[from])
                            };
                            previous + self.transition[from][to] - change
                        }));
                    pointers.push(best);
                    value + emission(&histogram, to)
                })
                .collect();
            back.push(pointers);
            score = next;
        }

        let mut current = argmax(score.iter().copied()).0;
        let mut path = vec![current];
        for pointers in back.iter().rev() {
            current = pointers.get(current).copied().unwrap_or(0);
            path.push(current);
        }
        path.reverse();

        let mut track = Vec::with_capacity(melody.len());
        let mut previous = None;
        for (beat, &j) in melody.chunks(BEAT).zip(&path) {
            let Some(chord) = states.get(j).and_then(|&s| self.chords[s]) else {
                track.extend(std::iter::repeat_n(ChordFrame::Silence, beat.len()));
                previous = None;
                continue;
            };
            for offset in 0..beat.len() {
                track.push(if offset == 0 && previous != Some(chord) {
                    ChordFrame::Onset(chord)
                } else {
                    ChordFrame::Hold(chord)
                });
            }
            previous = Some(chord);
        }
        track
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    use super::*;
    use crate::baselines::diatonic_track;
    use crate::data::{evenly_spaced, Split};
    use crate::metrics::MetricTotals;
    use comper_model::weights::read_chord_names;
    use comper_music::fit::chord_masks;

    const NAMES: [&str; 9] = ["C", "Dm", "Em", "F", "G", "Am", "Bo", "C7", "Cm7"];

    fn setup() -> (Vocabulary, ChordTable) {
        let vocab = Vocabulary::new(NAMES.iter().map(|n| n.to_string()).collect()).unwrap();
        let table = ChordTable::new(&vocab);
        (vocab, table)
    }

    fn index(vocab: &Vocabulary, name: &str) -> ChordIndex {
        vocab.index_of(name).unwrap()
    }

    /// A melody of notes `(pitch, frames)`.
    fn melody(notes: &[(u8, usize)]) -> Vec<MelodyFrame> {
        notes
            .iter()
            .flat_map(|&(pitch, frames)| {
                std::iter::once(MelodyFrame::Onset(pitch))
                    .chain(std::iter::repeat_n(MelodyFrame::Hold(pitch), frames - 1))
            })
            .collect()
    }

    /// C major songs over C/F/G progressions, a chord per bar, the melody four quarter notes per
    /// bar on the chord's tones: root, fifth and twice the third in turning orders (so a lone
    /// root or fifth is no evidence for the chord a fifth away).
    fn training_set(vocab: &Vocabulary) -> Vec<Example> {
        let progressions: [&[&str]; 4] = [
            &["C", "F", "G", "C"],
            &["C", "G", "F", "C"],
            &["F", "G", "C", "C"],
            &["C", "F", "C", "G"],
        ];
        let mut examples = Vec::new();
        for (n, progression) in progressions.iter().cycle().take(24).enumerate() {
            let mut notes = Vec::new();
            let mut chords = Vec::new();
            for (b, name) in progression.iter().enumerate() {
                let root: u8 = match *name {
                    "C" => 60,
                    "F" => 65,
                    _ => 67,
                };
                let tones = [root, root + 4, root + 7, root + 4];
                for beat in 0..4 {
                    notes.push((tones[(n + b + beat) % 4], 4));
                }
                let chord = index(vocab, name);
                chords.push(ChordFrame::Onset(chord));
                chords.extend(std::iter::repeat_n(ChordFrame::Hold(chord), 15));
            }
            examples.push(Example {
                melody: melody(&notes),
                chords,
                bars: vec![0, 16, 32, 48],
            });
        }
        examples
    }

    fn trained() -> (Vocabulary, HmmHarmonizer) {
        let (vocab, table) = setup();
        let examples = training_set(&vocab);
        let hmm = HmmHarmonizer::train(&examples, &vocab, &table);
        (vocab, hmm)
    }

    /// "C E G | F A C | G B D | C E G", each bar a quarter, a half and a quarter note (the third
    /// long: a lone root or fifth fits the chords a fifth away as well).
    fn test_melody() -> Vec<MelodyFrame> {
        melody(&[
            (60, 4),
            (64, 8),
            (67, 4),
            (65, 4),
            (69, 8),
            (72, 4),
            (67, 4),
            (71, 8),
            (74, 4),
            (60, 4),
            (64, 8),
            (67, 4),
        ])
    }

    #[test]
    fn chords_reduce_to_root_and_triad_quality() {
        let (vocab, table) = setup();
        let reduced = |name: &str| table.tones(index(&vocab, name)).and_then(reduce);
        assert_eq!(reduced("C"), Some(state(0, 0)));
        assert_eq!(reduced("C7"), Some(state(0, 0)));
        assert_eq!(reduced("Dm"), Some(state(2, 1)));
        assert_eq!(reduced("Cm7"), Some(state(0, 1)));
        assert_eq!(reduced("Bo"), Some(state(11, 2)));
    }

    #[test]
    fn learns_c_f_g_and_harmonizes_a_tune_bar_by_bar() {
        let (vocab, hmm) = trained();
        let track = hmm.harmonize(&test_melody(), 16);
        assert_eq!(track.len(), 64);
        let by_bar: Vec<Option<ChordIndex>> = track.chunks(16).map(|b| b[0].chord()).collect();
        let expected: Vec<Option<ChordIndex>> = ["C", "F", "G", "C"]
            .iter()
            .map(|n| Some(index(&vocab, n)))
            .collect();
        assert_eq!(by_bar, expected);
        for bar in track.chunks(16) {
            assert!(bar.iter().all(|c| c.chord() == bar[0].chord()), "{track:?}");
        }
    }

    #[test]
    fn onsets_fall_exactly_where_the_chord_changes() {
        let (_, hmm) = trained();
        let melody = test_melody();
        for frames in [1, 5, 37, 64] {
            let track = hmm.harmonize(&melody[..frames], 16);
            assert_eq!(track.len(), frames);
            assert!(matches!(track[0], ChordFrame::Onset(_)));
            for (i, pair) in track.windows(2).enumerate() {
                let changes = pair[0].chord() != pair[1].chord();
                match pair[1] {
                    ChordFrame::Onset(_) => assert!(changes && (i + 1).is_multiple_of(BEAT)),
                    ChordFrame::Hold(_) => assert!(!changes),
                    ChordFrame::Silence => panic!("silence in {track:?}"),
                }
            }
        }
    }

    #[test]
    fn empty_melody_and_zero_bar_length_do_not_panic() {
        let (_, hmm) = trained();
        assert!(hmm.harmonize(&[], 16).is_empty());
        assert!(hmm.harmonize(&[], 0).is_empty());
        let melody = test_melody();
        assert_eq!(hmm.harmonize(&melody, 0), hmm.harmonize(&melody, 16));
        let silent = vec![MelodyFrame::Silence; 20];
        let track = hmm.harmonize(&silent, 7);
        assert_eq!(track.len(), 20);
        assert!(track[1..].iter().all(|c| matches!(c, ChordFrame::Hold(_))));
    }

    #[test]
    fn a_silent_stretch_holds_its_chord() {
        let (_, hmm) = trained();
        let mut melody = test_melody();
        melody.truncate(16);
        melody.resize(160, MelodyFrame::Silence);
        let track = hmm.harmonize(&melody, 16);
        assert!(track[1..].iter().all(|c| matches!(c, ChordFrame::Hold(_))));
    }

    #[test]
    fn untrained_or_triadless_models_still_answer() {
        let (vocab, table) = setup();
        let hmm = HmmHarmonizer::train(&[], &vocab, &table);
        assert_eq!(hmm.harmonize(&test_melody(), 16).len(), 64);
        let sevenths = Vocabulary::new(vec!["C7".into(), "Cm7".into()]).unwrap();
        let table = ChordTable::new(&sevenths);
        let hmm = HmmHarmonizer::train(&training_set(&vocab), &sevenths, &table);
        assert_eq!(
            hmm.harmonize(&test_melody(), 16),
            vec![ChordFrame::Silence; 64]
        );
    }

    /// Per-system totals of the measurement on the converted data.
    #[derive(Default)]
    struct Measured {
        frames: MetricTotals,
        /// (beats whose ground-truth triad the system plays, beats with a ground-truth triad)
        agreement: (u64, u64),
        /// (triad changes on bar lines or half bars, triad changes after the first beat)
        strong: (u64, u64),
        /// Triad changes, the first beat counted as one.
        triad_changes: u64,
    }

    impl Measured {
        fn add(&mut self, example: &Example, chords: &[ChordFrame], table: &ChordTable) {
            self.frames
                .add(&example.melody, chords, &chord_masks(table));
            let bar = bar_length(example);
            let truth: Vec<_> = example
                .chords
                .chunks(BEAT)
                .map(|b| beat_state(b, table))
                .collect();
            let ours: Vec<_> = chords.chunks(BEAT).map(|b| beat_state(b, table)).collect();
            for (t, (s, o)) in truth.iter().zip(&ours).enumerate() {
                if s.is_some() {
                    self.agreement.1 += 1;
                    self.agreement.0 += u64::from(s == o);
                }
                let changed = t == 0 || ours.get(t - 1) != Some(o);
                self.triad_changes += u64::from(changed);
                if changed && t > 0 {
                    self.strong.1 += 1;
                    self.strong.0 += u64::from(strong_beat(t, bar));
                }
            }
        }

        fn report(&self, name: &str) {
            let m = self.frames.finish();
            let share = |(a, b): (u64, u64)| 100.0 * a as f64 / b.max(1) as f64;
            eprintln!(
                "| {name} | {:.1}% | {:.1}% | {:.2} | {:.2} | {:.1}% |",
                100.0 * m.note_in_chord,
                share(self.agreement),
                m.changes_per_bar,
                self.triad_changes as f64 * 16.0 / m.frames.max(1) as f64,
                share(self.strong),
            );
        }
    }

    /// The example's bar length in frames: the distance of its first two bar lines (16 without).
    fn bar_length(example: &Example) -> usize {
        example
            .bars
            .windows(2)
            .next()
            .map(|w| w[1].saturating_sub(w[0]))
            .filter(|&frames| frames > 0)
            .unwrap_or(DEFAULT_BAR)
    }

    /// The baseline's numbers on the converted data: trains on 4000 evenly spaced training
    /// examples, then measures 300 evenly spaced examples of the validation split (where the
    /// constants were tuned) and of the test split. Run with
    /// `COMPER_DATA=<folder> cargo test -p comper-eval --lib hmm -- --ignored --nocapture`
    /// (default folder `training/data`).
    #[test]
    #[ignore = "needs the converted data of training/convert.py"]
    fn measure_on_the_converted_data() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::var_os("COMPER_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../training/data"));
        let vocab = read_chord_names(&dir.join("chord_names.json"))?;
        let table = ChordTable::new(&vocab);
        let train = Split::read(&dir.join("train.npz"))?;
        let examples = evenly_spaced(train.len(), 4000)
            .into_iter()
            .map(|i| train.example(i, &vocab))
            .collect::<Result<Vec<_>, _>>()?;
        let timer = Instant::now();
        let hmm = HmmHarmonizer::train(&examples, &vocab, &table);
        eprintln!(
            "trained on {} examples in {:.3} s",
            examples.len(),
            timer.elapsed().as_secs_f64()
        );
        let lookup = TriadLookup::new(&vocab, &table);
        for file in ["valid.npz", "test.npz"] {
            let split = Split::read(&dir.join(file))?;
            let mut truth = Measured::default();
            let mut decoded = Measured::default();
            let mut diatonic = Measured::default();
            let timer = Instant::now();
            for i in evenly_spaced(split.len(), 300) {
                let example = split.example(i, &vocab)?;
                let track = hmm.harmonize(&example.melody, bar_length(&example));
                assert_eq!(track.len(), example.len());
                truth.add(&example, &example.chords, &table);
                decoded.add(&example, &track, &table);
                let track = diatonic_track(&example.melody, &example.bars, &lookup);
                diatonic.add(&example, &track, &table);
            }
            eprintln!(
                "\n{file}, 300 examples, decoded in {:.2} s\n\n| system | note-in-chord | triad agreement / beat | changes / bar | triad changes / bar | changes on bar lines or half bars |\n|---|---:|---:|---:|---:|---:|",
                timer.elapsed().as_secs_f64()
            );
            truth.report("ground truth");
            decoded.report("HMM");
            diatonic.report("diatonic heuristic");
        }
        Ok(())
    }

    #[test]
    fn strong_beats_are_bar_lines_and_half_bars() {
        let strong: Vec<usize> = (0..8).filter(|&b| strong_beat(b, 16)).collect();
        assert_eq!(strong, [0, 2, 4, 6]);
        let strong: Vec<usize> = (0..6).filter(|&b| strong_beat(b, 12)).collect();
        assert_eq!(strong, [0, 3]);
    }
}
