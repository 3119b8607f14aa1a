//! The inference-thread side of a live session: quantizer outputs in, voiced chord plans out.

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{IntroMode, LiveConfig, LiveError};
use crate::sample::{
    generate_offline_options, generate_options, LivePlanner, LiveRequest, OptionsRequest,
    SamplingParams,
};
use comper_model::{Decoder, LoadedModel, LoadedOffline, OfflineModel};
use comper_music::chord::{plain_voicing, voice_led, ChordTable, Voicing};
use comper_music::harmony::critic::{critique, ChordSounds, Phrase};
use comper_music::harmony::guide::{GuideContext, ONLINE_MODEL_SCALE};
use comper_music::harmony::loops::expected_triads;
use comper_music::harmony::meter::Meter;
use comper_music::harmony::{melody_key, ChordGuide, GuideSettings, Triad};
use comper_music::progression::VoicingStyle;
use comper_music::tokens::Vocabulary;
use comper_realtime::frames::TimeSignature;
use comper_realtime::frames::{ChordFrame, MelodyFrame, FRAMES_PER_BEAT};
use comper_realtime::quantize::{PhraseId, QuantizerOutput};
use comper_realtime::schedule::{PlanUpdate, PlannedFrame, Voiced};

/// How far the context window jumps when the history outgrows the model (four bars of 4/4; at
/// most half the context). ReaLJam slides it by one frame per re-plan, which changes every
/// position and forces the whole context through the decoder each time; jumping keeps the context
/// a stable prefix between jumps, so [`LivePlanner`] only pushes the new frames and the plan. The
/// cost is a context up to this much shorter than the model's maximum.
const CONTEXT_HOP_FRAMES: usize = 64;

/// One phrase's history, in frames counted from the phrase's first frame.
struct Session {
    phrase: PhraseId,
    first_frame: i64,
    time_signature: TimeSignature,
    /// What the player played, as final quantizer frames.
    melody: Vec<MelodyFrame>,
    /// Chords of the heard frames (the model's context) followed by the latest plan.
    chords: Vec<ChordFrame>,
    /// The pitches of each entry of `chords`.
    voicings: Vec<Voiced>,
    /// Frames before this index are fixed.
    committed_until: usize,
    /// Melody length the latest plan was made for.
    planned_for: Option<usize>,
    intro_done: bool,
    /// The chords the heard melody calls for, judged after the fact, from the phrase's first
    /// frame to its last bar line: the decoder's context and what a repeating progression is
    /// expected to bring back ([`comper_music::harmony::loops`]).
    hindsight: Vec<ChordFrame>,
}

impl Session {
    fn new(
        phrase: PhraseId,
        first_frame: i64,
        time_signature: TimeSignature,
        melody: Vec<MelodyFrame>,
    ) -> Self {
        Self {
            phrase,
            first_frame,
            time_signature,
            melody,
            chords: Vec::new(),
            voicings: Vec::new(),
            committed_until: 0,
            planned_for: None,
            intro_done: false,
            hindsight: Vec::new(),
        }
    }

    fn meter(&self) -> Meter {
        Meter::new(self.time_signature)
    }

    /// Frames frame 0 lies after a bar line.
    fn phase(&self) -> usize {
        self.first_frame.rem_euclid(self.meter().bar as i64) as usize
    }

    /// The frame of the last bar line at or before the end of the heard melody.
    fn last_bar_line(&self) -> usize {
        let bar = self.meter().bar;
        let phase = self.phase();
        ((self.melody.len() + phase) / bar * bar).saturating_sub(phase)
    }
}

/// Re-plans the chords ahead of the player after every frame; see the module docs of
/// [`crate::live`] for the loop. Works on borrowed model data; one engine per decoder.
pub struct LiveEngine<'m> {
    models: SessionModels<'m>,
    config: LiveConfig,
    params: SamplingParams,
    rng: StdRng,
    planner: LivePlanner,
    session: Option<Session>,
    /// Plan storage handed back by the audio side, reused for the next plans.
    spare: Vec<PlanUpdate>,
    /// The last client's heard melody up to its last bar line and the hindsight reading of it
    /// ([`LiveEngine::plan_for_client`] sees the whole session again on every request; the
    /// reading only changes when a bar line passes).
    client_hindsight: Option<(Vec<MelodyFrame>, Vec<ChordFrame>)>,
}

