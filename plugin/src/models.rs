//! The models the inference thread runs: the online decoder for live mode, and the offline
//! encoder–decoder for Suggest mode and the live intro. Both are built into the plugin binary;
//! the panel's model folder can replace them with others (e.g. official checkpoints converted by
//! `comper import`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use comper_generate::runtime::ModelPair;
use comper_model::weights::{AnyModel, CONFIG_FILE};
use comper_model::{FolderBytes, LoadedModel, LoadedOffline};

/// The models Comper ships, built into the plugin binary so the bundle is one file.
mod builtin {
    pub const ONLINE_NAME: &str = comper_model::weights::DEFAULT_MODEL_NAME;
    pub const ONLINE_CONFIG: &str = include_str!("../../weights/comper-online/config.json");
    pub const ONLINE_CHORD_NAMES: &str =
        include_str!("../../weights/comper-online/chord_names.json");
    pub const ONLINE_MODEL: &[u8] = include_bytes!("../../weights/comper-online/model.safetensors");
    pub const OFFLINE_NAME: &str = comper_model::weights::DEFAULT_OFFLINE_NAME;
    pub const OFFLINE_CONFIG: &str = include_str!("../../weights/comper-offline/config.json");
    pub const OFFLINE_CHORD_NAMES: &str =
        include_str!("../../weights/comper-offline/chord_names.json");
    pub const OFFLINE_MODEL: &[u8] =
        include_bytes!("../../weights/comper-offline/model.safetensors");
}

/// `online` with `offline` when their chord names agree, shown as `name`.
fn pair(online: LoadedModel, offline: Option<LoadedOffline>, name: String) -> ModelPair {
    ModelPair {
        name,
        ..ModelPair::matching(Arc::new(online), offline.map(Arc::new))
    }
}

fn builtin_online() -> Result<LoadedModel, String> {
    LoadedModel::from_bytes(FolderBytes {
        dir: Path::new("<built-in online model>"),
        config: builtin::ONLINE_CONFIG,
        chord_names: builtin::ONLINE_CHORD_NAMES,
        model: builtin::ONLINE_MODEL,
    })
    .map_err(|e| e.to_string())
}

fn builtin_offline() -> Result<LoadedOffline, String> {
    LoadedOffline::from_bytes(FolderBytes {
        dir: Path::new("<built-in offline model>"),
        config: builtin::OFFLINE_CONFIG,
        chord_names: builtin::OFFLINE_CHORD_NAMES,
        model: builtin::OFFLINE_MODEL,
    })
    .map_err(|e| e.to_string())
}

/// Loads the built-in models, or those at `path`: a weights folder of either kind (paired with
/// the built-in model of the other kind when they share chord names), or a folder holding one
/// online and at most one offline weights folder (e.g. an official ReaLchords pair).
pub fn load_models(path: Option<&Path>) -> Result<ModelPair, String> {
    let Some(dir) = path else {
        let name = format!("{} + {}", builtin::OFFLINE_NAME, builtin::ONLINE_NAME);
        return Ok(pair(builtin_online()?, builtin_offline().ok(), name));
    };
    let name = folder_name(dir);
    if dir.join(CONFIG_FILE).exists() {
        return match AnyModel::load(dir).map_err(|e| e.to_string())? {
            AnyModel::Online(online) => Ok(pair(online, builtin_offline().ok(), name)),
            AnyModel::Offline(offline) => {
                let online = builtin_online()?;
                if offline.vocabulary != online.vocabulary {
                    return Err(format!(
                        "{} is an offline model with other chord names than the built-in online \
                         model, which live mode needs; choose a folder holding both an online and \
                         an offline weights folder",
                        dir.display()
                    ));
                }
                Ok(pair(online, Some(offline), name))
            }
        };
    }
    let mut online = None;
    let mut offline = None;
    for sub in weights_folders(dir)? {
        match AnyModel::load(&sub).map_err(|e| e.to_string())? {
            AnyModel::Online(model) if online.is_none() => online = Some(model),
            AnyModel::Offline(model) if offline.is_none() => offline = Some(model),
            _ => {
                return Err(format!(
                    "{} holds more than one weights folder of a kind",
                    dir.display()
                ))
            }
        }
    }
    let online = online.ok_or_else(|| {
        format!(
            "{} holds no online weights folder (live mode needs one)",
            dir.display()
        )
    })?;
    Ok(pair(online, offline, name))
}

/// The sub-folders of `dir` holding a `config.json`, sorted.
fn weights_folders(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut folders: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join(CONFIG_FILE).is_file())
        .collect();
    folders.sort();
    Ok(folders)
}

fn folder_name(dir: &Path) -> String {
    dir.file_name()
        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_models_load_and_share_their_chords() {
        let models = load_models(None).unwrap();
        assert!(models.offline.is_some(), "the built-in offline model pairs");
        assert!(matches!(
            models.harmonizer(),
            comper_generate::suggest::Harmonizer::Offline(_)
        ));
    }

    #[test]
    fn a_folder_of_both_kinds_or_of_one_kind_loads() {
        let root = std::env::temp_dir().join(format!("comper-models-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("../weights");
        for kind in ["comper-online", "comper-offline"] {
            let to = root.join(kind);
            std::fs::create_dir_all(&to).unwrap();
            for file in ["config.json", "chord_names.json", "model.safetensors"] {
                std::fs::copy(weights.join(kind).join(file), to.join(file)).unwrap();
            }
        }
        let both = load_models(Some(&root)).unwrap();
        assert!(both.offline.is_some());
        let online_only = load_models(Some(&root.join("comper-online"))).unwrap();
        assert!(
            online_only.offline.is_some(),
            "paired with the built-in offline model"
        );
        let offline_only = load_models(Some(&root.join("comper-offline"))).unwrap();
        assert!(offline_only.offline.is_some());
        std::fs::remove_dir_all(root.join("comper-online")).unwrap();
        let err = load_models(Some(&root)).err().unwrap();
        assert!(err.contains("no online weights folder"), "{err}");
        let err = load_models(Some(&root.join("missing"))).err().unwrap();
        assert!(err.contains("missing"), "{err}");
    }
}
