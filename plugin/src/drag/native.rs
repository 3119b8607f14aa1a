//! Drag-out on macOS and Windows through the `drag` crate: an `NSDraggingSource` session begun
//! from the panel's view with the mouse event being handled (macOS), or OLE `DoDragDrop` with a
//! `CF_HDROP` file list, which runs its own loop until the drop and then returns (Windows). Both
//! must run on the panel's thread, so this is called from the panel's event handling.
//!
//! Not built or run in this project's CI (Linux only).

use std::path::PathBuf;

use crossbeam_channel::Sender;
use nice_plug_egui::baseview::WindowContext;

use super::{DragError, DragOutcome};

/// The picture under the pointer while dragging: a small clip.
const PREVIEW_PNG: &[u8] = include_bytes!("../../../assets/drag-icon.png");

/// Starts dragging `path` out of `window`; the outcome arrives on `done`.
pub fn start(path: PathBuf, window: &WindowContext, done: Sender<Result<DragOutcome, DragError>>) {
    let reply = done.clone();
    let started = drag::start_drag(
        window,
        drag::DragItem::Files(vec![path]),
        drag::Image::Raw(PREVIEW_PNG.to_vec()),
        move |result, _position| {
            let outcome = match result {
                drag::DragResult::Dropped => DragOutcome::Dropped,
                drag::DragResult::Cancel => DragOutcome::Cancelled,
            };
            let _ = reply.send(Ok(outcome));
        },
        drag::Options::default(),
    );
    if let Err(e) = started {
        let _ = done.send(Err(DragError::Platform(e.to_string())));
    }
}
