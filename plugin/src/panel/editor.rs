//! The panel's window as the host sees it: an egui editor whose size (and zoom) the project saves
//! and restores.
//!
//! nice-plug-egui reads an editor's size from its [`EguiEditorState`] when the window opens and
//! offers no way to set it afterwards, while the host builds the plugin's editor before it loads
//! the project's state. So [`PanelEditor`] builds a fresh egui editor, at the saved size, each
//! time the window opens, around the one [`Panel`] that lives as long as the plugin (what the
//! panel holds between openings, such as the last export's message, survives).

use std::error::Error;
use std::sync::{Arc, Mutex};

use comper_realtime::link::lock;
use nice_plug::context::gui::GuiContext;
use nice_plug::editor::dpi::{LogicalSize, NativeSize, Size};
use nice_plug::editor::{HostMethods, SpawnedEditor};
use nice_plug::params::persist::PersistentField;
use nice_plug::prelude::*;
use nice_plug_egui::{
    EguiEditor, EguiEditorHandle, EguiEditorState, EguiNiceSettings, NiceEguiApp, RepaintNotifier,
};
use serde::{Deserialize, Serialize};

use super::{Panel, SIZE};

/// Smallest window the panel lays out in.
pub const MIN_SIZE: (f32, f32) = (720.0, 520.0);
/// Largest saved size taken back from a project (a broken state must not open a huge window).
const MAX_SIZE: (f64, f64) = (8192.0, 8192.0);
/// Zoom factors taken back from a project.
const ZOOM_RANGE: (f32, f32) = (0.25, 4.0);

/// The window's size in logical pixels and its zoom, as the project stores them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowSize {
    pub width: f64,
    pub height: f64,
    pub zoom: f32,
}

impl Default for WindowSize {
    fn default() -> Self {
        Self {
            width: f64::from(SIZE.0),
            height: f64::from(SIZE.1),
            zoom: 1.0,
        }
    }
}

impl WindowSize {
    /// The size clamped to what the panel can show; anything unreadable becomes the default.
    fn sanitized(self) -> Self {
        let fallback = Self::default();
        let dimension = |value: f64, min: f32, max: f64, default: f64| {
            if value.is_finite() {
                value.clamp(f64::from(min), max)
            } else {
                default
            }
        };
        Self {
            width: dimension(self.width, MIN_SIZE.0, MAX_SIZE.0, fallback.width),
            height: dimension(self.height, MIN_SIZE.1, MAX_SIZE.1, fallback.height),
            zoom: if self.zoom.is_finite() {
                self.zoom.clamp(ZOOM_RANGE.0, ZOOM_RANGE.1)
            } else {
                fallback.zoom
            },
        }
    }

    fn of_state(state: &EguiEditorState) -> Self {
        let logical = match state.size() {
            Size::Logical(size) => size,
            Size::Physical(size) => size.to_logical(1.0),
        };
        Self {
            width: logical.width,
            height: logical.height,
            zoom: state.user_scale_factor(),
        }
    }
}

/// The window size saved with the project (a persistent field of the parameters): the size of
/// the window opened last, which egui keeps up to date as the user resizes it, else the size
/// the project loaded.
/// Clones share one size (the parameters' field and the editor's).
#[derive(Debug, Default, Clone)]
pub struct PanelSize(Arc<SizeState>);

#[derive(Debug, Default)]
struct SizeState {
    saved: Mutex<WindowSize>,
    /// The open (or last opened) window's state.
    window: Mutex<Option<Arc<EguiEditorState>>>,
}

impl PanelSize {
    /// The size the window has, or opens at.
    pub fn current(&self) -> WindowSize {
        match lock(&self.0.window).as_ref() {
            Some(state) => WindowSize::of_state(state),
            None => *lock(&self.0.saved),
        }
    }

    /// A state for a window opening now, at the current size.
    fn open_window(&self) -> Arc<EguiEditorState> {
        let size = self.current();
        let state =
            EguiEditorState::from_size(LogicalSize::new(size.width, size.height), size.zoom);
        *lock(&self.0.window) = Some(state.clone());
        state
    }
}

impl<'a> PersistentField<'a, WindowSize> for PanelSize {
    fn set(&self, new_value: WindowSize) {
        *lock(&self.0.saved) = new_value.sanitized();
        // A window open now keeps its size; the next one opens at the loaded size.
        *lock(&self.0.window) = None;
    }

    fn map<F, R>(&self, f: F) -> R
    where
        F: Fn(&WindowSize) -> R,
    {
        f(&self.current())
    }
}

