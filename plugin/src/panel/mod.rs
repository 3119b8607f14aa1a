//! The editor: five options a musician can read, hear, pick and save, or the live timeline.
//!
//! The panel only reads shared state (the session mutex, which the audio thread never touches,
//! and atomics) and sends [`Command`]s; it never waits on the model. Keyboard: `1`–`5` select an
//! option, `R` regenerates. Right-click a chord to lock it (regeneration keeps it).
//!
//! Export: "Save MIDI" writes the selected option into [`export_dir`]. Dragging the "Drag clip"
//! handle writes it as `Comper option N - bars A-B.mid` into a temporary folder and drags that
//! file out with the window system's own drag-and-drop ([`crate::drag`]); where that is not
//! available, or nothing took the drop, the clip stays there and its path is copied to the
//! clipboard. The status line under the buttons says which happened.

mod draw;
mod editor;

pub use editor::{PanelEditor, PanelSize, WindowSize};

use std::sync::atomic::Ordering;
use std::sync::Arc;

use comper_generate::suggest::frames_per_bar;
use crossbeam_channel::Sender;
use nice_plug::context::gui::GuiContext;
use nice_plug_egui::baseview::WindowContext;
use nice_plug_egui::widgets::ParamSlider;
use nice_plug_egui::NiceEguiApp;

use crate::drag::{Drag, DragOutcome};
use crate::export::{drag_clip, drag_dir, export_dir, save_selected, ExportSettings};
use crate::params::{ComperParams, Mode};
use comper_generate::runtime::OPTION_COUNT;
use comper_realtime::link::{Command, Shared, WorkerStatus};

/// Default editor size in logical pixels.
pub const SIZE: (u32, u32) = (960, 640);

/// The editor's state: what it needs to read and where it sends commands.
pub struct Panel {
    params: Arc<ComperParams>,
    shared: Arc<Shared>,
    commands: Sender<Command>,
    gui: Option<GuiContext>,
    with_melody: bool,
    /// The weights folder typed into the model field.
    weights_field: String,
    /// The last export's result, shown under the buttons.
    message: Option<String>,
    /// A drag-out in progress.
    drag: Option<Drag>,
}

impl Panel {
    pub fn new(params: Arc<ComperParams>, shared: Arc<Shared>, commands: Sender<Command>) -> Self {
        let weights_field = params
            .session
            .lock()
            .weights_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        Self {
            params,
            shared,
            commands,
            gui: None,
            with_melody: true,
            weights_field,
            message: None,
            drag: None,
        }
    }

    fn send(&self, command: Command) {
        // The worker may be stopped (plugin inactive); the command is then simply dropped.
        let _ = self.commands.send(command);
    }

