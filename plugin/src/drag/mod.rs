//! Drag-out of the chosen progression from the panel into another window (a DAW's track, a file
//! manager), by the window system's own protocol, on a thread of its own so the panel keeps
//! drawing. baseview, under the editor, has no drag source on any platform.
//!
//! - X11 (Linux, BSD): an XDND source ([`x11`]).
//! - macOS and Windows: not wired yet (NSDraggingSource / OLE `DoDragDrop` need the window's
//!   native handle and, on macOS, the main thread's current mouse event); [`Drag::start`] reports
//!   [`DragError::Unsupported`] and the panel falls back to saving the clip and copying its path.

#[cfg(all(unix, not(target_os = "macos")))]
mod x11;

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
    /// Starts dragging `path` (an existing file) while the mouse button is held.
    pub fn start(path: PathBuf) -> Self {
        let (tx, done) = crossbeam_channel::bounded(1);
        let dragged = path.clone();
        let spawned = std::thread::Builder::new()
            .name("comper-drag".into())
            .spawn(move || {
                let _ = tx.send(drag_file(&dragged));
            });
        if let Err(e) = spawned {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let _ = tx.send(Err(DragError::Platform(e.to_string())));
            return Self { path, done: rx };
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

#[cfg(all(unix, not(target_os = "macos")))]
fn drag_file(path: &Path) -> Result<DragOutcome, DragError> {
    x11::drag_file(path)
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn drag_file(_path: &Path) -> Result<DragOutcome, DragError> {
    Err(DragError::Unsupported)
}
