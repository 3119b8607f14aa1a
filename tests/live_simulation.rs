//! A scripted performance through the real quantizer → channel → runtime → scheduler path, with
//! a simulated clock and a tiny random-weights model: chords are on time, committed
//! chords never change, and every note is released. A counting allocator also checks that the
//! audio side (quantizer, channels, scheduler) never touches the heap.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use comper_generate::live::{IntroMode, LiveConfig};
use comper_generate::runtime::{
    simulate_jam, spawn, FixedHost, JamReport, JamSettings, ModelPair, ReplanTime, RuntimeFiles,
    Settings,
};
use comper_model::random::random_offline;
use comper_model::{LoadedModel, LoadedOffline, ModelConfig, ModelKind, OfflineConfig};
use comper_music::tokens::Vocabulary;
use comper_realtime::frames::TimeSignature;
use comper_realtime::frames::{ChordFrame, MelodyFrame, Note};
use comper_realtime::link::{command_channel, link};
use comper_realtime::link::{AudioLink, Shared, ToAudio};
use comper_realtime::quantize::{
    Block, ClockSource, NoteEvent, NoteEventKind, Quantizer, QuantizerConfig, QuantizerOutput,
    Transport,
};
use comper_realtime::schedule::{PlannedFrame, Scheduler, SchedulerOutput};

#[path = "common/heap_counter.rs"]
mod heap_counter;
#[path = "common/tiny_model.rs"]
mod tiny_model;

use tiny_model::tiny_model;

const LISTEN_BEATS: u32 = 4;

/// Twelve bars: quarter and eighth notes, a repeated note, a held note and a bar of rest.
fn performance() -> Vec<Note> {
    let phrase: [(f64, f64, u8); 9] = [
        (0.0, 1.0, 60),
        (1.0, 1.5, 62),
        (1.5, 2.0, 64),
        (2.0, 3.0, 64),
        (3.0, 4.0, 67),
        (4.0, 6.0, 65),
        (6.0, 6.5, 64),
        (6.5, 7.0, 62),
        (7.0, 8.0, 60),
    ];
    let mut notes = Vec::new();
    for repeat in 0..5 {
        let base = if repeat < 2 {
            8.0 * f64::from(repeat)
        } else {
            8.0 * f64::from(repeat) + 4.0
        };
        let shift = (repeat * 2) as u8;
        notes.extend(phrase.iter().map(|&(on, off, pitch)| Note {
            pitch: pitch + shift,
            onset_beat: base + on,
            offset_beat: base + off,
        }));
    }
    notes
}

fn config(commit_beats: u32) -> LiveConfig {
    LiveConfig {
        listen_beats: LISTEN_BEATS,
        lookahead_beats: 4,
        commit_beats,
        temperature: 0.8,
        seed: 7,
        ..LiveConfig::default()
    }
}

fn jam(model: &Arc<LoadedModel>, bpm: f64, live: &LiveConfig, replan_frames: f64) -> JamReport {
    let frame_ms = 15.0 / bpm * 1e3;
    let settings = JamSettings {
        tempo_bpm: bpm,
        replan_time: ReplanTime::Fixed(replan_frames * frame_ms),
        tail_beats: 2.0,
        ..JamSettings::default()
    };
    simulate_jam(&Arc::clone(model).into(), &performance(), live, &settings).unwrap()
}

/// The first committed entry of every frame, checking that no later plan changes it.
fn committed_frames(report: &JamReport) -> HashMap<i64, PlannedFrame> {
    let mut committed: HashMap<i64, PlannedFrame> = HashMap::new();
    for plan in &report.plans {
        for (k, entry) in plan.frames.iter().enumerate() {
            let index = plan.first_frame + k as i64;
            if let Some(fixed) = committed.get(&index) {
                assert_eq!(entry, fixed, "committed frame {index} changed");
            } else if entry.committed {
                committed.insert(index, *entry);
            }
        }
    }
    committed
}

/// Every note-on is matched by a later note-off of the same pitch, and nothing sounds at the end.
fn assert_no_hanging_notes(report: &JamReport) {
    let mut sounding = [false; 128];
    for (sample, event) in &report.events {
        let on = &mut sounding[usize::from(event.pitch)];
        match event.kind {
            NoteEventKind::On => {
                assert!(
                    !*on,
                    "pitch {} started twice (sample {sample})",
                    event.pitch
                );
                *on = true;
            }
            NoteEventKind::Off => {
                assert!(
                    *on,
                    "pitch {} released while silent (sample {sample})",
                    event.pitch
                );
                *on = false;
            }
        }
    }
    assert!(sounding.iter().all(|on| !on), "a note hangs at the end");
    assert_eq!(report.notes.len() * 2, report.events.len());
}

