//! The plugin's saved state: Suggest mode's session ([`Session`]) as a persistent field of the
//! parameters, so the host saves and restores it with the project.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use comper_generate::runtime::session::Session;
use comper_realtime::link::lock;
use nice_plug::params::persist::PersistentField;

/// The session as a persistent field: the host's save/load goes through here, and
/// [`SessionStore::generation`] tells the inference thread that a project was loaded.
#[derive(Debug, Default)]
pub struct SessionStore {
    session: Mutex<Session>,
    loads: AtomicU64,
}

impl SessionStore {
    /// The session, for the inference thread and the panel (never the audio thread).
    pub fn lock(&self) -> MutexGuard<'_, Session> {
        lock(&self.session)
    }

    /// Counts state loads by the host; the inference thread re-applies the session when it moves.
    pub fn generation(&self) -> u64 {
        self.loads.load(Ordering::Acquire)
    }
}

impl<'a> PersistentField<'a, serde_json::Value> for SessionStore {
    fn set(&self, new_value: serde_json::Value) {
        let session = Session::from_json(new_value).unwrap_or_else(|message| {
            nice_plug::nice_log!("Comper: saved session ignored ({message}); starting empty");
            Session::default()
        });
        *self.lock() = session;
        self.loads.fetch_add(1, Ordering::AcqRel);
    }

    fn map<F, R>(&self, f: F) -> R
    where
        F: Fn(&serde_json::Value) -> R,
    {
        let json = self.lock().to_json();
        f(&json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use comper_generate::runtime::session::SessionOption;

    fn session() -> Session {
        Session {
            melody: vec![comper_realtime::frames::MelodyFrame::Onset(60)],
            options: vec![SessionOption {
                frames: vec![Some(("C".into(), true))],
                log_likelihood: -1.0,
                melody_fit: 0.5,
                description: "C".into(),
            }],
            ..Session::default()
        }
    }

    #[test]
    fn a_broken_state_loads_as_an_empty_session() {
        let store = SessionStore::default();
        store.set(session().to_json());
        assert_eq!(*store.lock(), session());
        assert_eq!(store.generation(), 1);
        store.set(serde_json::json!({"version": 1}));
        assert_eq!(*store.lock(), Session::default());
        assert_eq!(store.generation(), 2);
    }
}