impl<'m> LiveEngine<'m> {
    /// An engine with no session; checks `config` against the model.
    pub fn new(
        decoder: &'m Decoder,
        vocab: &'m Vocabulary,
        config: LiveConfig,
    ) -> Result<Self, LiveError> {
        config.validate()?;
        let max = decoder.config().max_frames();
        if config.lookahead_frames() >= max {
            return Err(LiveError::LookaheadTooLong {
                lookahead: config.lookahead_frames(),
                max,
            });
        }
        let params = SamplingParams {
            temperature: config.temperature,
            change_grid: config.change_grid,
            ..SamplingParams::default()
        };
        let table = ChordTable::new(vocab);
        Ok(Self {
            models: SessionModels {
                decoder,
                offline: None,
                vocab,
                sounds: ChordSounds::new(&table),
                table,
                guide: config.guide,
            },
            config,
            params,
            rng: StdRng::seed_from_u64(config.seed),
            planner: LivePlanner::with_window_hop(
                CONTEXT_HOP_FRAMES.min((max - config.lookahead_frames()) / 2),
            ),
            session: None,
            spare: Vec::new(),
            client_hindsight: None,
        })
    }

    /// An engine planning with `online` whose intro `offline` samples when given (see
    /// [`LiveEngine::new`], [`LiveEngine::with_intro_model`]).
    pub fn for_models(
        online: &'m LoadedModel,
        offline: Option<&'m LoadedOffline>,
        config: LiveConfig,
    ) -> Result<Self, LiveError> {
        let engine = Self::new(&online.decoder, &online.vocabulary, config)?;
        match offline {
            Some(offline) => engine.with_intro_model(&offline.model, &offline.vocabulary),
            None => Ok(engine),
        }
    }

    /// Lets the offline model sample the intro ([`IntroMode::Sampled`]), as ReaLJam does: it hears
    /// the whole melody of the listening period before choosing chords for it. It must use the
    /// decoder's vocabulary.
    pub fn with_intro_model(
        mut self,
        model: &'m OfflineModel,
        vocab: &Vocabulary,
    ) -> Result<Self, LiveError> {
        if vocab != self.models.vocab {
            return Err(LiveError::BadConfig(
                "the offline model's chord names differ from the online model's".into(),
            ));
        }
        self.models.offline = Some(model);
        Ok(self)
    }

    /// The session settings.
    pub fn config(&self) -> &LiveConfig {
        &self.config
    }

    /// Takes one quantizer output: a phrase start begins a session, a phrase end ends it, frames
    /// extend the heard melody. Cheap; the model runs in [`LiveEngine::replan`].
    ///
    /// Each session samples from a generator seeded afresh with the configured seed, so a phrase
    /// played again (an offline bounce of what was heard live, a second render) gets the same
    /// chords.
    pub fn push(&mut self, output: &QuantizerOutput) {
        match *output {
            QuantizerOutput::PhraseStart {
                phrase,
                first_frame,
                time_signature,
                ..
            } => {
                self.rng = StdRng::seed_from_u64(self.config.seed);
                self.session = Some(Session::new(
                    phrase,
                    first_frame,
                    time_signature,
                    Vec::new(),
                ));
            }
            QuantizerOutput::Frame {
                phrase,
                index,
                frame,
            } => {
                let Some(session) = self.session.as_mut().filter(|s| s.phrase == phrase) else {
                    return;
                };
                let Ok(relative) = usize::try_from(index.saturating_sub(session.first_frame))
                else {
                    return;
                };
                if relative < session.melody.len() {
                    return;
                }
                // Frames never arrive out of order, but a gap would be heard as silence.
                session.melody.resize(relative, MelodyFrame::Silence);
                session.melody.push(frame);
            }
            QuantizerOutput::PhraseEnd { phrase, .. } => {
                if self.session.as_ref().is_some_and(|s| s.phrase == phrase) {
                    self.session = None;
                }
            }
        }
    }

    /// Gives plan storage back for reuse (the audio side returns every plan it is done with).
    pub fn recycle(&mut self, plan: PlanUpdate) {
        self.spare.push(plan);
    }

    /// The running session's chord track in frames from the phrase start: the context of the
    /// heard frames, then the latest plan. Empty without a session.
    pub fn session_chords(&self) -> &[ChordFrame] {
        self.session.as_ref().map_or(&[], |s| &s.chords)
    }