/// The plugin's editor: the panel in an egui window opened at the saved size.
pub struct PanelEditor {
    panel: SharedPanel,
    size: PanelSize,
    /// The egui editor of the window opened last, for its size.
    opened: Mutex<Option<EguiEditor<SharedPanel>>>,
}

impl PanelEditor {
    pub fn new(panel: Panel, size: PanelSize) -> Self {
        Self {
            panel: SharedPanel(Arc::new(Mutex::new(panel))),
            size,
            opened: Mutex::new(None),
        }
    }

    fn egui_editor(&self, state: Arc<EguiEditorState>) -> Option<EguiEditor<SharedPanel>> {
        nice_plug_egui::create_egui_editor(
            state,
            RepaintNotifier::new(),
            EguiNiceSettings::new()
                .with_tile("Comper")
                .with_resize_hint(resize_hint()),
            self.panel.clone(),
        )
    }
}

fn resize_hint() -> ResizeHint {
    ResizeHint::resizable().with_min_logical_size(LogicalSize::new(MIN_SIZE.0, MIN_SIZE.1))
}

impl Editor for PanelEditor {
    type Handle = EguiEditorHandle;

    fn spawn(
        &self,
        parent: Option<ParentWindowHandle>,
        wait_for_parent: bool,
        fallback_scale_factor: Option<f64>,
        gui_context: GuiContext,
        host: Option<HostMethods>,
    ) -> Result<SpawnedEditor<Self::Handle>, Box<dyn Error>> {
        let editor = self
            .egui_editor(self.size.open_window())
            .ok_or("the egui editor could not be created")?;
        let spawned = editor.spawn(
            parent,
            wait_for_parent,
            fallback_scale_factor,
            gui_context,
            host,
        )?;
        *lock(&self.opened) = Some(editor);
        Ok(spawned)
    }

    fn size(&self) -> NativeSize<u32> {
        let opened_since_load = lock(&self.size.0.window).is_some();
        match lock(&self.opened).as_ref() {
            // egui knows that window's size and scale factor.
            Some(editor) if opened_since_load => editor.size(),
            _ => {
                let size = self.size.current();
                NativeSize::from_size(LogicalSize::new(size.width, size.height).into(), 1.0)
            }
        }
    }

    fn resize_hint(&self) -> ResizeHint {
        resize_hint()
    }

    unsafe fn assume_standalone_in_process(&self) {
        if let Some(editor) = self.egui_editor(EguiEditorState::from_size(
            LogicalSize::new(f64::from(SIZE.0), f64::from(SIZE.1)),
            1.0,
        )) {
            // Safety: the caller upholds the trait's contract, which is egui's editor's too.
            unsafe { editor.assume_standalone_in_process() };
        }
    }
}

/// The one panel, shared by every window opened on it.
#[derive(Clone)]
struct SharedPanel(Arc<Mutex<Panel>>);

impl NiceEguiApp for SharedPanel {
    fn build(
        &mut self,
        egui_ctx: egui::Context,
        gui: GuiContext,
        frame: &mut nice_plug_egui::Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        lock(&self.0).build(egui_ctx, gui, frame)
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut nice_plug_egui::Frame) {
        lock(&self.0).ui(ui, frame);
    }

    fn editor_closed(&mut self) {
        lock(&self.0).editor_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loaded_size_is_what_the_next_window_opens_at() {
        let size = PanelSize::default();
        assert_eq!(size.current(), WindowSize::default());
        let saved = WindowSize {
            width: 1200.0,
            height: 800.0,
            zoom: 1.25,
        };
        size.set(saved);
        assert_eq!(size.map(|s| *s), saved);
        let state = size.open_window();
        assert_eq!(WindowSize::of_state(&state), saved);
        assert_eq!(size.current(), saved);
    }

    #[test]
    fn a_broken_saved_size_opens_a_window_the_panel_fits() {
        let size = PanelSize::default();
        size.set(WindowSize {
            width: f64::NAN,
            height: 1e9,
            zoom: -3.0,
        });
        let loaded = size.current();
        assert_eq!(loaded.width, f64::from(SIZE.0));
        assert_eq!(loaded.height, MAX_SIZE.1);
        assert_eq!(loaded.zoom, ZOOM_RANGE.0);
        size.set(WindowSize {
            width: 10.0,
            height: 10.0,
            zoom: 1.0,
        });
        assert_eq!(
            (size.current().width, size.current().height),
            (f64::from(MIN_SIZE.0), f64::from(MIN_SIZE.1))
        );
    }
}
