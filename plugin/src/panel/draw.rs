//! Painting the panel's musical views: the melody roll, the option lanes and the live timeline.
//! Pure drawing from snapshots; input handling stays in the panel.

use comper_realtime::frames::{MelodyFrame, FRAMES_PER_BEAT};
use egui::{
    Align2, Color32, CornerRadius, FontId, Pos2, Rect, Sense, Stroke, StrokeKind, Ui, Vec2,
};

use comper_generate::runtime::SessionOption;
use comper_realtime::link::LiveFrame;

pub const BACKGROUND: Color32 = Color32::from_rgb(24, 26, 31);
const GRID_BAR: Color32 = Color32::from_rgb(78, 84, 96);
const GRID_BEAT: Color32 = Color32::from_rgb(44, 48, 56);
const NOTE: Color32 = Color32::from_rgb(242, 196, 92);
const CHORD: Color32 = Color32::from_rgb(72, 142, 214);
const CHORD_SELECTED: Color32 = Color32::from_rgb(98, 186, 140);
const LOCKED: Color32 = Color32::from_rgb(236, 112, 99);
const TEXT: Color32 = Color32::from_rgb(235, 238, 244);
const PLAYHEAD: Color32 = Color32::from_rgb(255, 255, 255);

/// Maps frames to x positions inside a rect.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    pub rect: Rect,
    pub frames: usize,
    pub frames_per_bar: usize,
}

impl Grid {
    fn x(&self, frame: f32) -> f32 {
        let span = self.frames.max(1) as f32;
        self.rect.left() + self.rect.width() * frame / span
    }

    /// The frame under an x position.
    pub fn frame_at(&self, x: f32) -> usize {
        let t = ((x - self.rect.left()) / self.rect.width().max(1.0)).clamp(0.0, 0.9999);
        (t * self.frames as f32) as usize
    }

    fn lines(&self, ui: &Ui) {
        let painter = ui.painter_at(self.rect);
        let beat = FRAMES_PER_BEAT as usize;
        for frame in (0..=self.frames).step_by(beat) {
            let x = self.x(frame as f32);
            let color = if frame % self.frames_per_bar.max(1) == 0 {
                GRID_BAR
            } else {
                GRID_BEAT
            };
            painter.line_segment(
                [
                    Pos2::new(x, self.rect.top()),
                    Pos2::new(x, self.rect.bottom()),
                ],
                Stroke::new(1.0, color),
            );
        }
    }
}

/// The captured melody as a small piano roll.
pub fn melody_roll(ui: &mut Ui, melody: &[MelodyFrame], frames_per_bar: usize, height: f32) {
    let (rect, _) = ui.allocate_exact_size(Vec2::new(ui.available_width(), height), Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, CornerRadius::same(4), BACKGROUND);
    let grid = Grid {
        rect,
        frames: melody.len(),
        frames_per_bar,
    };
    grid.lines(ui);
    if melody.is_empty() {
        painter.text(
            rect.center(),
            Align2::CENTER_CENTER,
            "Play a phrase: Comper captures it from the next bar line",
            FontId::proportional(14.0),
            TEXT,
        );
        return;
    }
    let pitches: Vec<u8> = melody.iter().filter_map(|f| f.pitch()).collect();
    let low = pitches
        .iter()
        .copied()
        .min()
        .unwrap_or(60)
        .saturating_sub(2);
    let high = pitches
        .iter()
        .copied()
        .max()
        .unwrap_or(72)
        .saturating_add(2);
    let rows = f32::from(high - low).max(1.0);
    let mut start = 0;
    while start < melody.len() {
        let MelodyFrame::Onset(pitch) = melody[start] else {
            start += 1;
            continue;
        };
        let mut end = start + 1;
        while end < melody.len() && melody[end] == MelodyFrame::Hold(pitch) {
            end += 1;
        }
        let y = rect.bottom() - rect.height() * f32::from(pitch - low) / rows;
        let note = Rect::from_min_max(
            Pos2::new(grid.x(start as f32) + 1.0, y - 3.0),
            Pos2::new(grid.x(end as f32) - 1.0, y + 3.0),
        );
        painter.rect_filled(note, CornerRadius::same(2), NOTE);
        start = end;
    }
}

