//! The XDND source (freedesktop.org's drag-and-drop protocol, version 5) for X11, run on its own
//! thread with its own X connection: baseview's window has no drag source, and none is needed —
//! XDND only asks the source for a window to receive the target's replies and to own the
//! `XdndSelection`, which an unmapped window of our own does.
//!
//! While the mouse button stays down (the panel's window holds the pointer, so its cursor shows),
//! the thread follows the pointer with `QueryPointer`, finds the XDND-aware top-level window under
//! it, and speaks Enter / Position / Leave to it, reading its Status replies; releasing the
//! button over a window that accepted sends Drop, answers the target's request for the data
//! (`text/uri-list` with the file's `file://` URI) and waits for Finished. Escape cancels.

use std::path::Path;
use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ClientMessageEvent, ConnectionExt as _, CreateWindowAux, EventMask, KeyButMask,
    PropMode, SelectionNotifyEvent, SelectionRequestEvent, Window, WindowClass,
    SELECTION_NOTIFY_EVENT,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::{CURRENT_TIME, NONE};

use super::{DragError, DragOutcome};

x11rb::atom_manager! {
    Atoms: AtomsCookie {
        XdndAware,
        XdndProxy,
        XdndEnter,
        XdndPosition,
        XdndStatus,
        XdndLeave,
        XdndDrop,
        XdndFinished,
        XdndSelection,
        XdndActionCopy,
        TARGETS,
        URI_LIST: b"text/uri-list",
        TEXT_PLAIN: b"text/plain",
    }
}

/// Environment variable that makes the drag report its protocol steps on stderr (bug reports).
pub const TRACE_ENV: &str = "COMPER_DRAG_TRACE";

fn trace(what: impl FnOnce() -> String) {
    if std::env::var_os(TRACE_ENV).is_some() {
        eprintln!("Comper drag: {}", what());
    }
}

/// The XDND version this source speaks.
const VERSION: u32 = 5;
/// How often the pointer is followed.
const POLL: Duration = Duration::from_millis(8);
/// How long a drop may take to finish before the drag is given up.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);
/// The Escape key's keysym.
const ESCAPE: u32 = 0xff1b;

/// Drags `path` until the button is released or Escape is pressed.
pub fn drag_file(path: &Path) -> Result<DragOutcome, DragError> {
    let uri = file_uri(path)?;
    let (conn, screen) = x11rb::connect(None).map_err(|e| DragError::Platform(e.to_string()))?;
    let mut source = Source::new(conn, screen, uri).map_err(platform)?;
    source.run().map_err(platform)
}

fn platform(e: impl std::fmt::Display) -> DragError {
    DragError::Platform(e.to_string())
}

/// `file://` URI of an absolute path, with the bytes URIs may not hold escaped.
pub fn file_uri(path: &Path) -> Result<String, DragError> {
    let absolute = std::path::absolute(path).map_err(|e| DragError::Platform(e.to_string()))?;
    let Some(text) = absolute.to_str() else {
        return Err(DragError::Platform(format!(
            "{} is not valid UTF-8",
            absolute.display()
        )));
    };
    let mut uri = String::from("file://");
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(uri)
}

type XResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The window the pointer is over, as far as XDND is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    /// The XDND-aware window, told in every message.
    window: Window,
    /// Where messages go (its `XdndProxy`, or the window itself).
    proxy: Window,
    version: u32,
}

struct Source {
    conn: RustConnection,
    root: Window,
    window: Window,
    atoms: Atoms,
    /// The URI list offered, CR LF terminated.
    data: Vec<u8>,
    escape: Option<u8>,
    target: Option<Target>,
    /// Whether the current target said it would take the drop.
    accepted: bool,
    /// A Position was sent and its Status has not come back.
    awaiting_status: bool,
    last_position: Option<(i16, i16)>,
    /// The panel's own window (baseview's windows take drops too): never a target.
    own: Option<Window>,
}

impl Source {
    fn new(conn: RustConnection, screen: usize, uri: String) -> XResult<Self> {
        let root = conn.setup().roots[screen].root;
        let atoms = Atoms::new(&conn)?.reply()?;
        let window = conn.generate_id()?;
        conn.create_window(
            0,
            window,
            root,
            -10,
            -10,
            1,
            1,
            0,
            WindowClass::INPUT_ONLY,
            0,
            &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        )?;
        conn.set_selection_owner(window, atoms.XdndSelection, CURRENT_TIME)?;
        let escape = keycode_of(&conn, ESCAPE).ok().flatten();
        conn.flush()?;
        Ok(Self {
            conn,
            root,
            window,
            atoms,
            data: format!("{uri}\r\n").into_bytes(),
            escape,
            target: None,
            accepted: false,
            awaiting_status: false,
            last_position: None,
            own: None,
        })
    }