    /// Plans the frames ahead if the melody grew since the last plan and the listening period is
    /// (nearly) over; `None` when there is nothing new to plan. The plan covers the frames from
    /// the first unheard one (or the end of the listening period) to `lookahead` frames after the
    /// first unheard one.
    pub fn replan(&mut self) -> Result<Option<PlanUpdate>, LiveError> {
        let listen = self.config.listen_frames();
        let lookahead = self.config.lookahead_frames();
        let commit_window = self.config.commit_frames();
        let Some(session) = self.session.as_mut() else {
            return Ok(None);
        };
        let heard = session.melody.len();
        // ReaLJam plans `min(L, 4)` frames before the listening ends (its network round trip);
        // starting `commit` frames before gives the first plan, which also samples the intro, the
        // same slack as every later one.
        let first_plan_at = listen.saturating_sub(commit_window).max(1);
        if heard < first_plan_at || session.planned_for == Some(heard) {
            return Ok(None);
        }
        let models = &self.models;
        if !session.intro_done {
            models.fill_intro(session, self.config.intro, listen, &mut self.rng)?;
        }
        if heard >= listen {
            models.update_hindsight(session, self.params.change_grid, &mut self.rng)?;
        }
        let guide = models.session_guide(session, heard..heard + lookahead, ONLINE_MODEL_SCALE);
        if session.chords.len() < heard {
            session.chords.resize(heard, ChordFrame::Silence);
            session.voicings.resize(heard, Voiced::default());
        }
        let commit = session
            .committed_until
            .saturating_sub(heard)
            .min(lookahead)
            .min(session.chords.len() - heard);
        let context = model_context(&session.hindsight, &session.chords, heard + commit);
        let (heard_context, committed) = context.split_at(heard);
        let request = LiveRequest {
            beat_phase: session.first_frame.rem_euclid(FRAMES_PER_BEAT as i64) as usize,
            melody: session.melody.get(..heard).unwrap_or_default(),
            chords: heard_context,
            committed,
            lookahead,
            guide: guide.as_ref(),
        };
        let plan = self.planner.plan(
            models.decoder,
            models.vocab,
            &request,
            &self.params,
            &mut self.rng,
        )?;

        session.chords.truncate(heard + commit);
        session.voicings.truncate(heard + commit);
        for &chord in plan.chords.iter().skip(commit) {
            let voiced = voice_frame(
                &models.table,
                self.config.voicing,
                self.config.range,
                &session.chords,
                &session.voicings,
                chord,
            );
            session.chords.push(chord);
            session.voicings.push(voiced);
        }
        session.committed_until = session.committed_until.max(heard + commit_window);
        session.planned_for = Some(heard);

        let from = heard.max(listen);
        let mut update = self.spare.pop().unwrap_or_default();
        update.phrase = session.phrase;
        update.first_frame = session.first_frame.saturating_add(from as i64);
        update.replan_ms = 0.0;
        update.frames.clear();
        let planned = session.chords.iter().zip(&session.voicings).enumerate();
        update.frames.extend(
            planned
                .skip(from)
                .map(|(frame, (&chord, &voicing))| PlannedFrame {
                    chord,
                    committed: frame < session.committed_until,
                    voicing,
                }),
        );
        Ok(Some(update))
    }
}

/// One request of a client that keeps the session itself and sends all of it every time
/// (ReaLJam's web page and its `/play` protocol): the engine keeps nothing between such requests
/// but its sampler and decoder cache. Lengths are in frames.
#[derive(Debug, Clone, Copy)]
pub struct ClientTurn<'a> {
    /// What the player played, frames `0 .. frame` where `frame` is the first one to plan.
    pub melody: &'a [MelodyFrame],
    /// The client's chord track: its context for the heard frames, then its latest plan.
    pub chords: &'a [ChordFrame],
    /// Frames to plan from `frame` on.
    pub lookahead: usize,
    /// Frames of the client's latest plan that stay as they are (ReaLJam's `commitahead`).
    pub commitahead: usize,
    /// Frames listened to before Comper plays (ReaLJam's `silenceTill`).
    pub listen: usize,
    /// Whether the client already holds chords for the listening period (else they are sampled,
    /// ReaLJam's intro, and sent back).
    pub intro_set: bool,
    pub temperature: f32,
}

/// The answer to a [`ClientTurn`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClientPlan {
    /// `lookahead` chords from the turn's frame on, the still-committed ones first.
    pub chords: Vec<ChordFrame>,
    /// Chords for frames `0 .. frame` when the turn asked for the intro.
    pub intro: Option<Vec<ChordFrame>>,
}