    fn top_bar(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("Comper");
            ui.separator();
            self.mode_switch(ui);
            ui.separator();
            ui.label(format!("model: {}", self.shared.model_name()))
                .on_hover_text("The models in use; change them with the model folder below");
            ui.separator();
            let key = self.key_name();
            ui.label(format!("key: {key}")).on_hover_text(
                "The key Comper hears in the captured melody; the chords lean toward it",
            );
            ui.separator();
            let status = self.shared.status();
            let text = status_text(&status);
            if matches!(status, WorkerStatus::Error(_)) {
                ui.colored_label(egui::Color32::from_rgb(236, 112, 99), text);
            } else {
                if matches!(
                    status,
                    WorkerStatus::Generating | WorkerStatus::LoadingModel
                ) {
                    ui.spinner();
                }
                ui.label(text);
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let (beats, tempo, playing) = self.shared.transport();
                let bar_beats = self.bar_beats();
                let bar = (beats / bar_beats).floor() as i64 + 1;
                let beat = (beats - (bar - 1) as f64 * bar_beats).floor() as i64 + 1;
                let state = if playing { "playing" } else { "stopped" };
                ui.monospace(format!("{state} {tempo:.1} BPM  bar {bar}.{beat}"));
            });
        });
    }

    /// Suggest / Live as two labelled buttons (the host sees the same "Mode" parameter).
    fn mode_switch(&self, ui: &mut egui::Ui) {
        let Some(gui) = &self.gui else { return };
        let setter = gui.param_setter();
        let current = self.params.mode.value();
        let choices = [
            (
                Mode::Suggest,
                "Suggest",
                "Capture a phrase, get five progressions to choose from",
            ),
            (
                Mode::Live,
                "Live",
                "Comper listens, then plays chords along with you as you play",
            ),
        ];
        for (mode, label, hint) in choices {
            if ui
                .selectable_label(current == mode, label)
                .on_hover_text(hint)
                .clicked()
                && current != mode
            {
                setter.begin_set_parameter(&self.params.mode);
                setter.set_parameter(&self.params.mode, mode);
                setter.end_set_parameter(&self.params.mode);
            }
        }
    }

    /// The key of the captured melody (Suggest) or of the melody heard (Live), or a dash before
    /// anything was played.
    fn key_name(&self) -> String {
        let melody: Vec<_> = match self.params.mode.value() {
            Mode::Suggest => self.params.session.lock().melody.clone(),
            Mode::Live => self
                .shared
                .live_melody()
                .into_iter()
                .map(|(_, f)| f)
                .collect(),
        };
        if melody.iter().all(|f| f.pitch().is_none()) {
            return "–".into();
        }
        comper_music::harmony::melody_key(&melody).name()
    }

    fn bar_beats(&self) -> f64 {
        self.params.session.lock().time_signature.beats_per_bar()
    }

    fn suggest_view(&mut self, ui: &mut egui::Ui, window: &WindowContext) {
        let session = self.params.session.lock().clone();
        self.melody_or_waiting(ui, &session);
        ui.add_space(6.0);
        let mut clicks = LaneClicks::default();
        for index in 0..OPTION_COUNT {
            ui.horizontal(|ui| {
                option_header(ui, &session, index, &mut clicks);
                option_chords(ui, &session, index, &mut clicks);
            });
        }
        self.apply(clicks);
        ui.add_space(6.0);
        self.session_buttons(ui, &session, window);
        if let Some(message) = &self.message {
            ui.small(message);
        }
    }

    /// The captured melody, or what the panel waits for.
    fn melody_or_waiting(&self, ui: &mut egui::Ui, session: &comper_generate::runtime::Session) {
        ui.label("Melody");
        if session.melody.iter().all(|f| f.pitch().is_none()) {
            let hint = format!(
                "Waiting for you to play: start the host's transport and play a phrase of {} \
                 (the Phrase control); five options follow",
                bars_text(self.params.phrase_bars.value())
            );
            draw::waiting(ui, &hint, MELODY_HEIGHT);
        } else {
            let bar = frames_per_bar(session.time_signature);
            draw::melody_roll(ui, &session.melody, bar, MELODY_HEIGHT);
        }
    }

    /// Sends what was clicked in the option lanes.
    fn apply(&self, clicks: LaneClicks) {
        if let Some(index) = clicks.select {
            self.send(Command::Select(index));
        }
        if let Some(index) = clicks.regenerate {
            self.send(Command::RegenerateOne(index));
        }
        if let Some(frame) = clicks.lock {
            self.send(Command::ToggleLock { frame });
        }
    }

    /// Regenerate, capture again, and the export buttons.
    fn session_buttons(
        &mut self,
        ui: &mut egui::Ui,
        session: &comper_generate::runtime::Session,
        window: &WindowContext,
    ) {
        ui.horizontal(|ui| {
            let has = session.has_options();
            if ui
                .add_enabled(has, egui::Button::new("Regenerate (R)"))
                .on_hover_text("Five new options; locked chords stay")
                .clicked()
            {
                self.send(Command::Regenerate);
            }
            if ui
                .button("Capture again")
                .on_hover_text("Forget this phrase and listen for a new one")
                .clicked()
            {
                self.send(Command::Recapture);
            }
            ui.separator();
            ui.checkbox(&mut self.with_melody, "with melody")
                .on_hover_text("Include the captured melody on its own track in the saved clip");
            if ui
                .add_enabled(has, egui::Button::new("Save MIDI"))
                .on_hover_text("Write the playing option as a .mid file to the export folder")
                .clicked()
            {
                self.export(ui, false);
            }
            let handle = ui
                .add_enabled(
                    has,
                    egui::Button::new("Drag clip").sense(egui::Sense::click_and_drag()),
                )
                .on_hover_text(
                    "Drag onto a track of your DAW (or a folder) to drop the playing option as a \
                     .mid clip; a click saves it and copies its path instead",
                );
            if handle.drag_started() && self.drag.is_none() {
                self.start_drag(window);
            } else if handle.clicked() {
                self.export(ui, true);
            }
        });
    }

    fn export_settings(&self) -> ExportSettings {
        let (_, tempo, _) = self.shared.transport();
        ExportSettings {
            voicing: self.params.voicing(),
            with_melody: self.with_melody,
            tempo_bpm: tempo,
            velocity: self.params.velocity.value().clamp(1, 127) as u8,
        }
    }

    /// Writes the clip for a drag and starts dragging it.
    fn start_drag(&mut self, window: &WindowContext) {
        let session = self.params.session.lock().clone();
        match drag_clip(&session, self.export_settings(), &drag_dir()) {
            Ok(path) => {
                self.message = Some(format!("dragging {}…", file_name(&path)));
                self.drag = Some(Drag::start(path, window));
            }
            Err(e) => self.message = Some(format!("not saved: {e}")),
        }
    }

    /// While dragging: the grabbing cursor; once over: what happened, with the fallback.
    fn follow_drag(&mut self, ui: &egui::Ui) {
        let Some(drag) = &self.drag else { return };
        let Some(result) = drag.finished() else {
            ui.ctx().set_cursor_icon(egui::CursorIcon::Grabbing);
            ui.ctx().request_repaint();
            return;
        };
        let path = drag.path().display().to_string();
        let name = file_name(drag.path());
        self.message = Some(match result {
            Ok(DragOutcome::Dropped) => format!("dropped {name}"),
            Ok(DragOutcome::Cancelled) => format!("drag cancelled; {path} is kept"),
            Ok(outcome) => {
                ui.ctx().copy_text(path.clone());
                let why = match outcome {
                    DragOutcome::Refused => "the window did not take it",
                    _ => "no window takes drops there",
                };
                format!("not dropped ({why}): saved {path} (path copied)")
            }
            Err(e) => {
                ui.ctx().copy_text(path.clone());
                format!("{e}: saved {path} (path copied)")
            }
        });
        self.drag = None;
    }

    fn export(&mut self, ui: &egui::Ui, copy_path: bool) {
        let session = self.params.session.lock().clone();
        let settings = self.export_settings();
        self.message = Some(match save_selected(&session, settings, &export_dir()) {
            Ok(path) => {
                let shown = path.display().to_string();
                if copy_path {
                    ui.ctx().copy_text(shown.clone());
                    format!("saved {shown} (path copied)")
                } else {
                    format!("saved {shown}")
                }
            }
            Err(e) => format!("not saved: {e}"),
        });
    }

    fn live_view(&self, ui: &mut egui::Ui) {
        let (beats, _, playing) = self.shared.transport();
        let bar = frames_per_bar(self.params.session.lock().time_signature);
        let frames = self.shared.live_frames();
        let listen = self.params.listen_beats.value();
        let state = if !playing {
            "start the host's transport and play".to_string()
        } else if frames.is_empty() {
            format!("listening: Comper joins in after {listen} beats of your playing")
        } else {
            "playing along: committed chords solid, planned ones faint".to_string()
        };
        ui.label(format!("Live · {state}"));
        // The timeline takes the room Suggest's lanes take, so the panel has no empty band.
        let height = (ui.available_height() - LIVE_RESERVED_HEIGHT).max(120.0);
        draw::live_timeline(
            ui,
            &frames,
            &self.shared.live_melody(),
            beats * f64::from(comper_realtime::frames::FRAMES_PER_BEAT),
            bar,
            height,
        );
        ui.small(format!(
            "late frames: {} · dropped frames: {}",
            self.shared.late_frames.load(Ordering::Relaxed),
            self.shared.dropped_frames.load(Ordering::Relaxed)
        ))
        .on_hover_text(
            "Late: a chord was not planned in time and the previous one held. Dropped: the \
             inference thread was too busy to hear a frame.",
        );
    }

    /// Choosing the model: a weights folder (e.g. one made by `comper import`) or the built-in one.
    fn model_picker(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label("Model folder").on_hover_text(
                "A weights folder, e.g. an official ReaLchords checkpoint converted by `comper import`",
            );
            ui.add(
                egui::TextEdit::singleline(&mut self.weights_field)
                    .hint_text("built-in models, or a weights folder (`comper import`)")
                    .desired_width(360.0),
            );
            let path = self.weights_field.trim();
            if ui
                .add_enabled(!path.is_empty(), egui::Button::new("Use"))
                .on_hover_text("Load the weights folder typed here")
                .clicked()
            {
                self.send(Command::LoadWeights(Some(path.into())));
            }
            if ui
                .button("Built-in")
                .on_hover_text("Go back to the models shipped with Comper")
                .clicked()
            {
                self.weights_field.clear();
                self.send(Command::LoadWeights(None));
            }
        });
    }

    fn controls(&self, ui: &mut egui::Ui) {
        let Some(gui) = &self.gui else { return };
        let setter = gui.param_setter();
        let p = &self.params;
        let live = p.mode.value() == Mode::Live;
        egui::Grid::new("controls")
            .num_columns(6)
            .spacing([12.0, 6.0])
            .show(ui, |ui| {
                control(ui, "Variety", "Low: chords that fit the melody closely; high: more surprising ones", ParamSlider::for_param(&p.temperature, &setter).with_width(SLIDER_WIDTH));
                control(ui, "Voicing", "Voice-led: smooth moves between chords; plain: root position", ParamSlider::for_param(&p.voicing, &setter).with_width(SLIDER_WIDTH));
                control(ui, "Octave", "Moves the chords up or down by octaves", ParamSlider::for_param(&p.chord_octave, &setter).with_width(SLIDER_WIDTH));
                ui.end_row();
                if live {
                    control(ui, "Listen", "Beats Comper listens before it joins in", ParamSlider::for_param(&p.listen_beats, &setter).with_width(SLIDER_WIDTH));
                    control(ui, "Lookahead", "Beats of chords planned ahead of you (shown faint)", ParamSlider::for_param(&p.lookahead_beats, &setter).with_width(SLIDER_WIDTH));
                    control(ui, "Commit", "Beats ahead at which a planned chord is fixed; fewer hear more of your bar", ParamSlider::for_param(&p.commit_beats, &setter).with_width(SLIDER_WIDTH));
                } else {
                    control(ui, "Phrase", "How many bars Suggest captures before it offers options", ParamSlider::for_param(&p.phrase_bars, &setter).with_width(SLIDER_WIDTH));
                    control(ui, "Changes", "How often a chord may change: any 16th, 8th notes or beats", ParamSlider::for_param(&p.chord_changes, &setter).with_width(SLIDER_WIDTH));
                    control(ui, "Velocity", "Velocity of the chord notes (MIDI out and synth)", ParamSlider::for_param(&p.velocity, &setter).with_width(SLIDER_WIDTH));
                }
                ui.end_row();
                control(ui, "Synth", "The built-in synth plays the chords on Comper's audio output (for hosts without MIDI out)", ParamSlider::for_param(&p.synth_on, &setter).with_width(SLIDER_WIDTH));
                control(ui, "Level", "Volume of the built-in synth", ParamSlider::for_param(&p.synth_level, &setter).with_width(SLIDER_WIDTH));
                control(ui, "MIDI ch.", "Channel of the chords on Comper's MIDI output", ParamSlider::for_param(&p.midi_channel, &setter).with_width(SLIDER_WIDTH));
                ui.end_row();
                control(ui, "Melody thru", "Pass your melody on to the MIDI output as well", ParamSlider::for_param(&p.melody_thru, &setter).with_width(SLIDER_WIDTH));
                if live {
                    control(ui, "Changes", "How often a chord may change: any 16th, 8th notes or beats", ParamSlider::for_param(&p.chord_changes, &setter).with_width(SLIDER_WIDTH));
                    control(ui, "Velocity", "Velocity of the chord notes (MIDI out and synth)", ParamSlider::for_param(&p.velocity, &setter).with_width(SLIDER_WIDTH));
                }
                ui.end_row();
            });
    }

    fn shortcuts(&self, ui: &egui::Ui) {
        let keys = [
            egui::Key::Num1,
            egui::Key::Num2,
            egui::Key::Num3,
            egui::Key::Num4,
            egui::Key::Num5,
        ];
        ui.input(|input| {
            for (index, key) in keys.iter().enumerate() {
                if input.key_pressed(*key) {
                    self.send(Command::Select(index));
                }
            }
            if input.key_pressed(egui::Key::R) {
                self.send(Command::Regenerate);
            }
        });
    }
}

