//! A tiny random-weights online model: fast enough for debug test builds, with a 64-frame
//! context so long performances also exercise the sliding context window.

use std::sync::Arc;

use comper_model::random::random_decoder;
use comper_model::{LoadedModel, ModelConfig};
use comper_music::tokens::Vocabulary;

pub fn tiny_model() -> Arc<LoadedModel> {
    let names = ["C", "Dm", "Em", "F", "G", "Am", "Bdim", "G7", "C7", "Fmaj7"];
    let vocabulary = Vocabulary::new(names.iter().map(|n| n.to_string()).collect()).unwrap();
    let config = ModelConfig {
        name: "tiny-random".into(),
        dim: 16,
        depth: 1,
        heads: 2,
        dim_head: 8,
        num_tokens: vocabulary.num_tokens() as usize,
        max_seq_len: 130,
    };
    let decoder = random_decoder(&config).unwrap();
    Arc::new(LoadedModel {
        config,
        vocabulary,
        decoder,
    })
}