impl LiveEngine<'_> {
    /// Plans for a stateless client with ReaLJam's semantics: nothing before `listen − min(lookahead,
    /// 4)` frames (`None`), the intro sampled when the client has none, the chords the client
    /// planned for the next `commitahead − (frames since that plan)` frames kept, the rest of the
    /// lookahead sampled, guided by the melody heard as in a session of this engine's own.
    pub fn plan_for_client(&mut self, turn: &ClientTurn) -> Result<Option<ClientPlan>, LiveError> {
        let frame = turn.melody.len();
        let lookahead = turn.lookahead;
        let max = self.models.decoder.config().max_frames();
        if lookahead == 0 || turn.commitahead > lookahead {
            return Err(LiveError::BadConfig(format!(
                "commitahead {} must be at most lookahead {lookahead}, which must be at least 1",
                turn.commitahead
            )));
        }
        if lookahead >= max {
            return Err(LiveError::LookaheadTooLong { lookahead, max });
        }
        if frame == 0
            || frame
                < turn
                    .listen
                    .saturating_sub(lookahead.min(FRAMES_PER_BEAT as usize))
        {
            return Ok(None);
        }
        let mut session = Session::new(0, 0, TimeSignature::default(), turn.melody.to_vec());
        let intro = if turn.intro_set {
            None
        } else {
            self.models
                .fill_intro(&mut session, IntroMode::Sampled, 0, &mut self.rng)?;
            Some(std::mem::take(&mut session.chords))
        };
        let mut chords = intro.clone().unwrap_or_default();
        chords.extend(turn.chords.iter().skip(chords.len()).copied());
        if chords.len() < frame {
            chords.resize(frame, ChordFrame::Silence);
        }
        // ReaLJam's step 7: the previous plan ended `chords.len()`; of it, the frames up to
        // `commitahead` after that plan's start stay.
        let commit = (chords.len() + turn.commitahead).saturating_sub(lookahead + frame);
        if commit >= lookahead {
            return Ok(Some(ClientPlan {
                chords: chords[frame..frame + lookahead].to_vec(),
                intro,
            }));
        }
        let models = &self.models;
        if frame >= turn.listen {
            let until = session.last_bar_line();
            match &self.client_hindsight {
                Some((melody, chords)) if session.melody.get(..until) == Some(melody) => {
                    session.hindsight.clone_from(chords);
                }
                _ => {
                    models.update_hindsight(
                        &mut session,
                        self.params.change_grid,
                        &mut self.rng,
                    )?;
                    let heard = session.melody.get(..until).unwrap_or_default().to_vec();
                    self.client_hindsight = Some((heard, session.hindsight.clone()));
                }
            }
        }
        let guide = models.session_guide(&session, frame..frame + lookahead, ONLINE_MODEL_SCALE);
        let params = SamplingParams {
            temperature: turn.temperature,
            ..self.params
        };
        let context = model_context(&session.hindsight, &chords, frame + commit);
        let (heard_context, committed) = context.split_at(frame);
        let request = LiveRequest {
            melody: turn.melody,
            chords: heard_context,
            committed,
            lookahead,
            beat_phase: 0,
            guide: guide.as_ref(),
        };
        let plan = self.planner.plan(
            models.decoder,
            models.vocab,
            &request,
            &params,
            &mut self.rng,
        )?;
        Ok(Some(ClientPlan {
            chords: plan.chords,
            intro,
        }))
    }
}

/// The chords the decoder plans on for the frames `..until` (the heard ones and those already
/// committed): the hindsight reading where there is one, then the chords played since. The
/// model was trained on songs whose chords fit their melodies; shown the chords the melody called
/// for rather than the guesses it played before hearing the notes, it continues the song's
/// progression instead of its own mistakes.
fn model_context(hindsight: &[ChordFrame], played: &[ChordFrame], until: usize) -> Vec<ChordFrame> {
    let judged = hindsight.len().min(until);
    let mut context = hindsight[..judged].to_vec();
    context.extend_from_slice(played.get(judged..until).unwrap_or_default());
    context.resize(until, ChordFrame::Silence);
    // A chord held across the seam starts there in the context.
    if let (Some(before), Some(ChordFrame::Hold(chord))) = (
        judged.checked_sub(1).and_then(|t| context.get(t)).copied(),
        context.get(judged).copied(),
    ) {
        if before.chord() != Some(chord) {
            context[judged] = ChordFrame::Onset(chord);
        }
    }
    context
}