impl NiceEguiApp for Panel {
    fn build(
        &mut self,
        egui_ctx: egui::Context,
        gui: GuiContext,
        _frame: &mut nice_plug_egui::Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        egui_ctx.set_visuals(egui::Visuals::dark());
        self.gui = Some(gui);
        Ok(())
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut nice_plug_egui::Frame) {
        self.shortcuts(ui);
        self.follow_drag(ui);
        egui::Frame::default()
            .inner_margin(egui::Margin::same(10))
            .show(ui, |ui| {
                self.top_bar(ui);
                ui.separator();
                match self.params.mode.value() {
                    Mode::Suggest => self.suggest_view(ui, frame.baseview_window()),
                    Mode::Live => self.live_view(ui),
                }
                ui.separator();
                self.controls(ui);
                ui.separator();
                self.model_picker(ui);
            });
        // Follow the transport and the worker without waiting for input.
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_millis(33));
    }
}

/// Room below the live timeline for its status line, the controls and the model folder.
const LIVE_RESERVED_HEIGHT: f32 = 205.0;

/// Height of the melody roll and of each option lane.
const MELODY_HEIGHT: f32 = 70.0;
const LANE_HEIGHT: f32 = 44.0;
/// Width of each option's header (button, description, fit) left of its lane.
const HEADER_WIDTH: f32 = 112.0;

