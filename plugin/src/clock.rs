//! Comper's own clock, for when the host's transport does not roll: no playhead at all, a stopped
//! transport (a keyboard player jamming before pressing play), or a host that never reports one
//! (pedalboard). The quantizer and both players follow a host transport; this module hands them
//! one, so Live mode jams along with whatever is played and Suggest captures a phrase and loops
//! the chosen option, exactly as with a rolling host.
//!
//! # Rules
//! * A rolling host transport always wins; the own clock stops the moment one appears.
//! * The own clock starts at the first *fresh* note-on (a key that was not already down), placed
//!   exactly on beat 0, at the host's tempo when it reports one, else at the last tempo it
//!   reported, else [`DEFAULT_TEMPO_BPM`].
//! * It runs while the player plays, and stops [`IDLE_BEATS`] beats after the last fresh note-on or
//!   release. A key the host presses again and again without ever releasing it (pedalboard's
//!   warm-up note sent every block) is not playing: those repeats are no activity.
//! * While `keep_running` is asked (Suggest mode with a progression to loop) it does not stop, so
//!   a loop captured on it plays on while the user auditions the options. It never *starts*
//!   without a note: pressing stop in the host silences Comper, and the next key pressed starts
//!   the loop again on that key (an arranger keyboard's "sync start").
//!
//! Never allocates; work per block is bounded by the number of note events.

use comper_realtime::frames::TimeSignature;
use comper_realtime::quantize::{
    Block, NoteEvent, NoteEventKind, Transport, MAX_TEMPO_BPM, MIN_TEMPO_BPM,
};

/// Tempo of the own clock when the host never gave one.
pub const DEFAULT_TEMPO_BPM: f64 = 120.0;
/// Beats without a fresh note-on or a release after which the own clock stops (two bars of 4/4:
/// longer than Live mode's longest lookahead, so planned chords still play out).
pub const IDLE_BEATS: f64 = 8.0;

/// The own clock's state across blocks.
#[derive(Debug, Clone)]
pub struct SessionClock {
    /// Beat at the start of the next block while running; where it stopped otherwise.
    position: f64,
    running: bool,
    /// Beat of the last fresh note-on or release.
    last_activity: f64,
    /// Last tempo a host reported (hosts report one even when stopped).
    tempo_bpm: f64,
    /// Keys down, to tell a fresh press from a host's repeated note-on.
    down: [bool; 128],
}

impl Default for SessionClock {
    fn default() -> Self {
        Self {
            position: 0.0,
            running: false,
            last_activity: 0.0,
            tempo_bpm: DEFAULT_TEMPO_BPM,
            down: [false; 128],
        }
    }
}

impl SessionClock {
    /// A stopped clock with no keys down.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the own clock (not the host's) drove the last block.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Stops the clock and forgets held keys (host reset, re-activation).
    pub fn reset(&mut self) {
        let tempo_bpm = self.tempo_bpm;
        *self = Self {
            tempo_bpm,
            ..Self::default()
        };
    }

    /// The block as the quantizer and players should see it: the host's own when its transport
    /// rolls, else one on the own clock (rolling or stopped) following the rules above.
    pub fn block(&mut self, host: &Block, keys: &[NoteEvent], keep_running: bool) -> Block {
        let host_transport = host.transport;
        if let Some(tempo) = host_transport
            .map(|t| t.tempo_bpm)
            .filter(|t| t.is_finite() && *t > 0.0)
        {
            // The quantizer's bounds, so both measure the same beats.
            self.tempo_bpm = tempo.clamp(MIN_TEMPO_BPM, MAX_TEMPO_BPM);
        }
        let timed = host.sample_rate.is_finite() && host.sample_rate > 0.0;
        let host_rolls = host_transport.is_some_and(|t| t.playing && t.beat_position.is_finite());
        let beats_per_sample = if timed {
            self.tempo_bpm / 60.0 / host.sample_rate
        } else {
            0.0
        };
        let (fresh_on, last_event) = self.read_keys(keys);
        if host_rolls || !timed {
            self.running = false;
            return *host;
        }
        if !self.running {
            if let Some(offset) = fresh_on {
                self.running = true;
                self.position = -f64::from(offset) * beats_per_sample;
                self.last_activity = 0.0;
            }
        }
        let time_signature = host_transport.map_or(TimeSignature::default(), |t| t.time_signature);
        let start = self.position;
        let end = start + f64::from(host.len_samples) * beats_per_sample;
        if self.running {
            if let Some(offset) = last_event {
                self.last_activity = start + f64::from(offset) * beats_per_sample;
            }
            if !keep_running && end - self.last_activity > IDLE_BEATS {
                self.running = false;
            }
        }
        let playing = self.running;
        if playing {
            self.position = end;
        }
        Block {
            transport: Some(Transport {
                tempo_bpm: self.tempo_bpm,
                beat_position: start,
                playing,
                loop_range: None,
                time_signature,
            }),
            ..*host
        }
    }