/// One option's chords as blocks on the grid; returns the lane's response (click = select,
/// secondary click = lock) and the grid for hit-testing.
pub fn option_lane(
    ui: &mut Ui,
    option: &SessionOption,
    locked: &[Option<(String, bool)>],
    frames_per_bar: usize,
    selected: bool,
    height: f32,
) -> (egui::Response, Grid) {
    let (rect, response) =
        ui.allocate_exact_size(Vec2::new(ui.available_width(), height), Sense::click());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, CornerRadius::same(4), BACKGROUND);
    let grid = Grid {
        rect,
        frames: option.frames.len(),
        frames_per_bar,
    };
    grid.lines(ui);
    let fill = if selected { CHORD_SELECTED } else { CHORD };
    for (start, end, name) in spans(&option.frames) {
        let block = Rect::from_min_max(
            Pos2::new(grid.x(start as f32) + 1.5, rect.top() + 4.0),
            Pos2::new(grid.x(end as f32) - 1.5, rect.bottom() - 4.0),
        );
        painter.rect_filled(block, CornerRadius::same(3), fill);
        let is_locked = (start..end).any(|i| locked.get(i).is_some_and(Option::is_some));
        if is_locked {
            painter.rect_stroke(
                block,
                CornerRadius::same(3),
                Stroke::new(2.0, LOCKED),
                StrokeKind::Inside,
            );
        }
        painter.with_clip_rect(block).text(
            block.left_center() + Vec2::new(4.0, 0.0),
            Align2::LEFT_CENTER,
            &name,
            FontId::proportional(13.0),
            Color32::BLACK,
        );
    }
    if selected {
        painter.rect_stroke(
            rect,
            CornerRadius::same(4),
            Stroke::new(2.0, CHORD_SELECTED),
            StrokeKind::Outside,
        );
    }
    (response, grid)
}

/// An empty area with a hint in it: what the panel waits for.
pub fn waiting(ui: &mut Ui, hint: &str, height: f32) {
    let (rect, _) = ui.allocate_exact_size(Vec2::new(ui.available_width(), height), Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, CornerRadius::same(4), BACKGROUND);
    painter.text(
        rect.center(),
        Align2::CENTER_CENTER,
        hint,
        FontId::proportional(14.0),
        TEXT,
    );
}

