//! Drag-out of the chosen progression from the panel into another window (a DAW's track, a file
//! manager), by the window system's own protocol, on a thread of its own so the panel keeps
//! drawing. baseview, under the editor, has no drag source on any platform.
//!
//! - X11 (Linux, BSD): an XDND source (`x11`) on a thread of its own.
//! - macOS and Windows: the `drag` crate (NSDraggingSource; OLE `DoDragDrop` with `CF_HDROP`),
//!   started from the panel's window on the panel's thread, as both systems require (`native`).
//!   Built and run only on those systems; CI covers the X11 source.

#[cfg(any(target_os = "macos", target_os = "windows"))]
mod native;
#[cfg(all(unix, not(target_os = "macos")))]
mod x11;

use nice_plug_egui::baseview::WindowContext;

use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, TryRecvError};

/// How a drag ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DragOutcome {
    /// A window took the file.
    Dropped,
    /// The button was released over a window that does not take files (or took too long).
    Refused,
    /// The button was released where no window takes drops.
    NoTarget,
    /// Escape was pressed.
    Cancelled,
}

/// Why no drag could happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DragError {
    #[error("this window system has no drag-out in Comper yet")]
    Unsupported,
    #[error("the window system refused the drag: {0}")]
    Platform(String),
}

/// A drag in progress.
pub struct Drag {
    path: PathBuf,
    done: Receiver<Result<DragOutcome, DragError>>,
}

impl Drag {
    /// Starts dragging `path` (an existing file) out of `window` (the panel's) while the mouse
    /// button is held. Call it from the panel's event handling (macOS needs the mouse event
    /// that is being handled).
    pub fn start(path: PathBuf, window: &WindowContext) -> Self {
        let (tx, done) = crossbeam_channel::bounded(1);
        #[cfg(any(target_os = "macos", target_os = "windows"))]
        native::start(path.clone(), window, tx);
        #[cfg(not(any(target_os = "macos", target_os = "windows")))]
        {
            let _ = window;
            spawn_drag(path.clone(), tx);
        }
        Self { path, done }
    }

    /// The file being dragged.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the drag ended, once it has.
    pub fn finished(&self) -> Option<Result<DragOutcome, DragError>> {
        match self.done.try_recv() {
            Ok(result) => Some(result),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                Some(Err(DragError::Platform("the drag thread stopped".into())))
            }
        }
    }
}

/// Runs the drag on a thread of its own (X11: it follows the pointer until the button goes up).
#[cfg(not(any(target_os = "macos", target_os = "windows")))]
fn spawn_drag(path: PathBuf, done: crossbeam_channel::Sender<Result<DragOutcome, DragError>>) {
    let reply = done.clone();
    let spawned = std::thread::Builder::new()
        .name("comper-drag".into())
        .spawn(move || {
            let _ = reply.send(drag_file(&path));
        });
    if let Err(e) = spawned {
        let _ = done.send(Err(DragError::Platform(e.to_string())));
    }
}

#[cfg(all(unix, not(target_os = "macos")))]
fn drag_file(path: &Path) -> Result<DragOutcome, DragError> {
    x11::drag_file(path)
}

/// Neither X11, macOS nor Windows: no drag source.
#[cfg(not(any(unix, target_os = "windows")))]
fn drag_file(_path: &Path) -> Result<DragOutcome, DragError> {
    Err(DragError::Unsupported)
}