/// Periods (in bars) a tune is checked for repeating at.
const REPEAT_BARS: [usize; 3] = [1, 2, 4];
/// Share of the last period's sounding frames that must repeat the period before it (same pitch
/// class) for the next frames to be expected to repeat too.
const REPEAT_MIN_MATCH: f64 = 0.5;

/// The heard melody extended to `until` frames with what the player is expected to play: tunes
/// repeat themselves, so when the last stretch of the melody repeated the one a period (1, 2 or 4
/// bars) earlier, the frames ahead are expected to repeat the frames a period before them too.
/// The guide then leans the planned chords toward those notes; without a clear repeat nothing is
/// expected and only the key guides.
fn with_expected_melody(heard: &[MelodyFrame], until: usize, bar: usize) -> Vec<MelodyFrame> {
    let mut melody = heard.to_vec();
    let best = REPEAT_BARS
        .iter()
        .map(|&bars| bars * bar.max(1))
        .filter(|&period| heard.len() >= 2 * period)
        .map(|period| (period, repeat_share(heard, period)))
        .filter(|&(_, share)| share >= REPEAT_MIN_MATCH)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((period, _)) = best {
        while melody.len() < until {
            let echo = melody[melody.len() - period];
            melody.push(echo);
        }
    }
    melody
}

/// Share of the last `period` frames with a note whose pitch class equals the frame `period`
/// earlier.
fn repeat_share(melody: &[MelodyFrame], period: usize) -> f64 {
    let recent = melody.len().saturating_sub(period)..melody.len();
    let (mut same, mut sounding) = (0u32, 0u32);
    for t in recent {
        let Some(now) = melody[t].pitch() else {
            continue;
        };
        sounding += 1;
        if melody[t - period]
            .pitch()
            .is_some_and(|then| then % 12 == now % 12)
        {
            same += 1;
        }
    }
    if sounding == 0 {
        0.0
    } else {
        f64::from(same) / f64::from(sounding)
    }
}

/// What a session samples with and how it leans on the melody: the online decoder that plans,
/// the offline model that hears whole stretches (the intro, hindsight) when there is one, and the
/// vocabulary's chord tones.
struct SessionModels<'m> {
    decoder: &'m Decoder,
    /// Samples the intro and the hindsight when present (ReaLJam's offline model), else the
    /// decoder does.
    offline: Option<&'m OfflineModel>,
    vocab: &'m Vocabulary,
    table: ChordTable,
    /// Each chord's pitch classes and triad, as the critic hears them.
    sounds: ChordSounds,
    guide: GuideSettings,
}

/// Onsets heard before the melody's key counts as known.
const KEY_AFTER_ONSETS: usize = 4;

/// Most candidates the hindsight harmonization picks the critic's favourite of (a short stretch
/// heard gets them all).
const HINDSIGHT_CANDIDATES: usize = 8;

/// Fewest candidates the hindsight harmonization samples, however long the stretch it re-reads.
const HINDSIGHT_MIN_CANDIDATES: usize = 2;

/// Frames × candidates one hindsight harmonization may sample: eight 4/4 bars at four
/// candidates. Its cost grows with both, and it runs at a bar line between two frame plans, so
/// bounding it keeps every re-plan inside the one-beat commit window on a small machine (about
/// 150 ms on one model thread of a 2-core VM) however long the session has run; unbounded, it
/// reached 600 ms after 16 bars and real time fell behind the bounce.
const HINDSIGHT_FRAME_BUDGET: usize = 8 * 16 * 4;

/// Bars the hindsight harmonization re-reads at each bar line; the hindsight before them stays
/// as last read. Eight bars hold the periods the repeat term looks for.
const HINDSIGHT_BARS: usize = 8;

/// Temperature of the hindsight harmonization: the likeliest reading of what was heard, not a
/// surprise.
const HINDSIGHT_TEMPERATURE: f32 = 0.5;

