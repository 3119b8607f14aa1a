//! "Five options": turn a captured melody into several named chord progressions. The CLI's
//! `comper suggest` and the plugin's Suggest mode share this, so both prepare the phrase, sample
//! and name chords the same way, with the offline encoder–decoder (which hears the whole phrase)
//! when one is loaded and the online decoder otherwise.

use rand::Rng;

use crate::sample::{
    generate_offline_options, generate_options, ChordOption, OptionsRequest, SampleError,
    SamplingParams,
};
use comper_model::weights::AnyModel;
use comper_model::{LoadedModel, LoadedOffline, ModelKind};
use comper_music::chord::ChordTable;
use comper_music::fit::{chord_masks, melody_fit};
use comper_music::harmony::critic::{
    self, beat_triads, critique, select_diverse, ChordSounds, Critique,
};
use comper_music::harmony::describe::describe;
use comper_music::harmony::guide::{GuideContext, ONLINE_MODEL_SCALE};
use comper_music::harmony::meter::Meter;
use comper_music::harmony::{melody_key, ChordGuide, GuideSettings, Key};
use comper_music::progression::{name_chords, NamedChord};
use comper_music::tokens::Vocabulary;
use comper_realtime::frames::Note;
use comper_realtime::frames::TimeSignature;
use comper_realtime::frames::{ChordFrame, MelodyFrame, FRAMES_PER_BEAT};
use comper_realtime::quantize::quantize_notes;

/// Resampling passes allowed to replace options that duplicate another.
pub const DUPLICATE_RETRIES: usize = 8;

/// Candidates the online model samples per option offered. It must guess each chord before it
/// hears the melody note it goes with, so some samples settle on a key that fights the tune;
/// sampling many and offering the best the critic finds, each different from the others, keeps
/// the model's style and drops the misfits.
pub const CANDIDATES_PER_OPTION: usize = 6;

/// Candidates the offline model samples per option offered (it is the cheaper of the two per
/// candidate: the melody is encoded once for the whole batch).
pub const OFFLINE_CANDIDATES_PER_OPTION: usize = 8;

/// The network that harmonizes a phrase: either kind of loaded model.
#[derive(Clone, Copy)]
pub enum Harmonizer<'a> {
    Online(&'a LoadedModel),
    Offline(&'a LoadedOffline),
}

impl<'a> Harmonizer<'a> {
    /// The model's chord vocabulary.
    pub fn vocabulary(&self) -> &'a Vocabulary {
        match self {
            Self::Online(model) => &model.vocabulary,
            Self::Offline(model) => &model.vocabulary,
        }
    }

    /// The longest phrase (in frames) the model takes.
    pub fn max_frames(&self) -> usize {
        match self {
            Self::Online(model) => model.config.max_frames(),
            Self::Offline(model) => model.config.max_frames(),
        }
    }

    /// The model's `config.json` name.
    pub fn name(&self) -> &'a str {
        match self {
            Self::Online(model) => &model.config.name,
            Self::Offline(model) => &model.config.base.name,
        }
    }

    /// Which kind of model this is.
    pub fn kind(&self) -> ModelKind {
        match self {
            Self::Online(_) => ModelKind::Online,
            Self::Offline(_) => ModelKind::Offline,
        }
    }

    /// Candidates sampled per option offered.
    pub fn candidates_per_option(&self) -> usize {
        match self {
            Self::Online(_) => CANDIDATES_PER_OPTION,
            Self::Offline(_) => OFFLINE_CANDIDATES_PER_OPTION,
        }
    }
}

impl<'a> From<&'a AnyModel> for Harmonizer<'a> {
    fn from(model: &'a AnyModel) -> Self {
        match model {
            AnyModel::Online(model) => Self::Online(model),
            AnyModel::Offline(model) => Self::Offline(model),
        }
    }
}

/// A melody phrase ready for the model: whole bars of 16th-note frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Phrase {
    /// One frame per 16th note, padded with silence to a whole number of bars.
    pub melody: Vec<MelodyFrame>,
    pub time_signature: TimeSignature,
    /// Bars cut from the end because the model's context could not hold them.
    pub truncated_bars: usize,
}

