//! A headless CLAP host (clack-host) drives the built plugin the way a DAW does: 48 kHz blocks,
//! a 120 BPM transport looping four bars, a melody on the MIDI input. It checks that chords come
//! out on 16th-note boundaries, that every chord note is released at a loop wrap and at stop,
//! and that the session survives save → load into a fresh instance.
//!
//! The plugin is the `libcomper_plugin.so` cargo built next to this test (or `COMPER_CLAP`, e.g.
//! `target/bundled/Comper.clap`). In a debug build the plugin aborts on any allocation inside
//! `process()` (nice-plug's `assert_process_allocs`), so this scenario is also the no-allocation
//! proof: an allocation would kill the test process.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clack_extensions::gui::{GuiSize, PluginGui};
use clack_extensions::params::{ParamInfoBuffer, PluginParams};
use clack_extensions::render::{PluginRender, RenderMode};
use clack_extensions::state::PluginState;
use clack_host::events::event_types::{
    NoteOffEvent, NoteOnEvent, ParamValueEvent, TransportEvent, TransportFlags,
};
use clack_host::events::{EventFlags, EventHeader, Match, Pckn};
use clack_host::prelude::*;
use clack_host::utils::BeatTime;

const SAMPLE_RATE: f64 = 48_000.0;
const BLOCK: usize = 512;
const LOOP_BEATS: f64 = 16.0;
const PLUGIN_ID: &[u8] = b"audio.comper.comper";
/// Melody notes go in on channel 2 (index 1); Comper's chords come out on channel 1 (index 0).
const MELODY_CHANNEL: u16 = 1;
const CHORD_CHANNEL: i16 = 0;

struct Host;
struct HostShared;

impl SharedHandler<'_> for HostShared {
    fn request_restart(&self) {}
    fn request_process(&self) {}
    fn request_callback(&self) {}
}

impl HostHandlers for Host {
    type Shared<'a> = HostShared;
    type MainThread<'a> = ();
    type AudioProcessor<'a> = ();
}

/// Loads the plugin. Live mode's bounce must equal its real-time run, which holds only while the
/// model keeps up: the bar line's hindsight re-plan (at most about 150 ms on one thread of a
/// 2-core VM) must fit the one-beat commit window, or the real-time run plans its backlog at
/// once. Test functions run side by side on small CI machines, so the test gives the model two
/// threads (unless `COMPER_THREADS` says otherwise) and plays at 90 BPM (a 667 ms beat).
fn load_plugin() -> PluginEntry {
    if std::env::var_os("COMPER_THREADS").is_none() {
        std::env::set_var("COMPER_THREADS", "2");
    }
    unsafe { PluginEntry::load(plugin_path()) }.expect("the plugin loads")
}

fn plugin_path() -> PathBuf {
    if let Some(path) = std::env::var_os("COMPER_CLAP") {
        return PathBuf::from(path);
    }
    // Cargo builds the library (cdylib included) into deps/ beside this test's executable.
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().join("libcomper_plugin.so");
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Ode to Joy, four bars of quarter notes (last one a half note): (beat, pitch, length).
fn melody() -> Vec<(f64, u8, f64)> {
    let pitches = [64, 64, 65, 67, 67, 65, 64, 62, 60, 60, 62, 64, 64, 62, 62];
    let mut notes: Vec<(f64, u8, f64)> = pitches
        .iter()
        .enumerate()
        .map(|(i, &p)| (i as f64, p, 0.9))
        .collect();
    notes[14].2 = 1.9;
    notes
}

/// One chord note event seen at the plugin's output.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Out {
    /// Host beat position (inside the loop) where it happened.
    beat: f64,
    key: i16,
    on: bool,
}

struct Session {
    instance: PluginInstance<Host>,
    bpm: f64,
    /// The host loops `[0, loop_beats)` when set.
    loop_beats: Option<f64>,
    /// Play blocks no faster than real time (live mode needs the model to keep up).
    real_time: Option<Instant>,
    /// Parameter changes sent with the next block.
    param_changes: Vec<ParamValueEvent>,
    processor: Option<StartedPluginAudioProcessor<Host>>,
    /// Samples played since the transport started (the loop folds them).
    sample: u64,
    chord_events: Vec<Out>,
    melody_thru: usize,
    /// Played on the first pass: (beat, pitch, length in beats).
    melody: Vec<(f64, u8, f64)>,
    sounding: BTreeSet<i16>,
}