#[test]
fn chords_are_on_time_and_fixed_at_60_120_and_200_bpm() {
    let model = tiny_model();
    let listen_frames = (LISTEN_BEATS * 4) as usize;
    for bpm in [60.0, 120.0, 200.0] {
        // Every re-plan takes half a frame of simulated time.
        let report = jam(&model, bpm, &config(4), 0.5);
        assert_eq!(report.late_frames, 0, "{bpm} BPM");
        let frames = (report.total_beats * 4.0) as usize;
        assert!(
            report.played.len() >= frames,
            "{bpm} BPM: every frame came due"
        );
        assert!(
            report.played[..listen_frames]
                .iter()
                .all(|c| *c == ChordFrame::Silence),
            "{bpm} BPM: silent while listening"
        );
        let committed = committed_frames(&report);
        for frame in listen_frames..frames {
            let entry = committed
                .get(&(frame as i64))
                .unwrap_or_else(|| panic!("{bpm} BPM: frame {frame} was never committed"));
            assert_eq!(
                report.played[frame], entry.chord,
                "{bpm} BPM: frame {frame}"
            );
        }
        assert!(
            report.played.iter().any(|c| c.chord().is_some()),
            "{bpm} BPM: some chord sounded"
        );
        assert!(!report.events.is_empty());
        assert_no_hanging_notes(&report);
        // Notes sound only after the listening period.
        let listen_end = f64::from(LISTEN_BEATS);
        assert!(report
            .notes
            .iter()
            .all(|n| n.start_beat >= listen_end - 1e-9));
    }
}

#[test]
fn fixed_replan_times_make_the_session_reproducible() {
    let model = tiny_model();
    let first = jam(&model, 120.0, &config(4), 0.5);
    let second = jam(&model, 120.0, &config(4), 0.5);
    assert_eq!(first.played, second.played);
    assert_eq!(first.events, second.events);
}

#[test]
fn a_slow_engine_is_late_but_never_leaves_a_gap_or_a_hanging_note() {
    let model = tiny_model();
    // Commit one beat (3 frames of slack) but take 6 frames per re-plan.
    let report = jam(&model, 120.0, &config(1), 6.0);
    assert!(report.late_frames > 0);
    assert_no_hanging_notes(&report);
    // Every frame plays its committed chord, or (late) keeps sounding what sounded before it:
    // no gap and no re-trigger.
    let committed = committed_frames(&report);
    let frames = (report.total_beats * 4.0) as usize;
    for frame in 17..frames {
        let played = report.played[frame];
        let planned = committed.get(&(frame as i64)).map(|e| e.chord);
        let kept = played.chord() == report.played[frame - 1].chord()
            && !matches!(played, ChordFrame::Onset(_));
        assert!(
            planned == Some(played) || kept,
            "frame {frame}: played {played:?}, planned {planned:?}"
        );
    }
}

#[test]
fn silence_intro_runs_the_same_checks() {
    let model = tiny_model();
    let live = LiveConfig {
        intro: IntroMode::Silence,
        ..config(4)
    };
    let report = jam(&model, 200.0, &live, 0.5);
    assert_eq!(report.late_frames, 0);
    committed_frames(&report);
    assert_no_hanging_notes(&report);
}

/// A random offline model with the tiny online model's chord names, for the live intro.
fn tiny_offline(vocabulary: &Vocabulary) -> Arc<LoadedOffline> {
    let config = OfflineConfig {
        kind: ModelKind::Offline,
        base: ModelConfig {
            name: "tiny-offline".into(),
            dim: 16,
            depth: 1,
            heads: 2,
            dim_head: 8,
            num_tokens: vocabulary.num_tokens() as usize,
            max_seq_len: 66,
        },
        enc_depth: 1,
    };
    Arc::new(LoadedOffline {
        model: random_offline(&config).unwrap(),
        config,
        vocabulary: vocabulary.clone(),
    })
}

#[test]
fn an_offline_intro_runs_the_same_checks() {
    let model = tiny_model();
    let models = ModelPair::new(Arc::clone(&model), Some(tiny_offline(&model.vocabulary)));
    let settings = JamSettings {
        tempo_bpm: 200.0,
        replan_time: ReplanTime::Fixed(0.5 * 75.0),
        tail_beats: 2.0,
        ..JamSettings::default()
    };
    let report = simulate_jam(&models, &performance(), &config(4), &settings).unwrap();
    assert_eq!(report.late_frames, 0);
    assert!(!committed_frames(&report).is_empty());
    assert_no_hanging_notes(&report);

    // An offline model with other chord names cannot fill in the online model's context.
    let mut names = model.vocabulary.names().to_vec();
    names.swap(0, 1);
    let other = Vocabulary::new(names).unwrap();
    let models = ModelPair::new(model, Some(tiny_offline(&other)));
    let err = simulate_jam(&models, &performance(), &config(4), &settings).unwrap_err();
    assert!(err.to_string().contains("chord names"), "{err}");
}