impl Phrase {
    /// Quantizes `notes` (beats from the phrase start), pads to whole bars and keeps at most
    /// `max_frames` frames, cutting at a bar line.
    pub fn from_notes(notes: &[Note], time_signature: TimeSignature, max_frames: usize) -> Self {
        let mut melody = quantize_notes(notes);
        let bar = frames_per_bar(time_signature);
        let bars = melody.len().div_ceil(bar).max(1);
        melody.resize(bars * bar, MelodyFrame::Silence);
        let keep_bars = (max_frames / bar).max(1).min(bars);
        melody.truncate((keep_bars * bar).min(max_frames));
        Self {
            melody,
            time_signature,
            truncated_bars: bars - keep_bars,
        }
    }

    /// Length in beats.
    pub fn beats(&self) -> f64 {
        self.melody.len() as f64 / FRAMES_PER_BEAT as f64
    }
}

/// Frames in one bar of `time_signature` (at least one).
pub fn frames_per_bar(time_signature: TimeSignature) -> usize {
    ((time_signature.beats_per_bar() * FRAMES_PER_BEAT as f64).round() as usize).max(1)
}

/// One suggested progression.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// One chord frame per melody frame.
    pub frames: Vec<ChordFrame>,
    /// The same progression as named chords with beat spans.
    pub chords: Vec<NamedChord>,
    /// The model's log-likelihood of the sampled chords (see [`crate::sample::ChordOption`]).
    pub log_likelihood: f64,
    /// Share of sounding melody frames whose pitch class is in the chord (0 when the melody is
    /// silent): how well the progression fits the tune.
    pub melody_fit: f64,
    /// What the critic heard (fit, key, rhythm, cadence, likelihood) and its total.
    pub critique: Critique,
    /// A short musical description: Roman numerals in the melody's key, pace, colour.
    pub description: String,
}

/// Samples [`Harmonizer::candidates_per_option`] × `count` progressions for `phrase` in one
/// batched pass, each chord choice leaned toward the melody by `guide`, and offers the `count`
/// the critic ranks best that differ from each other in function ([`select_diverse`]), each
/// with a description. The online model first hears the phrase once (see [`listen_frames`]); the
/// offline model encodes it whole. `locked` is empty or has one entry per melody frame; `Some`
/// chords are kept as given.
pub fn suggest<R: Rng + Send>(
    model: Harmonizer,
    phrase: &Phrase,
    locked: &[Option<ChordFrame>],
    count: usize,
    params: &SamplingParams,
    guide: &GuideSettings,
    rng: &mut R,
) -> Result<Vec<Suggestion>, SampleError> {
    params.validate()?;
    let candidates = count.saturating_mul(model.candidates_per_option());
    let vocabulary = model.vocabulary();
    let table = ChordTable::new(vocabulary);
    let meter = Meter::new(phrase.time_signature);
    let key = melody_key(&phrase.melody);
    let last_bar = last_bar_start(&phrase.melody, meter.bar);
    let sample = |params: &SamplingParams,
                  guide: &GuideSettings,
                  rng: &mut R|
     -> Result<Vec<ChordOption>, SampleError> {
        match model {
            Harmonizer::Online(online) => sample_online(
                online,
                phrase,
                locked,
                candidates,
                params,
                &guide.scaled(ONLINE_MODEL_SCALE),
                key,
                last_bar,
                rng,
            ),
            Harmonizer::Offline(offline) => {
                let context = GuideContext {
                    melody: &phrase.melody,
                    meter,
                    phase: 0,
                    key,
                    frames: 0..phrase.melody.len(),
                    last_bar,
                    heard: None,
                };
                let chord_guide = ChordGuide::new(&context, vocabulary, &table, guide);
                let request = OptionsRequest {
                    melody: &phrase.melody,
                    locked,
                    count: candidates,
                    max_retries: DUPLICATE_RETRIES,
                    guide: (!guide.is_off()).then_some(&chord_guide),
                };
                generate_offline_options(&offline.model, &offline.vocabulary, &request, params, rng)
            }
        }
    };
    let sounds = ChordSounds::new(&table);
    let mut options = sample(params, guide, rng)?;
    // A melody the guide holds tightly can make most candidates the same idea; then more are
    // sampled, hotter and less guided, until there are enough different ones to offer.
    let (mut hotter, mut looser) = (*params, *guide);
    for _ in 0..WIDENING_PASSES {
        if distinct_ideas(&options, &sounds) >= count || params.is_greedy() {
            break;
        }
        hotter.temperature = (hotter.temperature * 1.3).min(1.5);
        looser = looser.scaled(0.6);
        options.extend(sample(&hotter, &looser, rng)?);
    }
    let masks = chord_masks(&table);
    let judged = critic::Phrase {
        melody: &phrase.melody,
        meter,
        key,
        last_bar,
    };
    let critiques: Vec<Critique> = options
        .iter()
        .map(|o| critique(&judged, &o.chords, o.log_likelihood, &sounds))
        .collect();
    let scores: Vec<f64> = critiques.iter().map(|c| c.score).collect();
    let beats: Vec<_> = options
        .iter()
        .map(|o| beat_triads(&o.chords, &sounds))
        .collect();
    let chosen = select_diverse(&scores, &beats, count);
    Ok(chosen
        .into_iter()
        .filter_map(|i| {
            let option = options.get(i)?;
            Some(Suggestion {
                chords: name_chords(&option.chords, vocabulary),
                melody_fit: melody_fit(&phrase.melody, &option.chords, &masks),
                description: describe(&option.chords, key, meter, &sounds),
                critique: critiques[i],
                frames: option.chords.clone(),
                log_likelihood: option.log_likelihood,
            })
        })
        .collect())
}

