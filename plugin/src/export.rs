//! "Save MIDI": the selected progression (optionally with the captured melody) as a `.mid` clip a
//! musician drops into the DAW. It works from the saved session alone (chords by name), so the
//! panel does not need the model.

use std::path::{Path, PathBuf};

use comper_music::chord::{ChordTable, VoicingRange};
use comper_music::midi_file::{write_progression_to_path, ProgressionExport};
use comper_music::progression::{name_chords, voice_progression};
use comper_music::tokens::{frames_to_notes, Vocabulary};
use comper_realtime::frames::ChordFrame;

use comper_generate::runtime::loop_plan::transposed;
use comper_generate::runtime::session::{chords_in_vocabulary, Session};
use comper_generate::runtime::VoicingChoice;

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
    Midi(#[from] comper_music::midi_file::MidiFileError),
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
    let export = selected_export(session, settings)?;
    create_dir(dir)?;
    let stem = format!("comper-option-{}", session.selected + 1);
    let path = (1..)
        .map(|k| dir.join(format!("{stem}-{k}.mid")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| dir.join(format!("{stem}.mid")));
    write_progression_to_path(&export, &path)?;
    Ok(path)
}

/// The folder of clips written for dragging: a temporary one, emptied of day-old clips.
pub fn drag_dir() -> PathBuf {
    std::env::temp_dir().join("comper-drag")
}

/// How long a dragged clip is kept (the DAW copies or reads it on the drop).
const DRAG_CLIP_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Writes the selected option for a drag: `Comper option N - bars A-B.mid` (bars of the host's
/// song where the phrase was captured) in `dir`, replacing an earlier drag of the same clip, and
/// removes clips older than a day.
pub fn drag_clip(
    session: &Session,
    settings: ExportSettings,
    dir: &Path,
) -> Result<PathBuf, ExportError> {
    let export = selected_export(session, settings)?;
    create_dir(dir)?;
    remove_old_clips(dir);
    let bar = comper_generate::suggest::frames_per_bar(session.time_signature) as i64;
    let first = session.first_frame.div_euclid(bar) + 1;
    let bars = (session.melody.len() as i64 + bar - 1) / bar;
    let bars = bars.max(1);
    let name = format!(
        "Comper option {} - bars {first}-{}.mid",
        session.selected + 1,
        first + bars - 1
    );
    let path = dir.join(name);
    write_progression_to_path(&export, &path)?;
    Ok(path)
}

fn remove_old_clips(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > DRAG_CLIP_LIFETIME);
        let is_clip = entry.path().extension().is_some_and(|e| e == "mid");
        if old && is_clip {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn create_dir(dir: &Path) -> Result<(), ExportError> {
    std::fs::create_dir_all(dir).map_err(|source| ExportError::Folder {
        path: dir.to_owned(),
        source,
    })
}

/// The selected option (and the melody when asked) voiced as the loop plays it, at the host's
/// tempo and the phrase's time signature.
fn selected_export(
    session: &Session,
    settings: ExportSettings,
) -> Result<ProgressionExport, ExportError> {
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
    Ok(ProgressionExport {
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
    })
}
