//! The pair of models every product runs on: the online decoder plans live chords; the offline
//! encoder–decoder, when there is one with the same chord names, harmonizes Suggest mode's phrase
//! and samples the live intro. One type for the plugin, `comper jam`, `comper serve` and `comper
//! eval`, shared between threads by reference count.

use std::sync::Arc;

use crate::live::{LiveConfig, LiveEngine, LiveError};
use crate::suggest::Harmonizer;
use comper_model::{LoadedModel, LoadedOffline};
use comper_music::tokens::Vocabulary;

/// An online model and maybe an offline one.
#[derive(Clone)]
pub struct ModelPair {
    /// Plans live mode; harmonizes Suggest mode when there is no offline model.
    pub online: Arc<LoadedModel>,
    /// Harmonizes Suggest mode and samples the live intro.
    pub offline: Option<Arc<LoadedOffline>>,
    /// What a user is shown: the models' names, or the folder they came from.
    pub name: String,
}

impl ModelPair {
    /// `online` with `offline` as given (a live engine refuses an offline model whose chord
    /// names differ); named after both.
    pub fn new(online: Arc<LoadedModel>, offline: Option<Arc<LoadedOffline>>) -> Self {
        let name = match &offline {
            Some(offline) => format!("{} + {}", offline.config.base.name, online.config.name),
            None => online.config.name.clone(),
        };
        Self {
            online,
            offline,
            name,
        }
    }

    /// `online` with `offline` only when their chord names agree (a default companion that does
    /// not fit is left out rather than refused).
    pub fn matching(online: Arc<LoadedModel>, offline: Option<Arc<LoadedOffline>>) -> Self {
        let offline = offline.filter(|o| o.vocabulary == online.vocabulary);
        Self::new(online, offline)
    }

    /// The chord names of the online model (and of the offline one, when paired).
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.online.vocabulary
    }

    /// The model Suggest mode samples its options with: the offline one when there is one.
    pub fn harmonizer(&self) -> Harmonizer<'_> {
        match &self.offline {
            Some(offline) => Harmonizer::Offline(offline),
            None => Harmonizer::Online(&self.online),
        }
    }

    /// A live engine on these models (the offline model samples the intro).
    pub fn live_engine(&self, config: LiveConfig) -> Result<LiveEngine<'_>, LiveError> {
        LiveEngine::for_models(&self.online, self.offline.as_deref(), config)
    }
}

impl From<Arc<LoadedModel>> for ModelPair {
    fn from(online: Arc<LoadedModel>) -> Self {
        Self::new(online, None)
    }
}