/// Extra, hotter and less guided sampling passes allowed when the candidates hold fewer
/// different progressions than options asked for.
pub const WIDENING_PASSES: usize = 2;

/// How many different progressions (beat-by-beat triads) `options` hold.
fn distinct_ideas(options: &[ChordOption], sounds: &ChordSounds) -> usize {
    options
        .iter()
        .map(|o| beat_triads(&o.chords, sounds))
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// The frame where the bar of the melody's last note onset starts: the bar a cadence lands in.
pub fn last_bar_start(melody: &[MelodyFrame], bar: usize) -> Option<usize> {
    let last = melody
        .iter()
        .rposition(|f| matches!(f, MelodyFrame::Onset(_)))?;
    Some(last / bar.max(1) * bar.max(1))
}

/// Fewest chord changes per bar, on average, of a progression offered ahead of static ones. One
/// chord held under a whole phrase fits a diatonic tune well note by note, and both models find it
/// likely, so ranking by fit alone would offer it first; a musician wants harmony that moves.
pub const MIN_CHANGES_PER_BAR: f64 = 0.5;

/// True if `chords` changes chord at least [`MIN_CHANGES_PER_BAR`] times per bar of `bar` frames.
pub fn is_lively(chords: &[ChordFrame], bar: usize) -> bool {
    let onsets = chords
        .iter()
        .filter(|c| matches!(c, ChordFrame::Onset(_)))
        .count();
    let bars = (chords.len() as f64 / bar.max(1) as f64).max(1.0);
    onsets as f64 / bars >= MIN_CHANGES_PER_BAR
}

/// The online model's options for `phrase`, with the chords of the listening pass cut off.
#[allow(clippy::too_many_arguments)]
fn sample_online<R: Rng + Send>(
    model: &LoadedModel,
    phrase: &Phrase,
    locked: &[Option<ChordFrame>],
    count: usize,
    params: &SamplingParams,
    guide: &GuideSettings,
    key: Key,
    last_bar: Option<usize>,
    rng: &mut R,
) -> Result<Vec<ChordOption>, SampleError> {
    let frames = phrase.melody.len();
    let prefix = listen_frames(
        frames,
        model.config.max_frames(),
        frames_per_bar(phrase.time_signature),
    );
    // The model plays along with the end of the phrase first (as if it had looped once), and only
    // what it plays on the second time round is offered: an online model must otherwise guess
    // the key of its first chord before hearing a single note, and keeps whatever key it guessed.
    let tail = phrase.melody.get(frames - prefix..).unwrap_or_default();
    let melody: Vec<MelodyFrame> = tail.iter().chain(&phrase.melody).copied().collect();
    let mut forced: Vec<Option<ChordFrame>> = vec![None; prefix];
    if locked.is_empty() {
        forced.resize(prefix + frames, None);
    } else {
        forced.extend_from_slice(locked);
    }
    // The listening pass is guided too, so the chord history the model goes on from is in key.
    let table = ChordTable::new(&model.vocabulary);
    let context = GuideContext {
        melody: &melody,
        meter: Meter::new(phrase.time_signature),
        phase: 0,
        key,
        frames: 0..melody.len(),
        last_bar: last_bar.map(|bar| bar + prefix),
        heard: None,
    };
    let chord_guide = ChordGuide::new(&context, &model.vocabulary, &table, guide);
    let request = OptionsRequest {
        melody: &melody,
        locked: &forced,
        count,
        max_retries: DUPLICATE_RETRIES,
        guide: (!guide.is_off()).then_some(&chord_guide),
    };
    let mut options = generate_options(&model.decoder, &model.vocabulary, &request, params, rng)?;
    for option in &mut options {
        option.chords.drain(..prefix.min(option.chords.len()));
    }
    Ok(options)
}

/// How many frames of a `frames`-long phrase the model hears before accompanying it: the whole
/// phrase when the context holds it twice, else as many whole bars as fit.
pub fn listen_frames(frames: usize, max_frames: usize, bar: usize) -> usize {
    let room = max_frames.saturating_sub(frames).min(frames);
    room / bar.max(1) * bar.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(pitch: u8, onset_beat: f64, offset_beat: f64) -> Note {
        Note {
            pitch,
            onset_beat,
            offset_beat,
        }
    }

    #[test]
    fn phrase_is_padded_to_whole_bars() {
        let phrase = Phrase::from_notes(
            &[note(60, 0.0, 1.0), note(62, 4.0, 5.0)],
            TimeSignature::default(),
            256,
        );
        assert_eq!(phrase.melody.len(), 32);
        assert_eq!(phrase.melody[0], MelodyFrame::Onset(60));
        assert_eq!(phrase.melody[16], MelodyFrame::Onset(62));
        assert_eq!(phrase.truncated_bars, 0);
        let waltz = TimeSignature {
            numerator: 3,
            denominator: 4,
        };
        assert_eq!(
            Phrase::from_notes(&[note(60, 0.0, 1.0)], waltz, 256)
                .melody
                .len(),
            12
        );
    }

    #[test]
    fn long_phrases_are_cut_at_a_bar_line() {
        let notes: Vec<Note> = (0..80)
            .map(|i| note(60 + (i % 12) as u8, i as f64, i as f64 + 0.5))
            .collect();
        let phrase = Phrase::from_notes(&notes, TimeSignature::default(), 254);
        assert_eq!(phrase.melody.len(), 240, "15 whole bars fit in 254 frames");
        assert_eq!(phrase.truncated_bars, 5);
    }

    #[test]
    fn the_model_hears_whole_bars_of_the_phrase_first_when_they_fit() {
        assert_eq!(listen_frames(64, 255, 16), 64);
        assert_eq!(listen_frames(160, 255, 16), 80);
        assert_eq!(listen_frames(256, 255, 16), 0);
        assert_eq!(listen_frames(12, 255, 0), 12);
    }

    #[test]
    fn one_chord_held_for_bars_is_static() {
        let held = |bars: usize| -> Vec<ChordFrame> {
            let mut chords = vec![ChordFrame::Hold(0); bars * 16];
            chords[0] = ChordFrame::Onset(0);
            chords
        };
        assert!(is_lively(&held(1), 16));
        assert!(is_lively(&held(2), 16));
        assert!(!is_lively(&held(4), 16));
        let mut moving = held(4);
        moving[16] = ChordFrame::Onset(3);
        assert!(is_lively(&moving, 16), "two chords in four bars");
        assert!(!is_lively(&vec![ChordFrame::Silence; 64], 16));
    }

    #[test]
    fn an_empty_melody_is_one_silent_bar() {
        let phrase = Phrase::from_notes(&[], TimeSignature::default(), 256);
        assert_eq!(phrase.melody, vec![MelodyFrame::Silence; 16]);
    }
}
