//! The Rust decoder against PyTorch/x-transformers 2.11.23 reference outputs written by
//! `training/make_parity_fixtures.py` (random, fully perturbed small decoders).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use comper::model::{Decoder, LoadedModel, LogitRows};

const TOLERANCE: f32 = 1e-4;
const CONFIGS: [&str; 2] = ["d64_h2_dh32", "bf16_d32_h2_dh24"];

fn folder(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity").join(name)
}

fn fixture(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(folder(name).join("fixture.safetensors"), &Device::Cpu).unwrap()
}

fn ids(t: &Tensor) -> Vec<u32> {
    t.to_vec1::<i64>().unwrap().into_iter().map(|x| x as u32).collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

/// Runs `tokens` through the decoder in chunks of the given sizes, collecting every position's logits.
fn chunked_logits(decoder: &Decoder, tokens: &[u32], chunk_sizes: &[usize]) -> Tensor {
    let mut cache = decoder.new_cache(1).unwrap();
    let mut rows = Vec::new();
    let mut start = 0;
    let mut sizes = chunk_sizes.iter().cycle();
    while start < tokens.len() {
        let n = (*sizes.next().unwrap()).min(tokens.len() - start);
        let logits = decoder.step(&mut cache, &[tokens[start..start + n].to_vec()], LogitRows::All).unwrap();
        rows.push(logits.squeeze(0).unwrap());
        start += n;
    }
    Tensor::cat(&rows, 0).unwrap()
}

#[test]
fn full_sequence_logits_match_pytorch() {
    for name in CONFIGS {
        let model = LoadedModel::load(&folder(name)).unwrap();
        let fx = fixture(name);
        let tokens = ids(&fx["tokens"]);
        let logits = model.decoder.forward(&[tokens]).unwrap().squeeze(0).unwrap();
        let diff = max_diff(&logits, &fx["logits"]);
        assert!(diff < TOLERANCE, "{name}: max |Δlogit| = {diff}");
    }
}

#[test]
fn cached_steps_match_pytorch_kv_cache() {
    for name in CONFIGS {
        let model = LoadedModel::load(&folder(name)).unwrap();
        let fx = fixture(name);
        let tokens = ids(&fx["tokens"]);
        for chunks in [&[1][..], &[2][..], &[1, 3, 2][..]] {
            let logits = chunked_logits(&model.decoder, &tokens, chunks);
            let diff = max_diff(&logits, &fx["step_logits"]);
            assert!(diff < TOLERANCE, "{name} chunks {chunks:?}: max |Δlogit| = {diff}");
        }
    }
}

#[test]
fn last_row_logits_equal_the_last_of_all_rows() {
    let model = LoadedModel::load(&folder(CONFIGS[0])).unwrap();
    let tokens = ids(&fixture(CONFIGS[0])["tokens"]);
    let batch = vec![tokens[..10].to_vec(), tokens[10..20].to_vec()];
    let mut cache = model.decoder.new_cache(2).unwrap();
    let last = model.decoder.step(&mut cache, &batch, LogitRows::Last).unwrap();
    let all = model.decoder.forward(&batch).unwrap();
    let all_last = all.narrow(1, 9, 1).unwrap().squeeze(1).unwrap();
    assert!(max_diff(&last, &all_last) < 1e-6);
}

#[test]
fn stored_inv_freq_is_used_not_recomputed() {
    // The fixtures perturb inv_freq; a decoder recomputing 10000^(-2i/d) could not match.
    let dir = folder(CONFIGS[1]);
    let model = LoadedModel::load(&dir).unwrap();
    assert_eq!(model.decoder.rotary_dim(), 12);
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let inv_freq: Vec<f32> =
        tensors["decoder.attn_layers.rotary_pos_emb.inv_freq"].to_vec1().unwrap();
    let recomputed: Vec<f32> = (0..6).map(|i| 1.0 / 10000f32.powf(2.0 * i as f32 / 12.0)).collect();
    assert!(inv_freq.iter().zip(&recomputed).skip(1).any(|(a, b)| (a - b).abs() > 1e-4));
}