/// The live timeline: committed chords solid, planned ones translucent, the playhead at `now`
/// (absolute frames), `before` frames of history and `after` of future visible.
pub fn live_timeline(
    ui: &mut Ui,
    frames: &[LiveFrame],
    melody: &[(i64, MelodyFrame)],
    now: f64,
    frames_per_bar: usize,
    height: f32,
) {
    let (rect, _) = ui.allocate_exact_size(Vec2::new(ui.available_width(), height), Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, CornerRadius::same(4), BACKGROUND);
    let before = 2.0 * frames_per_bar as f64;
    let span = 4.0 * frames_per_bar as f64;
    let first = now - before;
    let x = |frame: f64| rect.left() + rect.width() * ((frame - first) / span) as f32;
    let bar = frames_per_bar.max(1) as i64;
    let mut line = (first as i64).div_euclid(bar) * bar;
    while (line as f64) <= first + span {
        let px = x(line as f64);
        painter.line_segment(
            [Pos2::new(px, rect.top()), Pos2::new(px, rect.bottom())],
            Stroke::new(1.0, GRID_BAR),
        );
        line += bar;
    }
    // The player's notes in the top part, the chords under them.
    let split = rect.top() + rect.height() * 0.45;
    draw_heard_melody(
        &painter,
        melody,
        Rect::from_min_max(rect.min, Pos2::new(rect.right(), split)),
        &x,
    );
    let rect = Rect::from_min_max(Pos2::new(rect.left(), split), rect.max);
    if frames.is_empty() {
        painter.text(
            rect.center(),
            Align2::CENTER_CENTER,
            "Live: start the transport and play; Comper listens, then joins in",
            FontId::proportional(14.0),
            TEXT,
        );
    }
    let mut i = 0;
    while i < frames.len() {
        let frame = &frames[i];
        let mut j = i + 1;
        while j < frames.len()
            && !frames[j].onset
            && frames[j].chord == frame.chord
            && frames[j].committed == frame.committed
            && frames[j].index == frames[j - 1].index + 1
        {
            j += 1;
        }
        if let Some(name) = &frame.chord {
            let alpha = if frame.committed { 255 } else { 90 };
            let fill = Color32::from_rgba_unmultiplied(72, 142, 214, alpha);
            let block = Rect::from_min_max(
                Pos2::new(x(frame.index as f64) + 1.0, rect.top() + 6.0),
                Pos2::new(
                    x(frames[j - 1].index as f64 + 1.0) - 1.0,
                    rect.bottom() - 6.0,
                ),
            )
            .intersect(rect);
            if block.width() > 0.0 {
                painter.rect_filled(block, CornerRadius::same(3), fill);
                // Every block is named: a new chord, the first one in view, or where a
                // committed chord's planned continuation begins.
                {
                    painter.with_clip_rect(block).text(
                        block.left_center() + Vec2::new(4.0, 0.0),
                        Align2::LEFT_CENTER,
                        name,
                        FontId::proportional(13.0),
                        Color32::BLACK,
                    );
                }
            }
        }
        i = j;
    }
    let px = x(now);
    painter.line_segment(
        [Pos2::new(px, rect.top()), Pos2::new(px, rect.bottom())],
        Stroke::new(2.0, PLAYHEAD),
    );
}

/// Notes of the heard melody as bars in `rect`, placed by `x` (absolute frame → pixel).
fn draw_heard_melody(
    painter: &egui::Painter,
    melody: &[(i64, MelodyFrame)],
    rect: Rect,
    x: &dyn Fn(f64) -> f32,
) {
    let pitches = melody.iter().filter_map(|(_, f)| f.pitch());
    let (low, high) = pitches.fold((u8::MAX, 0), |(lo, hi), p| (lo.min(p), hi.max(p)));
    if low > high {
        return;
    }
    let (low, high) = (low.saturating_sub(2), high.saturating_add(2));
    let rows = f32::from(high - low).max(1.0);
    let mut i = 0;
    while i < melody.len() {
        let (start, MelodyFrame::Onset(pitch)) = melody[i] else {
            i += 1;
            continue;
        };
        let mut j = i + 1;
        while j < melody.len()
            && melody[j].1 == MelodyFrame::Hold(pitch)
            && melody[j].0 == melody[j - 1].0 + 1
        {
            j += 1;
        }
        let end = melody[j - 1].0 + 1;
        let y = rect.bottom() - rect.height() * f32::from(pitch - low) / rows;
        let note = Rect::from_min_max(
            Pos2::new(x(start as f64) + 1.0, y - 3.0),
            Pos2::new(x(end as f64) - 1.0, y + 3.0),
        )
        .intersect(rect);
        if note.width() > 0.0 {
            painter.rect_filled(note, CornerRadius::same(2), NOTE);
        }
        i = j;
    }
}

/// `(start, end, name)` of each chord of an option (silences skipped).
pub fn spans(frames: &[Option<(String, bool)>]) -> Vec<(usize, usize, String)> {
    let mut out: Vec<(usize, usize, String)> = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        if let Some((name, onset)) = frame {
            match out.last_mut() {
                Some(last) if !onset && last.1 == i && &last.2 == name => last.1 = i + 1,
                _ => out.push((i, i + 1, name.clone())),
            }
        }
    }
    out
}