impl Session {
    fn new(entry: &PluginEntry) -> Self {
        let host_info =
            HostInfo::new("comper-test", "comper", "https://example.invalid", "1.0").unwrap();
        let id = c"audio.comper.comper";
        let instance = PluginInstance::<Host>::new(|_| HostShared, |_| (), entry, id, &host_info)
            .expect("the plugin instantiates");
        Self {
            instance,
            bpm: 120.0,
            loop_beats: Some(LOOP_BEATS),
            real_time: None,
            param_changes: Vec::new(),
            processor: None,
            sample: 0,
            chord_events: Vec::new(),
            melody_thru: 0,
            melody: melody(),
            sounding: BTreeSet::new(),
        }
    }

    fn activate(&mut self) {
        let config = PluginAudioConfiguration {
            sample_rate: SAMPLE_RATE,
            min_frames_count: 1,
            max_frames_count: BLOCK as u32,
        };
        let stopped = self.instance.activate(|_, _| (), config).unwrap();
        self.processor = Some(stopped.start_processing().unwrap());
    }

    fn deactivate(&mut self) {
        if let Some(started) = self.processor.take() {
            self.instance.deactivate(started.stop_processing());
        }
    }

    fn samples_per_beat(&self) -> f64 {
        SAMPLE_RATE * 60.0 / self.bpm
    }

    fn beat(&self, sample: u64) -> f64 {
        let beat = sample as f64 / self.samples_per_beat();
        self.loop_beats.map_or(beat, |length| beat % length)
    }

    /// Sets the parameter shown as `name` to the plain `value` at the next block.
    fn set_param(&mut self, name: &str, value: f64) {
        let handle = self.instance.plugin_handle();
        let params: PluginParams = handle.get_extension().expect("params extension");
        let mut buffer = ParamInfoBuffer::new();
        let id = (0..params.count(&handle))
            .filter_map(|i| {
                params
                    .get_info(&handle, i, &mut buffer)
                    .map(|info| (info.id, info.name == name.as_bytes()))
            })
            .find(|&(_, found)| found)
            .map(|(id, _)| id)
            .unwrap_or_else(|| panic!("no parameter named {name}"));
        self.param_changes
            .push(ParamValueEvent::new(0, id, Pckn::match_all(), value));
    }

