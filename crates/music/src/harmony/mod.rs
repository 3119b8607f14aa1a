//! Music theory the accompaniment listens with: keys, triads and their functions, the metre's
//! strong and weak frames, what a repeating progression leads a player to expect next
//! ([`loops`]), a guide that leans the model's chord choices toward the melody
//! ([`guide`]), a critic that ranks whole progressions and picks options that differ
//! ([`critic`]), and short musical descriptions of an option ([`describe`]).

pub mod critic;
pub mod describe;
pub mod guide;
pub mod key;
pub mod loops;
pub mod meter;
pub mod triad;

pub use guide::{ChordGuide, GuideSettings};
pub use key::{melody_key, Key};
pub use triad::{Quality, Triad};
