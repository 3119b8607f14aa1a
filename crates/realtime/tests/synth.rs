//! The built-in synth: pitch, silence after release, the voice limit, level, sample accuracy
//! across slices, and robustness to nonsense input.

use comper_realtime::synth::{Synth, MAX_VOICES, RELEASE_SECONDS};

const RATE: f32 = 48_000.0;

/// Renders `samples` samples into fresh zeroed buffers.
fn render(synth: &mut Synth, samples: usize) -> (Vec<f32>, Vec<f32>) {
    let mut left = vec![0.0; samples];
    let mut right = vec![0.0; samples];
    synth.render(&mut left, &mut right);
    (left, right)
}

/// Magnitude of the DFT of `signal` at `frequency_hz` (a single-bin Goertzel-free sum).
fn magnitude_at(signal: &[f32], frequency_hz: f32, sample_rate: f32) -> f64 {
    let step = 2.0 * std::f64::consts::PI * f64::from(frequency_hz) / f64::from(sample_rate);
    let (re, im) = signal
        .iter()
        .enumerate()
        .fold((0.0, 0.0), |(re, im), (n, &x)| {
            let angle = step * n as f64;
            (
                re + f64::from(x) * angle.cos(),
                im - f64::from(x) * angle.sin(),
            )
        });
    (re * re + im * im).sqrt() / signal.len() as f64
}

fn peak(signal: &[f32]) -> f32 {
    signal.iter().fold(0.0, |peak, x| peak.max(x.abs()))
}

/// Samples for the longest release to finish, with margin.
fn release_samples(sample_rate: f32) -> usize {
    (RELEASE_SECONDS * sample_rate * 1.2) as usize
}

#[test]
fn a_note_sounds_at_its_fundamental_at_every_rate() {
    for rate in [44_100.0, 48_000.0, 96_000.0] {
        let mut synth = Synth::new(rate);
        synth.note_on(57, 0.8); // A3, 220 Hz
        let (left, right) = render(&mut synth, rate as usize);
        for side in [&left, &right] {
            let steady = &side[rate as usize / 4..];
            let fundamental = magnitude_at(steady, 220.0, rate);
            assert!(fundamental > 0.004, "{rate} Hz: fundamental {fundamental}");
            for harmonic in [440.0, 660.0] {
                assert!(fundamental > magnitude_at(steady, harmonic, rate));
            }
            for off_pitch in [165.0, 247.0, 330.0] {
                let stray = magnitude_at(steady, off_pitch, rate);
                assert!(
                    fundamental > 20.0 * stray,
                    "{rate} Hz: {off_pitch} Hz at {stray} vs fundamental {fundamental}"
                );
            }
        }
        assert_ne!(left, right, "the detuned oscillators are panned apart");
    }
}

#[test]
fn a_released_note_falls_silent_and_frees_its_voice() {
    let mut synth = Synth::new(RATE);
    synth.note_on(60, 1.0);
    let (held, _) = render(&mut synth, 24_000);
    assert!(peak(&held[12_000..]) > 0.02);
    synth.note_off(60);
    assert_eq!(synth.active_voices(), 1, "a release still sounds");
    let (releasing, _) = render(&mut synth, 2_400);
    assert!(
        peak(&releasing) > 0.01,
        "the release fades, it does not cut"
    );
    render(&mut synth, release_samples(RATE));
    assert_eq!(synth.active_voices(), 0);
    let (left, right) = render(&mut synth, 4_800);
    assert!(left.iter().chain(&right).all(|&x| x == 0.0));
}

#[test]
fn note_off_of_a_pitch_not_sounding_changes_nothing() {
    let mut synth = Synth::new(RATE);
    synth.note_on(60, 1.0);
    synth.note_off(61);
    synth.note_off(200);
    render(&mut synth, release_samples(RATE));
    assert_eq!(synth.active_voices(), 1);
}

#[test]
fn release_all_frees_every_voice_after_the_release() {
    let mut synth = Synth::new(RATE);
    for pitch in [48, 55, 60, 64, 67] {
        synth.note_on(pitch, 0.7);
    }
    render(&mut synth, 4_800);
    synth.release_all();
    assert_eq!(synth.active_voices(), 5);
    render(&mut synth, release_samples(RATE));
    assert_eq!(synth.active_voices(), 0);
    let (left, _) = render(&mut synth, 512);
    assert!(left.iter().all(|&x| x == 0.0));
}