    /// Updates the keys down; returns the offset of the first fresh note-on and of the last
    /// fresh note-on or release in the block.
    fn read_keys(&mut self, keys: &[NoteEvent]) -> (Option<u32>, Option<u32>) {
        let mut fresh_on = None;
        let mut last_event = None;
        for key in keys {
            let Some(down) = self.down.get_mut(usize::from(key.pitch)) else {
                continue;
            };
            let pressed = key.kind == NoteEventKind::On;
            if pressed != *down {
                last_event = Some(key.offset);
                if pressed && fresh_on.is_none() {
                    fresh_on = Some(key.offset);
                }
            }
            *down = pressed;
        }
        (fresh_on, last_event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SR: f64 = 48_000.0;
    const LEN: u32 = 6_000; // one 16th note at 120 BPM

    fn host(transport: Option<Transport>) -> Block {
        Block {
            transport,
            len_samples: LEN,
            sample_rate: SR,
        }
    }

    fn stopped(tempo_bpm: f64) -> Option<Transport> {
        Some(Transport {
            tempo_bpm,
            beat_position: 0.0,
            playing: false,
            loop_range: None,
            time_signature: TimeSignature::default(),
        })
    }

    fn rolls(block: &Block) -> Option<f64> {
        block
            .transport
            .filter(|t| t.playing)
            .map(|t| t.beat_position)
    }

    #[test]
    fn starts_on_the_first_note_on_beat_zero_and_stops_when_idle() {
        let mut clock = SessionClock::new();
        assert_eq!(rolls(&clock.block(&host(None), &[], false)), None);
        let first = clock.block(&host(None), &[NoteEvent::on(3_000, 60)], false);
        // The note lands on beat 0: the block starts half a 16th before it.
        assert_eq!(rolls(&first), Some(-0.125));
        assert_eq!(
            first.transport.map(|t| t.tempo_bpm),
            Some(DEFAULT_TEMPO_BPM)
        );
        let second = clock.block(&host(None), &[NoteEvent::off(0, 60)], false);
        assert_eq!(rolls(&second), Some(0.125));
        let mut last = None;
        for _ in 0..40 {
            last = rolls(&clock.block(&host(None), &[], false)).or(last);
        }
        // Stops once the block would end past IDLE_BEATS after the release at beat 0.125.
        assert!(!clock.is_running());
        let last = last.unwrap();
        assert!(last + 0.25 - 0.125 <= IDLE_BEATS && last + 0.5 - 0.125 > IDLE_BEATS);
    }

    #[test]
    fn follows_the_stopped_hosts_tempo_and_yields_to_a_rolling_one() {
        let mut clock = SessionClock::new();
        let block = clock.block(&host(stopped(90.0)), &[NoteEvent::on(0, 62)], false);
        assert_eq!(rolls(&block), Some(0.0));
        assert_eq!(block.transport.map(|t| t.tempo_bpm), Some(90.0));
        let next = clock.block(&host(stopped(90.0)), &[], false);
        assert!((rolls(&next).unwrap() - 6_000.0 * 90.0 / 60.0 / SR).abs() < 1e-12);
        let mut rolling = stopped(100.0);
        if let Some(t) = rolling.as_mut() {
            t.playing = true;
            t.beat_position = 32.0;
        }
        let host_block = host(rolling);
        assert_eq!(clock.block(&host_block, &[], false), host_block);
        assert!(!clock.is_running());
    }

    #[test]
    fn a_key_pressed_again_without_release_is_not_playing() {
        let mut clock = SessionClock::new();
        clock.block(&host(stopped(120.0)), &[NoteEvent::on(0, 60)], false);
        // pedalboard's warm-up: the same key, pressed again every block, never released.
        let mut blocks = 1;
        while clock.is_running() {
            clock.block(&host(stopped(120.0)), &[NoteEvent::on(0, 60)], false);
            blocks += 1;
            assert!(blocks < 100, "the repeated note kept the clock running");
        }
        // 32 blocks of a 16th roll (IDLE_BEATS), the 33rd is stopped.
        assert_eq!(blocks, 33);
    }

    #[test]
    fn keep_running_holds_the_clock_but_never_starts_it() {
        let mut clock = SessionClock::new();
        clock.block(
            &host(None),
            &[NoteEvent::on(0, 60), NoteEvent::off(10, 60)],
            false,
        );
        for _ in 0..200 {
            clock.block(&host(None), &[], true);
        }
        assert!(clock.is_running());
        for _ in 0..40 {
            clock.block(&host(None), &[], false);
        }
        assert!(!clock.is_running());
        assert_eq!(rolls(&clock.block(&host(None), &[], true)), None);
        let restarted = clock.block(&host(None), &[NoteEvent::on(0, 64)], true);
        assert_eq!(rolls(&restarted), Some(0.0));
    }
}