/// What the user clicked in the option lanes this frame.
#[derive(Default)]
struct LaneClicks {
    select: Option<usize>,
    regenerate: Option<usize>,
    /// A frame of the playing option whose chord to lock or unlock.
    lock: Option<usize>,
}

/// An option's button, description, fit and "new" button.
fn option_header(
    ui: &mut egui::Ui,
    session: &comper_generate::runtime::Session,
    index: usize,
    clicks: &mut LaneClicks,
) {
    ui.allocate_ui(egui::Vec2::new(HEADER_WIDTH, LANE_HEIGHT), |ui| {
        // A fixed width lines the five lanes up.
        ui.set_width(HEADER_WIDTH);
        ui.vertical(|ui| {
            let option = session.options.get(index);
            let button = egui::Button::new(format!("Option {}", index + 1))
                .selected(index == session.selected && option.is_some());
            if ui
                .add_enabled(option.is_some(), button)
                .on_hover_text("Play this option (key 1–5)")
                .clicked()
            {
                clicks.select = Some(index);
            }
            let Some(option) = option else { return };
            // One line, so every lane (and the buttons under them) keeps its place.
            ui.add(
                egui::Label::new(egui::RichText::new(option.description.as_str()).small())
                    .truncate(),
            )
            .on_hover_text(option.description.as_str());
            ui.horizontal(|ui| {
                ui.small(format!("fit {:.0}%", 100.0 * option.melody_fit))
                    .on_hover_text(format!(
                        "{}\nmelody notes inside the chord; log-likelihood {:.1}",
                        option.description, option.log_likelihood
                    ));
                if ui
                    .small_button("new")
                    .on_hover_text("New chords for this lane")
                    .clicked()
                {
                    clicks.regenerate = Some(index);
                }
            });
        });
    });
}