#[test]
fn reset_silences_at_once() {
    let mut synth = Synth::new(RATE);
    for pitch in [48, 55, 60, 64] {
        synth.note_on(pitch, 1.0);
    }
    render(&mut synth, 4_800);
    synth.reset();
    assert_eq!(synth.active_voices(), 0);
    let (left, right) = render(&mut synth, 512);
    assert!(left.iter().chain(&right).all(|&x| x == 0.0));
}

#[test]
fn a_sample_rate_change_silences_and_retunes() {
    let mut synth = Synth::new(RATE);
    synth.note_on(60, 1.0);
    render(&mut synth, 512);
    synth.set_sample_rate(96_000.0);
    assert_eq!(synth.active_voices(), 0);
    synth.note_on(57, 0.8);
    let (left, _) = render(&mut synth, 96_000);
    let steady = &left[24_000..];
    assert!(magnitude_at(steady, 220.0, 96_000.0) > 20.0 * magnitude_at(steady, 165.0, 96_000.0));
}

#[test]
fn retriggering_a_pitch_reuses_its_voice() {
    let mut synth = Synth::new(RATE);
    synth.note_on(60, 0.5);
    render(&mut synth, 1_000);
    synth.note_on(60, 1.0);
    assert_eq!(synth.active_voices(), 1);
    synth.note_off(60);
    render(&mut synth, 1_000);
    synth.note_on(60, 0.3); // during the release
    assert_eq!(synth.active_voices(), 1);
    render(&mut synth, release_samples(RATE));
    assert_eq!(synth.active_voices(), 1, "the retriggered note is held");
}

#[test]
fn seventeen_notes_share_sixteen_voices() {
    let mut synth = Synth::new(RATE);
    for pitch in 40..40 + MAX_VOICES as u8 + 1 {
        synth.note_on(pitch, 1.0);
        render(&mut synth, 64);
    }
    assert_eq!(synth.active_voices(), MAX_VOICES);
    // Far more notes than voices, all at once: still bounded, still sounding.
    for pitch in 0..=127 {
        synth.note_on(pitch, 0.5);
    }
    assert_eq!(synth.active_voices(), MAX_VOICES);
    let (left, _) = render(&mut synth, 4_800);
    assert!(peak(&left[2_400..]) > 0.01);
    synth.release_all();
    render(&mut synth, release_samples(RATE));
    assert_eq!(synth.active_voices(), 0, "no stolen or pending note hangs");
}

#[test]
fn full_velocity_chords_of_up_to_eight_notes_do_not_clip() {
    let chords: [&[u8]; 4] = [
        &[48, 52, 55, 60],
        &[36, 43, 48, 52, 55, 60, 64, 67],
        &[60, 61, 62, 63, 64, 65, 66, 67],
        &[24, 36, 48, 60, 72, 84, 96, 108],
    ];
    for chord in chords {
        let mut synth = Synth::new(RATE);
        for &pitch in chord {
            synth.note_on(pitch, 1.0);
        }
        let (left, right) = render(&mut synth, 96_000);
        let loudest = peak(&left).max(peak(&right));
        assert!(loudest < 1.0, "{chord:?} peaks at {loudest}");
        assert!(loudest > 0.1, "{chord:?} is too quiet: {loudest}");
    }
}

/// A small deterministic generator for the scripted tests.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }

    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
}

/// One scripted event at a sample offset of the whole render.
#[derive(Clone, Copy)]
enum Event {
    On(u8, f32),
    Off(u8),
    ReleaseAll,
}

fn apply(synth: &mut Synth, event: Event) {
    match event {
        Event::On(pitch, velocity) => synth.note_on(pitch, velocity),
        Event::Off(pitch) => synth.note_off(pitch),
        Event::ReleaseAll => synth.release_all(),
    }
}

/// Busy events over `samples`, sorted by offset, many at the same offset, enough notes to steal.
fn script(rng: &mut Lcg, samples: usize) -> Vec<(usize, Event)> {
    let mut events: Vec<(usize, Event)> = (0..600)
        .map(|_| {
            let offset = rng.below(samples as u32) as usize;
            let pitch = 30 + rng.below(60) as u8;
            let event = match rng.below(20) {
                0 => Event::ReleaseAll,
                1..=10 => Event::On(pitch, rng.below(101) as f32 / 100.0),
                _ => Event::Off(pitch),
            };
            (offset, event)
        })
        .collect();
    events.sort_by_key(|&(offset, _)| offset);
    events
}