/// The plugin's inference thread: the runtime on its own thread, in live mode on `model`.
fn live_runtime(model: Arc<LoadedModel>) -> (AudioLink, std::thread::JoinHandle<()>) {
    let (_commands, inbox) = command_channel();
    let (audio, worker) = link(inbox);
    let host = FixedHost::new(Settings::live(config(4)), model.into());
    let thread = spawn(
        host,
        Arc::new(Shared::default()),
        worker,
        RuntimeFiles::default(),
    )
    .unwrap();
    (audio, thread)
}

#[test]
fn the_free_running_thread_answers_frames_with_plans() {
    let (audio, thread) = live_runtime(tiny_model());
    let send = |output| audio.frames.try_send(output).unwrap();
    send(QuantizerOutput::PhraseStart {
        phrase: 0,
        first_frame: 0,
        time_signature: TimeSignature::default(),
        clock: ClockSource::Host,
    });
    for index in 0..24 {
        let frame = if index % 4 == 0 {
            MelodyFrame::Onset(60 + (index % 7) as u8)
        } else {
            MelodyFrame::Hold(60 + (index / 4 * 4 % 7) as u8)
        };
        send(QuantizerOutput::Frame {
            phrase: 0,
            index,
            frame,
        });
    }
    // The last plan covers the 16 frames after the 24 heard ones.
    let mut last_end = 0;
    while last_end < 24 + 16 {
        let message = audio
            .plans
            .recv_timeout(Duration::from_secs(60))
            .expect("a plan");
        if let ToAudio::Live(plan) = message {
            assert!(plan.first_frame >= 16, "nothing planned while listening");
            last_end = plan.end_frame();
            audio.recycle.try_send(plan).unwrap();
        }
    }
    assert_eq!(last_end, 40);
    drop(audio);
    thread.join().unwrap();
}

#[test]
fn the_audio_side_never_allocates_or_frees() {
    const BLOCK: u32 = 512;
    const RATE: f64 = 48_000.0;
    let (audio, thread) = live_runtime(tiny_model());
    let mut quantizer = Quantizer::new(QuantizerConfig::default());
    let mut scheduler = Scheduler::new(LISTEN_BEATS * 4);
    let mut played = 0u64;
    let beats_per_block = f64::from(BLOCK) * 120.0 / 60.0 / RATE;
    let mut beat = 0.0;
    for n in 0..1500u32 {
        // Play, stop for a few blocks, then play again inside a two-bar loop.
        let playing = !(700..710).contains(&n);
        if n == 710 {
            beat = 100.0;
        }
        let loop_range = (n >= 710).then_some((100.0, 108.0));
        let block = Block {
            transport: Some(Transport {
                tempo_bpm: 120.0,
                beat_position: beat,
                playing,
                loop_range,
                time_signature: TimeSignature::default(),
            }),
            len_samples: BLOCK,
            sample_rate: RATE,
        };
        let pitch = 60 + (n / 12 % 12) as u8;
        let events = [NoteEvent::on(0, pitch), NoteEvent::off(400, pitch)];
        let keys = if n % 12 == 0 {
            &events[..]
        } else {
            &events[..0]
        };

        heap_counter::watch(true);
        let mut started = None;
        quantizer.process_block(&block, &[], keys, &mut |output| {
            if let QuantizerOutput::PhraseStart {
                phrase,
                first_frame,
                ..
            } = output
            {
                started = Some((phrase, first_frame));
            }
            let _ = audio.frames.try_send(output);
        });
        while let Ok(message) = audio.plans.try_recv() {
            if let ToAudio::Live(plan) = message {
                if let Some(old) = scheduler.accept(plan) {
                    audio.recycle.try_send(old).unwrap();
                }
            }
        }
        scheduler.process_block(&block, &mut |output| {
            if let SchedulerOutput::Note(_) = output {
                played += 1;
            }
        });
        if let Some((phrase, first_frame)) = started {
            if let Some(old) = scheduler.begin_phrase(phrase, first_frame) {
                audio.recycle.try_send(old).unwrap();
            }
        }
        heap_counter::watch(false);

        if playing {
            beat += beats_per_block;
            if n >= 710 && beat >= 108.0 {
                beat -= 8.0;
            }
        }
        // Leave the engine some time, as a real audio callback would.
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(heap_counter::heap_calls(), 0);
    assert!(played > 0, "the runtime's plans were played");
    drop(audio);
    thread.join().unwrap();
}