/// An option's chords on the bar grid (clicking selects, right-clicking the playing one locks).
fn option_chords(
    ui: &mut egui::Ui,
    session: &comper_generate::runtime::Session,
    index: usize,
    clicks: &mut LaneClicks,
) {
    let Some(option) = session.options.get(index) else {
        let size = egui::Vec2::new(ui.available_width(), LANE_HEIGHT);
        let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
        ui.painter().rect_filled(rect, 4.0, draw::BACKGROUND);
        return;
    };
    let bar = frames_per_bar(session.time_signature);
    let selected = index == session.selected;
    let locked: &[Option<(String, bool)>] = if selected { &session.locked } else { &[] };
    let (response, grid) = draw::option_lane(ui, option, locked, bar, selected, LANE_HEIGHT);
    if response.clicked() {
        clicks.select = Some(index);
    }
    if response.secondary_clicked() && selected {
        if let Some(pos) = response.interact_pointer_pos() {
            clicks.lock = Some(grid.frame_at(pos.x));
        }
    }
    response.on_hover_text(format!(
        "log-likelihood {:.1} · right-click a chord of the playing option to lock it",
        option.log_likelihood
    ));
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Width of the sliders of the controls grid.
const SLIDER_WIDTH: f32 = 110.0;

/// One labelled control of the grid, its hint on both the label and the slider.
fn control(ui: &mut egui::Ui, label: &str, hint: &str, slider: impl egui::Widget) {
    ui.label(label).on_hover_text(hint);
    ui.add(slider).on_hover_text(hint);
}

fn bars_text(bars: crate::params::PhraseBars) -> String {
    let count = bars.bars();
    if count == 1 {
        "1 bar".into()
    } else {
        format!("{count} bars")
    }
}

fn status_text(status: &WorkerStatus) -> String {
    match status {
        WorkerStatus::Idle => "inactive".into(),
        WorkerStatus::LoadingModel => "loading the model…".into(),
        WorkerStatus::Listening => "waiting for you to play".into(),
        WorkerStatus::Capturing { bar, of } => format!("capturing bar {bar} of {of}"),
        WorkerStatus::Generating => "generating options…".into(),
        WorkerStatus::Ready => "ready: pick an option".into(),
        WorkerStatus::Jamming => "live".into(),
        WorkerStatus::Error(message) => format!("error: {message}"),
    }
}