impl SessionModels<'_> {
    /// The guide for `frames` of a session (numbered from its first frame), built from the melody
    /// heard so far: its key once a few notes are in, the metre from the host's bar lines, the
    /// melody where the frames have been heard (the intro), and the chords a repeating
    /// progression brings back, at `scale` times the settings (see [`ONLINE_MODEL_SCALE`]).
    /// `None` when guidance is off.
    fn session_guide(
        &self,
        session: &Session,
        frames: std::ops::Range<usize>,
        scale: f32,
    ) -> Option<ChordGuide> {
        if self.guide.is_off() {
            return None;
        }
        let onsets = session
            .melody
            .iter()
            .filter(|f| matches!(f, MelodyFrame::Onset(_)))
            .count();
        let settings = GuideSettings {
            key: if onsets >= KEY_AFTER_ONSETS {
                self.guide.key
            } else {
                0.0
            },
            cadence: 0.0,
            ..self.guide.scaled(scale)
        };
        let meter = session.meter();
        let phase = session.phase();
        let melody = with_expected_melody(&session.melody, frames.end, meter.bar);
        let context = GuideContext {
            melody: &melody,
            meter,
            phase,
            key: melody_key(&session.melody),
            heard: Some(session.melody.len()),
            frames: frames.clone(),
            last_bar: None,
        };
        let mut guide = ChordGuide::new(&context, self.vocab, &self.table, &settings);
        if settings.repeat > 0.0 && !session.hindsight.is_empty() {
            let heard: Vec<Option<Triad>> = session
                .hindsight
                .iter()
                .map(|&chord| self.sounds.triad(chord))
                .collect();
            let expected = expected_triads(&heard, meter, phase, frames.clone());
            for (frame, expected) in frames.zip(&expected) {
                guide.expect(frame, expected, self.sounds.triads(), settings.repeat);
            }
        }
        Some(guide)
    }

    /// Chords for the heard `frames` (which the caller fits into the model's context with
    /// [`Self::model_window`]), sampled with the guide by the offline model when there is one:
    /// of `count` candidates the one the critic likes best. Returns one chord per frame of
    /// `frames`.
    fn harmonize_heard(
        &self,
        session: &Session,
        frames: std::ops::Range<usize>,
        count: usize,
        params: &SamplingParams,
        rng: &mut StdRng,
    ) -> Result<Vec<ChordFrame>, LiveError> {
        let (start, until) = (frames.start, frames.end);
        let scale = if self.offline.is_some() {
            1.0
        } else {
            ONLINE_MODEL_SCALE
        };
        let guide = self.session_guide(session, start..until, scale);
        // The request numbers frames from `start`; the guide from the session's first frame.
        let shifted = guide.map(|g| g.shifted(start));
        let request = OptionsRequest {
            melody: session.melody.get(start..until).unwrap_or_default(),
            locked: &[],
            count,
            max_retries: 0,
            guide: shifted.as_ref(),
        };
        let options = match self.offline {
            Some(model) => generate_offline_options(model, self.vocab, &request, params, rng)?,
            None => generate_options(self.decoder, self.vocab, &request, params, rng)?,
        };
        let judged = Phrase {
            melody: request.melody,
            meter: session.meter(),
            key: melody_key(request.melody),
            last_bar: None,
        };
        let score = |chords: &[ChordFrame], log_likelihood: f64| {
            critique(&judged, chords, log_likelihood, &self.sounds).score
        };
        let best = options
            .into_iter()
            .map(|o| (score(&o.chords, o.log_likelihood), o.chords))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, chords)| chords)
            .unwrap_or_default();
        let mut chords = best;
        chords.resize(until - start, ChordFrame::Silence);
        Ok(chords)
    }

    /// The part of `frames` the harmonizing model can read: at most its context, the frames
    /// ending at `frames.end`.
    fn model_window(&self, frames: std::ops::Range<usize>) -> std::ops::Range<usize> {
        let max_frames = self
            .offline
            .map_or(self.decoder.config().max_frames(), |model| {
                model.config().max_frames()
            });
        frames.start.max(frames.end.saturating_sub(max_frames))..frames.end
    }

    /// Fills the chords of the frames heard before the first plan (context only, never played).
    fn fill_intro(
        &self,
        session: &mut Session,
        mode: IntroMode,
        listen: usize,
        rng: &mut StdRng,
    ) -> Result<(), LiveError> {
        let heard = session.melody.len();
        session.intro_done = true;
        match mode {
            IntroMode::Silence => {
                // The rest of the listening period stays silent too: committed silence.
                let until = heard.max(listen);
                session.chords = vec![ChordFrame::Silence; until];
                session.voicings = vec![Voiced::default(); until];
                session.committed_until = until;
            }
            IntroMode::Sampled => {
                // ReaLJam samples its intro at temperature 1 whatever the live temperature.
                let params = SamplingParams::default();
                let window = self.model_window(0..heard);
                session.chords = vec![ChordFrame::Silence; window.start];
                let read = self.harmonize_heard(session, window, 1, &params, rng)?;
                session.chords.extend(read);
                session.voicings = vec![Voiced::default(); heard];
                session.committed_until = heard;
            }
        }
        Ok(())
    }

    /// Harmonizes the heard melody again, after the fact, each time a bar line passes: the
    /// triads it calls for are what a repeating progression is expected to bring back. Re-reads
    /// the last [`HINDSIGHT_BARS`] bars with fewer candidates as they lengthen (at most
    /// [`HINDSIGHT_FRAME_BUDGET`]). Nothing to do between bar lines or when the repeat term is
    /// off.
    fn update_hindsight(
        &self,
        session: &mut Session,
        change_grid: usize,
        rng: &mut StdRng,
    ) -> Result<(), LiveError> {
        let until = session.last_bar_line();
        if self.guide.repeat <= 0.0 || until <= session.hindsight.len() {
            return Ok(());
        }
        let params = SamplingParams {
            temperature: HINDSIGHT_TEMPERATURE,
            change_grid,
            ..SamplingParams::default()
        };
        // The last bars are read again: what followed a bar often says what it was. Bars before
        // them keep their last reading, so the cost stays bounded in a long session.
        let bars = HINDSIGHT_BARS * session.meter().bar;
        let window = self.model_window(until.saturating_sub(bars)..until);
        let start = window.start;
        let count = hindsight_candidates(window.len());
        let read = self.harmonize_heard(session, window, count, &params, rng)?;
        session.hindsight.resize(start, ChordFrame::Silence);
        session.hindsight.extend(read);
        Ok(())
    }
}

