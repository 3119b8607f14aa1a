//! "Save MIDI": the selected progression (optionally with the captured melody) as a `.mid` clip a
//! musician drops into the DAW. It works from the saved session alone (chords by name), so the
//! panel does not need the model.

use std::path::{Path, PathBuf};

use comper::chord::{ChordTable, VoicingRange};
use comper::frames::ChordFrame;
use comper::midi_file::{write_progression_to_path, ProgressionExport};
use comper::progression::{name_chords, voice_progression};
use comper::tokens::{frames_to_notes, Vocabulary};

use crate::plan::{transposed, VoicingChoice};
use crate::session::{chords_in_vocabulary, Session};

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExportSettings {
    pub voicing: VoicingChoice,
    pub with_melody: bool,
    pub tempo_bpm: f64,
    pub velocity: u8,
}

/// Why a clip could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("there is no progression to save yet")]
    Nothing,
    #[error("the saved progression is damaged: {0}")]
    Session(String),
    #[error(transparent)]
    Midi(#[from] comper::midi_file::MidiFileError),
    #[error("cannot create {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The folder clips go to: `$COMPER_EXPORT_DIR`, else `~/Music/Comper`, else the temp folder.
pub fn export_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("COMPER_EXPORT_DIR") {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE")) {
        Some(home) => Path::new(&home).join("Music").join("Comper"),
        None => std::env::temp_dir().join("Comper"),
    }
}

/// Writes the selected option into `dir` as `comper-option-N-<k>.mid` (a fresh name, never
/// overwriting) and returns the path.
pub fn save_selected(
    session: &Session,
    settings: ExportSettings,
    dir: &Path,
) -> Result<PathBuf, ExportError> {
    let option = session
        .options
        .get(session.selected)
        .ok_or(ExportError::Nothing)?;
    // A vocabulary of just the names this option uses is enough to voice it.
    let mut names: Vec<String> = Vec::new();
    for (name, _) in option.frames.iter().flatten() {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let vocab = Vocabulary::new(names).map_err(|e| ExportError::Session(e.to_string()))?;
    let frames: Vec<ChordFrame> =
        chords_in_vocabulary(&option.frames, &vocab).map_err(ExportError::Session)?;
    let table = ChordTable::new(&vocab);
    let named = name_chords(&frames, &vocab);
    let mut chords = voice_progression(
        &named,
        &table,
        settings.voicing.style,
        VoicingRange::default(),
        settings.velocity.clamp(1, 127),
    );
    for chord in &mut chords {
        chord.pitches = transposed(&chord.pitches, settings.voicing.octave);
    }
    let export = ProgressionExport {
        chords,
        melody: settings
            .with_melody
            .then(|| frames_to_notes(&session.melody)),
        tempo_bpm: if settings.tempo_bpm.is_finite() && settings.tempo_bpm > 0.0 {
            settings.tempo_bpm
        } else {
            120.0
        },
        time_signature: session.time_signature,
        ..ProgressionExport::default()
    };
    std::fs::create_dir_all(dir).map_err(|source| ExportError::Folder {
        path: dir.to_owned(),
        source,
    })?;
    let stem = format!("comper-option-{}", session.selected + 1);
    let path = (1..)
        .map(|k| dir.join(format!("{stem}-{k}.mid")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| dir.join(format!("{stem}.mid")));
    write_progression_to_path(&export, &path)?;
    Ok(path)
}