    /// Processes one block; `melody` notes (beats in the loop) are played on the first pass.
    fn block(&mut self, playing: bool, play_melody: bool) {
        let start = self.sample;
        let start_beat = self.beat(start);
        let samples_per_beat = self.samples_per_beat();
        if let Some(started) = self.real_time {
            let due = Duration::from_secs_f64(start as f64 / SAMPLE_RATE);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let mut events = EventBuffer::new();
        for change in self.param_changes.drain(..) {
            events.push(&change);
        }
        let mut transport = TransportEvent {
            header: EventHeader::new_core(0, EventFlags::empty()),
            flags: TransportFlags::HAS_TEMPO
                | TransportFlags::HAS_BEATS_TIMELINE
                | TransportFlags::HAS_TIME_SIGNATURE,
            song_pos_beats: BeatTime::from_float(start_beat),
            song_pos_seconds: Default::default(),
            tempo: self.bpm,
            tempo_inc: 0.0,
            loop_start_beats: BeatTime::from_float(0.0),
            loop_end_beats: BeatTime::from_float(self.loop_beats.unwrap_or(0.0)),
            loop_start_seconds: Default::default(),
            loop_end_seconds: Default::default(),
            bar_start: BeatTime::from_float((start_beat / 4.0).floor() * 4.0),
            bar_number: (start_beat / 4.0) as i32,
            time_signature_numerator: 4,
            time_signature_denominator: 4,
        };
        if playing {
            transport.flags |= TransportFlags::IS_PLAYING;
        }
        if self.loop_beats.is_some() {
            transport.flags |= TransportFlags::IS_LOOP_ACTIVE;
        }
        if play_melody && playing {
            let mut timed: Vec<(u32, bool, u8)> = Vec::new();
            for (onset, pitch, length) in self.melody.clone() {
                for (beat, on) in [(onset, true), (onset + length, false)] {
                    let at = (beat * samples_per_beat).round() as u64;
                    if (start..start + BLOCK as u64).contains(&at) {
                        timed.push(((at - start) as u32, on, pitch));
                    }
                }
            }
            timed.sort_by_key(|&(t, on, _)| (t, on));
            for (time, on, pitch) in timed {
                let pckn = Pckn::new(0u16, MELODY_CHANNEL, u16::from(pitch), Match::All);
                if on {
                    events.push(&NoteOnEvent::new(time, pckn, 0.8));
                } else {
                    events.push(&NoteOffEvent::new(time, pckn, 0.0));
                }
            }
        }
        let mut output_events = EventBuffer::new();
        let mut left = vec![0.0f32; BLOCK];
        let mut right = vec![0.0f32; BLOCK];
        let mut output_ports = AudioPorts::with_capacity(2, 1);
        let mut output_audio = output_ports.with_output_buffers([AudioPortBuffer {
            latency: 0,
            channels: AudioPortBufferType::f32_output_only(
                [left.as_mut_slice(), right.as_mut_slice()].into_iter(),
            ),
        }]);
        let input_audio = InputAudioBuffers::empty();
        let processor = self.processor.as_mut().unwrap();
        processor
            .process(
                &input_audio,
                &mut output_audio,
                &InputEvents::from_buffer(&events),
                &mut OutputEvents::from_buffer(&mut output_events),
                Some(start),
                Some(&transport),
            )
            .expect("process() succeeds");
        for event in output_events.iter() {
            let (raw, on) = if let Some(e) = event.as_event::<NoteOnEvent>() {
                (*e.as_raw(), true)
            } else if let Some(e) = event.as_event::<NoteOffEvent>() {
                (*e.as_raw(), false)
            } else {
                continue;
            };
            if raw.channel != CHORD_CHANNEL {
                self.melody_thru += 1;
                continue;
            }
            let beat = start_beat + f64::from(raw.header.time) / samples_per_beat;
            self.chord_events.push(Out {
                beat,
                key: raw.key,
                on,
            });
            if on {
                self.sounding.insert(raw.key);
            } else {
                self.sounding.remove(&raw.key);
            }
        }
        if playing {
            self.sample += BLOCK as u64;
        }
    }

    /// Plays (without melody) until chords come out, in at most `timeout` of wall time while the
    /// inference thread works; returns whether they did.
    fn play_until_chords(&mut self, timeout: Duration) -> bool {
        let started = Instant::now();
        let before = self.chord_events.len();
        while started.elapsed() < timeout {
            self.block(true, false);
            if self.chord_events[before..].iter().any(|e| e.on) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }

    /// Tells the plugin the host renders offline (a bounce): set before activating.
    fn render_offline(&mut self) {
        let handle = self.instance.plugin_handle();
        let render: PluginRender = handle.get_extension().expect("render extension");
        render
            .set(&handle, RenderMode::Offline)
            .expect("the plugin takes the offline render mode");
    }

    fn save(&mut self) -> Vec<u8> {
        let handle = self.instance.plugin_handle();
        let state: PluginState = handle.get_extension().expect("state extension");
        let mut bytes = Vec::new();
        state.save(&handle, &mut bytes).expect("state saves");
        bytes
    }

    fn load(&mut self, bytes: &[u8]) -> bool {
        let handle = self.instance.plugin_handle();
        let state: PluginState = handle.get_extension().expect("state extension");
        state.load(&handle, &mut &bytes[..]).is_ok()
    }

    /// The size the panel's window opens at, as the host asks for it before opening it.
    fn gui_size(&mut self) -> Option<GuiSize> {
        let handle = self.instance.plugin_handle();
        let gui: PluginGui = handle.get_extension().expect("gui extension");
        gui.get_size(&handle)
    }
}

/// A CLAP state as nice-plug writes it: its JSON's length (8 bytes, little-endian), the JSON.
fn state_json(state: &[u8]) -> serde_json::Value {
    let json = state.get(8..).expect("the state has its length prefix");
    serde_json::from_slice(json).expect("the state is JSON")
}

fn state_bytes(json: &serde_json::Value) -> Vec<u8> {
    let json = serde_json::to_vec(json).unwrap();
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend(json);
    bytes
}

/// The panel's window size, as a project's state holds it.
fn saved_editor_size(state: &[u8]) -> serde_json::Value {
    let state = state_json(state);
    let field = state["fields"]["editor-size"]
        .as_str()
        .expect("the state holds the editor size");
    serde_json::from_str(field).expect("the editor size is JSON")
}

/// The user resized the panel, saved the project and opened it again: the window opens at the
/// saved size, and a size no screen can show opens one the panel fits.
#[test]
fn the_panel_opens_at_the_size_the_project_saved() {
    let entry = load_plugin();
    let mut session = Session::new(&entry);
    let default = session.gui_size().expect("the plugin has a panel");
    let state = session.save();
    let saved = saved_editor_size(&state);
    assert_eq!(
        (saved["width"].as_f64(), saved["height"].as_f64()),
        (
            Some(f64::from(default.width)),
            Some(f64::from(default.height))
        )
    );

    let resized = |width: f64, height: f64| {
        let mut state = state_json(&state);
        let size = serde_json::json!({"width": width, "height": height, "zoom": 1.0});
        state["fields"]["editor-size"] = serde_json::Value::String(size.to_string());
        state_bytes(&state)
    };
    let mut reopened = Session::new(&entry);
    assert!(reopened.load(&resized(1280.0, 900.0)));
    assert_eq!(
        reopened.gui_size(),
        Some(GuiSize {
            width: 1280,
            height: 900
        })
    );
    assert_eq!(saved_editor_size(&reopened.save())["width"], 1280.0);

    let mut broken = Session::new(&entry);
    assert!(broken.load(&resized(1.0, 1e12)));
    let size = broken.gui_size().unwrap();
    assert!(size.width >= 720 && size.height <= 8192, "{size:?}");
}

fn assert_on_frame_boundaries(events: &[Out], samples_per_beat: f64) {
    for e in events {
        let frames = e.beat * 4.0;
        let off_by_samples = (frames - frames.round()).abs() * samples_per_beat / 4.0;
        assert!(
            off_by_samples <= 0.5 + 1e-6,
            "chord event {e:?} is {off_by_samples} samples off a 16th-note boundary"
        );
    }
}

/// Chords (per loop-beat position, the set of keys turned on there) over one loop pass.
fn chords_by_beat(events: &[Out]) -> BTreeMap<i64, BTreeSet<i16>> {
    let mut chords: BTreeMap<i64, BTreeSet<i16>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.on) {
        chords
            .entry((e.beat * 4.0).round() as i64)
            .or_default()
            .insert(e.key);
    }
    chords
}

#[test]
fn plays_chords_on_time_releases_them_and_restores_its_session() {
    let entry = load_plugin();
    let factory = entry.get_plugin_factory().expect("a plugin factory");
    assert!(
        factory
            .plugin_descriptors()
            .any(|d| d.id().is_some_and(|id| id.to_bytes() == PLUGIN_ID)),
        "Comper is listed"
    );

    let mut session = Session::new(&entry);
    session.activate();
    // First pass: play the melody over the four-bar loop; Comper captures it.
    let pass = (LOOP_BEATS * session.samples_per_beat()) as u64;
    while session.sample < pass {
        session.block(true, true);
    }
    assert!(session.melody_thru > 0, "the melody is passed through");
    assert!(
        session.play_until_chords(Duration::from_secs(120)),
        "chords come out once the options are ready"
    );
    // Play two more full passes of the loop (each ends with a wrap).
    let from = session.chord_events.len();
    let until = session.sample + 2 * pass;
    let mut checked_wraps = 0;
    while session.sample < until {
        let wraps_next = session.beat(session.sample + BLOCK as u64) < session.beat(session.sample);
        let sounding_before: BTreeSet<i16> = session.sounding.clone();
        let events_before = session.chord_events.len();
        session.block(true, false);
        if wraps_next && !sounding_before.is_empty() {
            // Everything sounding before the wrap is released at it (at the end of this block or
            // the start of the next, where the host restarts the loop).
            session.block(true, false);
            let released: BTreeSet<i16> = session.chord_events[events_before..]
                .iter()
                .filter(|e| !e.on && (e.beat < 0.1 || e.beat > LOOP_BEATS - 0.1))
                .map(|e| e.key)
                .collect();
            assert!(
                sounding_before.is_subset(&released),
                "loop wrap released {released:?} of {sounding_before:?}"
            );
            checked_wraps += 1;
        }
    }
    assert!(
        checked_wraps >= 1,
        "a loop wrap happened while chords sounded"
    );
    let played = session.chord_events[from..].to_vec();
    assert!(played.iter().filter(|e| e.on).count() >= 8, "{played:?}");
    assert_on_frame_boundaries(&played, session.samples_per_beat());
    let first_chords = chords_by_beat(&played);

    // Stop: every chord note is released.
    session.block(false, false);
    assert!(
        session.sounding.is_empty(),
        "stop left {:?} hanging",
        session.sounding
    );

    // Save, then load into a fresh instance: it plays the same progression without hearing
    // the melody again.
    let state = session.save();
    let text = String::from_utf8_lossy(&state);
    assert!(
        text.contains("session"),
        "the state holds the session: {text:.200}"
    );
    session.deactivate();

    let mut restored = Session::new(&entry);
    assert!(restored.load(&state), "the saved state loads");
    restored.activate();
    assert!(
        restored.play_until_chords(Duration::from_secs(60)),
        "the restored session plays"
    );
    let until = restored.sample + pass;
    let from = restored.chord_events.len();
    while restored.sample < until {
        restored.block(true, false);
    }
    let replayed = chords_by_beat(&restored.chord_events[from..]);
    // Compare the beats both passes covered fully.
    for (frame, keys) in &replayed {
        if let Some(expected) = first_chords.get(frame) {
            assert_eq!(
                keys, expected,
                "chord at frame {frame} differs after restore"
            );
        }
    }
    assert!(!replayed.is_empty());
    restored.block(false, false);
    assert!(restored.sounding.is_empty());

    // A broken state is refused or ignored, never a crash, and the plugin keeps working.
    let mut broken = Session::new(&entry);
    let _ = broken.load(b"{\"fields\":{\"session\":\"not json\"}");
    broken.activate();
    for _ in 0..50 {
        broken.block(true, true);
    }
    assert!(broken.melody_thru > 0);
    broken.deactivate();
    restored.deactivate();
}

/// Plays Ode to Joy twice in Live mode at 90 BPM (the stop falls on a block boundary), in real time or as an offline render (as fast
/// as the plugin lets it go), and stops.
fn live_session(entry: &PluginEntry, offline: bool) -> Session {
    let mut session = Session::new(entry);
    session.bpm = 90.0;
    session.loop_beats = None;
    let once = melody();
    session.melody = once
        .iter()
        .chain(once.iter())
        .enumerate()
        .map(|(i, &(_, pitch, length))| (i as f64 + if i >= 15 { 1.0 } else { 0.0 }, pitch, length))
        .collect();
    session.set_param("Mode", 1.0);
    session.set_param("Listen beats", 4.0);
    if offline {
        session.render_offline();
    }
    session.activate();
    if !offline {
        session.real_time = Some(Instant::now());
    }
    let beats = 34.0;
    while (session.sample as f64) < beats * session.samples_per_beat() {
        session.block(true, true);
    }
    session.block(false, false);
    session
}

#[test]
fn live_mode_accompanies_after_listening_and_releases_at_stop() {
    let entry = load_plugin();
    // 34 beats, 22.7 s, played in real time.
    let mut session = live_session(&entry, false);
    let ons: Vec<Out> = session
        .chord_events
        .iter()
        .copied()
        .filter(|e| e.on)
        .collect();
    assert!(
        ons.len() >= 4,
        "live mode played chords: {:?}",
        session.chord_events
    );
    assert!(
        ons.iter().all(|e| e.beat >= 4.0 - 1e-9),
        "nothing sounds while listening: {ons:?}"
    );
    assert_on_frame_boundaries(&session.chord_events, session.samples_per_beat());
    assert!(
        session.sounding.is_empty(),
        "stop left {:?} hanging",
        session.sounding
    );
    session.deactivate();

    // The same song bounced offline: the same chords at the same samples.
    let mut bounced = live_session(&entry, true);
    assert_eq!(bounced.chord_events, session.chord_events);
    bounced.deactivate();
}