/// Candidates a hindsight harmonization of `frames` frames samples: all of them for a short
/// stretch, fewer as it lengthens, so that frames × candidates stays within
/// [`HINDSIGHT_FRAME_BUDGET`].
fn hindsight_candidates(frames: usize) -> usize {
    (HINDSIGHT_FRAME_BUDGET / frames.max(1)).clamp(HINDSIGHT_MIN_CANDIDATES, HINDSIGHT_CANDIDATES)
}

/// The pitches of `chord` planned right after `chords` (whose pitches are `voicings`): a hold
/// keeps the sounding voicing, a new chord is voiced from the last sounding one.
fn voice_frame(
    table: &ChordTable,
    style: VoicingStyle,
    range: comper_music::chord::VoicingRange,
    chords: &[ChordFrame],
    voicings: &[Voiced],
    chord: ChordFrame,
) -> Voiced {
    let Some(index) = chord.chord() else {
        return Voiced::default();
    };
    let previous = voicings.last().filter(|v| !v.is_empty());
    if let (ChordFrame::Hold(_), Some(previous)) = (chord, previous) {
        if chords.last().and_then(|c| c.chord()) == Some(index) {
            return *previous;
        }
    }
    let Some(tones) = table.tones(index) else {
        return Voiced::default();
    };
    match style {
        VoicingStyle::Plain => Voiced::new(&plain_voicing(tones)),
        VoicingStyle::VoiceLed => {
            let previous = voicings.iter().rev().find(|v| !v.is_empty()).and_then(|v| {
                let (&bass, upper) = v.pitches().split_first()?;
                Some(Voicing {
                    bass,
                    upper: upper.to_vec(),
                })
            });
            Voiced::new(&voice_led(tones, previous.as_ref(), range).notes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use comper_model::random::random_decoder;
    use comper_model::ModelConfig;
    use comper_realtime::frames::TimeSignature;
    use comper_realtime::quantize::ClockSource;

    fn tiny() -> (Decoder, Vocabulary) {
        let names = ["C", "Dm", "Em", "F", "G", "Am", "Bdim", "G7"];
        let vocab = Vocabulary::new(names.iter().map(|n| n.to_string()).collect()).unwrap();
        let config = ModelConfig {
            name: "tiny".into(),
            dim: 16,
            depth: 1,
            heads: 2,
            dim_head: 8,
            num_tokens: vocab.num_tokens() as usize,
            max_seq_len: 130,
        };
        (random_decoder(&config).unwrap(), vocab)
    }

    fn start(engine: &mut LiveEngine, phrase: PhraseId, first_frame: i64) {
        engine.push(&QuantizerOutput::PhraseStart {
            phrase,
            first_frame,
            time_signature: TimeSignature::default(),
            clock: ClockSource::Host,
        });
    }

    fn frame(engine: &mut LiveEngine, phrase: PhraseId, index: i64) {
        let pitch = 60 + (index % 5) as u8;
        let frame = if index % 2 == 0 {
            MelodyFrame::Onset(pitch)
        } else {
            MelodyFrame::Silence
        };
        engine.push(&QuantizerOutput::Frame {
            phrase,
            index,
            frame,
        });
    }

    #[test]
    fn listens_then_plans_with_committed_prefix() {
        let (decoder, vocab) = tiny();
        let config = LiveConfig {
            listen_beats: 6,
            commit_beats: 4,
            intro: IntroMode::Silence,
            ..LiveConfig::default()
        };
        let mut engine = LiveEngine::new(&decoder, &vocab, config).unwrap();
        start(&mut engine, 0, 100);
        let mut previous: Option<PlanUpdate> = None;
        for index in 100..140 {
            frame(&mut engine, 0, index);
            let heard = (index - 99) as usize;
            let plan = engine.replan().unwrap();
            if heard < 8 {
                assert!(plan.is_none(), "still listening at {heard}");
                continue;
            }
            let plan = plan.expect("a plan after every frame");
            assert_eq!(plan.end_frame(), 100 + heard as i64 + 16);
            assert_eq!(plan.first_frame, 100 + heard.max(24) as i64);
            let committed = plan.frames.iter().take_while(|f| f.committed).count();
            assert!(plan.frames[committed..].iter().all(|f| !f.committed));
            if let Some(old) = previous.take() {
                for (k, entry) in old.frames.iter().enumerate() {
                    let index = old.first_frame + k as i64;
                    // Frames before the new plan's start have been heard (already due).
                    if entry.committed && index >= plan.first_frame {
                        assert_eq!(plan.get(index).copied(), Some(*entry), "frame {index}");
                    }
                }
                engine.recycle(old);
            }
            previous = Some(plan);
        }
        assert!(engine.replan().unwrap().is_none(), "nothing new heard");
        // Silence intro: the context of the listening period is silent.
        assert!(engine.session_chords()[..24]
            .iter()
            .all(|c| *c == ChordFrame::Silence));
        engine.push(&QuantizerOutput::PhraseEnd {
            phrase: 0,
            reason: comper_realtime::quantize::PhraseEndReason::Stopped,
        });
        assert!(engine.session_chords().is_empty());
        assert!(engine.replan().unwrap().is_none());
    }

    #[test]
    fn sampled_intro_fills_the_heard_frames() {
        let (decoder, vocab) = tiny();
        let config = LiveConfig {
            listen_beats: 4,
            temperature: 0.0,
            ..LiveConfig::default()
        };
        let mut engine = LiveEngine::new(&decoder, &vocab, config).unwrap();
        start(&mut engine, 3, 0);
        for index in 0..12 {
            frame(&mut engine, 3, index);
        }
        let plan = engine.replan().unwrap().unwrap();
        assert_eq!(plan.first_frame, 16, "nothing sounds while listening");
        assert_eq!(plan.end_frame(), 12 + 16);
        // The intro is sampled at temperature 1 from a random model: not all silence.
        let intro = &engine.session_chords()[..12];
        assert!(intro.iter().any(|c| *c != ChordFrame::Silence), "{intro:?}");
    }

    #[test]
    fn rejects_bad_settings() {
        let (decoder, vocab) = tiny();
        let bad = [
            LiveConfig {
                commit_beats: 5,
                ..LiveConfig::default()
            },
            LiveConfig {
                commit_beats: 0,
                ..LiveConfig::default()
            },
            LiveConfig {
                lookahead_beats: 40,
                commit_beats: 1,
                ..LiveConfig::default()
            },
            LiveConfig {
                temperature: f32::NAN,
                ..LiveConfig::default()
            },
        ];
        for config in bad {
            assert!(
                LiveEngine::new(&decoder, &vocab, config).is_err(),
                "{config:?}"
            );
        }
    }

    #[test]
    fn a_hindsight_reading_costs_at_most_its_budget_however_long_the_session() {
        let bar = 16;
        assert_eq!(hindsight_candidates(2 * bar), HINDSIGHT_CANDIDATES);
        for bars in 1..=HINDSIGHT_BARS {
            let frames = bars * bar;
            let count = hindsight_candidates(frames);
            assert!(count >= HINDSIGHT_MIN_CANDIDATES, "{bars} bars");
            assert!(
                frames * count <= HINDSIGHT_FRAME_BUDGET,
                "{bars} bars: {count}"
            );
        }
    }
}
