//! The synth runs on the audio thread: once built, nothing it does may touch the heap. A counting
//! global allocator watches this thread over many blocks split at events of every kind.

use comper_realtime::synth::Synth;

#[path = "../../../tests/common/heap_counter.rs"]
mod heap_counter;

const BLOCK: usize = 512;

/// Plays block number `n` of a script that holds chords, changes them, steals voices, releases
/// everything, resets and changes the sample rate, splitting the block at each event.
fn play_block(synth: &mut Synth, n: usize, left: &mut [f32], right: &mut [f32]) {
    let root = 36 + (n % 24) as u8;
    let mut at = 0;
    let mut render_to = |synth: &mut Synth, end: usize| {
        if let (Some(l), Some(r)) = (left.get_mut(at..end), right.get_mut(at..end)) {
            synth.render(l, r);
        }
        at = end;
    };
    render_to(synth, 100);
    for offset in [0, 4, 7, 11] {
        synth.note_on(root + offset, 0.8);
    }
    render_to(synth, 101);
    if n.is_multiple_of(5) {
        for pitch in 60..90 {
            synth.note_on(pitch, 0.4); // more than the voices: steals
        }
    }
    render_to(synth, 300);
    for offset in [0, 4, 7, 11] {
        synth.note_off(root + offset);
    }
    render_to(synth, 301);
    match n % 50 {
        10 => synth.release_all(),
        20 => synth.reset(),
        30 => synth.set_sample_rate(if n % 100 == 30 { 44_100.0 } else { 48_000.0 }),
        _ => {}
    }
    render_to(synth, BLOCK);
}

#[test]
fn rendering_with_events_never_allocates() {
    let mut synth = Synth::new(48_000.0);
    let mut left = vec![0.0_f32; BLOCK];
    let mut right = vec![0.0_f32; BLOCK];
    let mut loudest = 0.0_f32;
    let mut run = |blocks: std::ops::Range<usize>, synth: &mut Synth| {
        for n in blocks {
            left.fill(0.0);
            right.fill(0.0);
            play_block(synth, n, &mut left, &mut right);
            loudest = left.iter().fold(loudest, |m, x| m.max(x.abs()));
        }
    };

    run(0..100, &mut synth); // warm-up
    heap_counter::watch(true);
    run(100..5_100, &mut synth);
    heap_counter::watch(false);

    assert_eq!(heap_counter::heap_calls(), 0);
    assert!(loudest > 0.01, "the script must actually sound");
}