/// Renders `samples` samples with `events`, splitting each stretch between events into slices
/// whose lengths come from `slice_len`.
fn render_scripted(
    events: &[(usize, Event)],
    samples: usize,
    mut slice_len: impl FnMut() -> usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut synth = Synth::new(RATE);
    let mut left = vec![0.0; samples];
    let mut right = vec![0.0; samples];
    let mut at = 0;
    let mut next_event = 0;
    while at < samples {
        while let Some(&(offset, event)) = events.get(next_event).filter(|(o, _)| *o <= at) {
            assert!(offset <= at);
            apply(&mut synth, event);
            next_event += 1;
        }
        let event_at = events.get(next_event).map_or(samples, |&(o, _)| o);
        let end = at.saturating_add(slice_len()).min(event_at);
        synth.render(&mut left[at..end], &mut right[at..end]);
        at = end;
    }
    (left, right)
}

#[test]
fn rendering_in_tiny_slices_equals_rendering_at_once() {
    let mut rng = Lcg(7);
    let samples = 96_000;
    let events = script(&mut rng, samples);
    let whole = render_scripted(&events, samples, || usize::MAX);
    let mut lengths = Lcg(11);
    let sliced = render_scripted(&events, samples, || lengths.below(9) as usize);
    assert!(peak(&whole.0) > 0.01);
    assert_eq!(whole, sliced);
}

#[test]
fn render_mixes_into_the_buffers_up_to_the_shorter_one() {
    let mut synth = Synth::new(RATE);
    synth.note_on(60, 1.0);
    let mut reference = Synth::new(RATE);
    reference.note_on(60, 1.0);
    let (alone, _) = render(&mut reference, 4_000);

    let mut left = vec![0.5; 4_100];
    let mut right = vec![-0.25; 4_000];
    synth.render(&mut left, &mut right);
    for (mixed, alone) in left.iter().zip(&alone) {
        assert_eq!(*mixed, 0.5 + alone);
    }
    assert!(
        left[4_000..].iter().all(|&x| x == 0.5),
        "past the shorter slice"
    );
    synth.render(&mut [], &mut []);
    synth.render(&mut [0.0], &mut []);
}

#[test]
fn nonsense_input_never_panics_nor_makes_nan() {
    let rates = [
        0.0,
        -44_100.0,
        f32::NAN,
        f32::INFINITY,
        1.0,
        8_000.0,
        44_100.0,
        192_000.0,
        1e12,
    ];
    let velocities = [f32::NAN, -1.0, 0.0, 0.5, 1.0, 7.0, f32::INFINITY];
    let mut rng = Lcg(3);
    let mut synth = Synth::new(f32::NAN);
    let mut left = vec![0.0; 700];
    let mut right = vec![0.0; 700];
    for step in 0..20_000 {
        match rng.below(40) {
            0 => synth.set_sample_rate(rates[rng.below(rates.len() as u32) as usize]),
            1 => synth.reset(),
            2 => synth.release_all(),
            3..=20 => synth.note_on(
                rng.below(256) as u8,
                velocities[rng.below(velocities.len() as u32) as usize],
            ),
            _ => synth.note_off(rng.below(256) as u8),
        }
        left.fill(0.0);
        right.fill(0.0);
        let len = rng.below(600) as usize;
        synth.render(
            &mut left[..len],
            &mut right[..len + rng.below(100) as usize],
        );
        assert!(synth.active_voices() <= MAX_VOICES);
        for &x in left.iter().chain(&right) {
            assert!(x.is_finite() && x.abs() < 4.0, "step {step}: sample {x}");
        }
    }
}

#[test]
fn an_invalid_sample_rate_means_48_khz() {
    let sounding = |rate: f32| {
        let mut synth = Synth::new(rate);
        synth.note_on(60, 0.9);
        render(&mut synth, 4_800)
    };
    let expected = sounding(48_000.0);
    for rate in [0.0, -1.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert_eq!(sounding(rate), expected, "rate {rate}");
    }
}