    fn run(&mut self) -> XResult<DragOutcome> {
        let outcome = self.follow_pointer();
        let _ = self.conn.destroy_window(self.window);
        let _ = self.conn.flush();
        outcome
    }

    /// The drag loop: until the button goes up or Escape goes down.
    fn follow_pointer(&mut self) -> XResult<DragOutcome> {
        // The drag starts on the panel: the drop-aware window under the pointer now is ours.
        let start = self.conn.query_pointer(self.root)?.reply()?;
        self.own = self
            .target_at(start.root_x, start.root_y)?
            .map(|target| target.window);
        loop {
            self.handle_events()?;
            let pointer = self.conn.query_pointer(self.root)?.reply()?;
            if self.escape_down()? {
                self.leave()?;
                return Ok(DragOutcome::Cancelled);
            }
            if !pointer.mask.contains(KeyButMask::BUTTON1) {
                return self.drop_here();
            }
            let target = self.target_at(pointer.root_x, pointer.root_y)?;
            if target != self.target {
                self.leave()?;
                if let Some(target) = target {
                    self.enter(target)?;
                }
            }
            let position = (pointer.root_x, pointer.root_y);
            if self.target.is_some()
                && !self.awaiting_status
                && self.last_position != Some(position)
            {
                self.send_position(position)?;
            }
            self.conn.flush()?;
            std::thread::sleep(POLL);
        }
    }

    fn drop_here(&mut self) -> XResult<DragOutcome> {
        // A Status may still be on its way for the last Position.
        let waited = Instant::now();
        while self.awaiting_status && waited.elapsed() < Duration::from_millis(300) {
            self.handle_events()?;
            std::thread::sleep(Duration::from_millis(2));
        }
        let Some(target) = self.target else {
            return Ok(DragOutcome::NoTarget);
        };
        trace(|| format!("released over {target:x?}, accepted: {}", self.accepted));
        if !self.accepted {
            self.leave()?;
            return Ok(DragOutcome::Refused);
        }
        trace(|| format!("drop on {target:x?}"));
        self.send(target, self.atoms.XdndDrop, [0, CURRENT_TIME, 0, 0])?;
        self.conn.flush()?;
        let started = Instant::now();
        while started.elapsed() < FINISH_TIMEOUT {
            if let Some(finished) = self.handle_events()? {
                return Ok(if finished {
                    DragOutcome::Dropped
                } else {
                    DragOutcome::Refused
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(DragOutcome::Refused)
    }

    /// Answers data requests and reads Status replies; `Some(accepted)` once Finished came.
    fn handle_events(&mut self) -> XResult<Option<bool>> {
        while let Some(event) = self.conn.poll_for_event()? {
            match event {
                Event::SelectionRequest(request) => {
                    trace(|| format!("data asked as atom {}", request.target));
                    self.answer(request)?
                }
                Event::ClientMessage(message) if message.type_ == self.atoms.XdndStatus => {
                    let data = message.data.as_data32();
                    trace(|| format!("status {data:x?}"));
                    if self.target.is_some_and(|t| t.window == data[0]) {
                        self.accepted = data[1] & 1 == 1;
                        self.awaiting_status = false;
                    }
                }
                Event::ClientMessage(message) if message.type_ == self.atoms.XdndFinished => {
                    let data = message.data.as_data32();
                    trace(|| format!("finished {data:x?}"));
                    // Version 5 says whether the drop was taken (bit 0, or the action it
                    // performed: Tk's tkdnd sends only the latter); older targets mean yes.
                    let taken = self.target.is_none_or(|t| t.version < 5)
                        || data[1] & 1 == 1
                        || data[2] != NONE;
                    return Ok(Some(taken));
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// A request for the dragged data (or for the types it comes in).
    fn answer(&self, request: SelectionRequestEvent) -> XResult<()> {
        let property = if request.property == NONE {
            request.target
        } else {
            request.property
        };
        let mut reply_property = property;
        if request.selection != self.atoms.XdndSelection {
            reply_property = NONE;
        } else if request.target == self.atoms.TARGETS {
            let types = [
                self.atoms.TARGETS,
                self.atoms.URI_LIST,
                self.atoms.TEXT_PLAIN,
            ];
            self.conn.change_property32(
                PropMode::REPLACE,
                request.requestor,
                property,
                AtomEnum::ATOM,
                &types,
            )?;
        } else if request.target == self.atoms.URI_LIST || request.target == self.atoms.TEXT_PLAIN {
            self.conn.change_property8(
                PropMode::REPLACE,
                request.requestor,
                property,
                request.target,
                &self.data,
            )?;
        } else {
            reply_property = NONE;
        }
        let notify = SelectionNotifyEvent {
            response_type: SELECTION_NOTIFY_EVENT,
            sequence: 0,
            time: request.time,
            requestor: request.requestor,
            selection: request.selection,
            target: request.target,
            property: reply_property,
        };
        self.conn
            .send_event(false, request.requestor, EventMask::NO_EVENT, notify)?;
        self.conn.flush()?;
        Ok(())
    }

    /// The XDND-aware window at root position `(x, y)`: the deepest-first search stops at the
    /// first window (from the top level down) that carries `XdndAware`.
    fn target_at(&self, x: i16, y: i16) -> XResult<Option<Target>> {
        let mut window = self.root;
        for _ in 0..32 {
            let child = self
                .conn
                .translate_coordinates(self.root, window, x, y)?
                .reply()?
                .child;
            if child == NONE || child == self.window {
                return Ok(None);
            }
            if self.own == Some(child) {
                return Ok(None);
            }
            if let Some(version) = self.xdnd_version(child)? {
                let proxy = self.proxy_of(child)?.unwrap_or(child);
                return Ok(Some(Target {
                    window: child,
                    proxy,
                    version: version.min(VERSION),
                }));
            }
            window = child;
        }
        Ok(None)
    }

    fn xdnd_version(&self, window: Window) -> XResult<Option<u32>> {
        let reply = self
            .conn
            .get_property(false, window, self.atoms.XdndAware, AtomEnum::ATOM, 0, 1)?
            .reply()?;
        Ok(reply
            .value32()
            .and_then(|mut v| v.next())
            .filter(|&v| v >= 3))
    }

    fn proxy_of(&self, window: Window) -> XResult<Option<Window>> {
        let reply = self
            .conn
            .get_property(false, window, self.atoms.XdndProxy, AtomEnum::WINDOW, 0, 1)?
            .reply()?;
        Ok(reply.value32().and_then(|mut v| v.next()))
    }

    fn enter(&mut self, target: Target) -> XResult<()> {
        trace(|| format!("enter {target:x?}"));
        self.target = Some(target);
        self.accepted = false;
        self.awaiting_status = false;
        self.last_position = None;
        let types = [self.atoms.URI_LIST, self.atoms.TEXT_PLAIN, NONE];
        self.send(
            target,
            self.atoms.XdndEnter,
            [target.version << 24, types[0], types[1], types[2]],
        )
    }

    fn leave(&mut self) -> XResult<()> {
        if let Some(target) = self.target.take() {
            self.send(target, self.atoms.XdndLeave, [0, 0, 0, 0])?;
        }
        self.accepted = false;
        self.awaiting_status = false;
        Ok(())
    }

    fn send_position(&mut self, (x, y): (i16, i16)) -> XResult<()> {
        let Some(target) = self.target else {
            return Ok(());
        };
        let packed = ((x as u16 as u32) << 16) | (y as u16 as u32);
        self.send(
            target,
            self.atoms.XdndPosition,
            [0, packed, CURRENT_TIME, self.atoms.XdndActionCopy],
        )?;
        self.awaiting_status = true;
        self.last_position = Some((x, y));
        Ok(())
    }

    /// A client message to the target: `data[0]` is always our window, then `rest`.
    fn send(&self, target: Target, kind: u32, rest: [u32; 4]) -> XResult<()> {
        let data = [self.window, rest[0], rest[1], rest[2], rest[3]];
        let message = ClientMessageEvent::new(32, target.window, kind, data);
        self.conn
            .send_event(false, target.proxy, EventMask::NO_EVENT, message)?;
        Ok(())
    }

    fn escape_down(&self) -> XResult<bool> {
        let Some(code) = self.escape else {
            return Ok(false);
        };
        let keys = self.conn.query_keymap()?.reply()?.keys;
        Ok(keys[usize::from(code / 8)] & (1 << (code % 8)) != 0)
    }
}

/// The keycode that produces `keysym`, if any.
fn keycode_of(conn: &RustConnection, keysym: u32) -> XResult<Option<u8>> {
    let setup = conn.setup();
    let (first, last) = (setup.min_keycode, setup.max_keycode);
    let mapping = conn
        .get_keyboard_mapping(first, last - first + 1)?
        .reply()?;
    let per = usize::from(mapping.keysyms_per_keycode.max(1));
    Ok(mapping
        .keysyms
        .chunks(per)
        .position(|syms| syms.contains(&keysym))
        .map(|i| first + i as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_escape_what_they_must() {
        let uri = file_uri(Path::new("/tmp/Comper option 2 - bars 1-4.mid")).unwrap();
        assert_eq!(uri, "file:///tmp/Comper%20option%202%20-%20bars%201-4.mid");
    }
}
