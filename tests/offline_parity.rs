//! The Rust offline encoder–decoder against PyTorch/x-transformers 2.11.23 reference outputs
//! written by `training/make_parity_fixtures.py` (random, fully perturbed small models with T5
//! relative position bias and cross-attention).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use comper_generate::sample::{generate_offline_options, OptionsRequest, SamplingParams};
use comper_model::import::{import_checkpoint, max_logit_difference, ImportedConfig};
use comper_model::weights::AnyModel;
use comper_model::{LoadedModel, LoadedOffline, LogitRows, Stepper, WeightsError};
use comper_realtime::frames::{ChordFrame, MelodyFrame};
use rand::SeedableRng;

const TOLERANCE: f32 = 1e-4;
const CONFIGS: [&str; 2] = ["offline_d48_h2_dh24", "offline_d32_h4_dh16"];

fn folder(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity")
        .join(name)
}

fn fixture(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(folder(name).join("fixture.safetensors"), &Device::Cpu).unwrap()
}

fn ids(t: &Tensor) -> Vec<u32> {
    t.to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|x| x as u32)
        .collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn full_sequence_logits_match_pytorch() {
    for name in CONFIGS {
        let model = LoadedOffline::load(&folder(name)).unwrap();
        let fx = fixture(name);
        let logits = model
            .model
            .forward(&ids(&fx["melody"]), &[ids(&fx["tokens"])])
            .unwrap()
            .squeeze(0)
            .unwrap();
        let diff = max_diff(&logits, &fx["logits"]);
        assert!(diff < TOLERANCE, "{name}: max |Δlogit| = {diff}");
    }
}

#[test]
fn cached_steps_match_pytorch_kv_cache() {
    for name in CONFIGS {
        let model = LoadedOffline::load(&folder(name)).unwrap();
        let fx = fixture(name);
        let (melody, tokens) = (ids(&fx["melody"]), ids(&fx["tokens"]));
        for chunks in [&[1][..], &[2][..], &[1, 3, 2][..]] {
            let mut cache = model.model.new_cache(&melody, 1).unwrap();
            let mut rows = Vec::new();
            let (mut start, mut sizes) = (0, chunks.iter().cycle());
            while start < tokens.len() {
                let n = (*sizes.next().unwrap()).min(tokens.len() - start);
                let chunk = [tokens[start..start + n].to_vec()];
                let logits = model
                    .model
                    .step(&mut cache, &chunk, LogitRows::All)
                    .unwrap();
                rows.push(logits.squeeze(0).unwrap());
                start += n;
            }
            let logits = Tensor::cat(&rows, 0).unwrap();
            let diff = max_diff(&logits, &fx["step_logits"]);
            assert!(
                diff < TOLERANCE,
                "{name} chunks {chunks:?}: max |Δlogit| = {diff}"
            );
        }
    }
}

#[test]
fn batch_rows_share_the_melody_and_last_rows_match_all_rows() {
    let model = LoadedOffline::load(&folder(CONFIGS[0])).unwrap();
    let fx = fixture(CONFIGS[0]);
    let (melody, tokens) = (ids(&fx["melody"]), ids(&fx["tokens"]));
    let batch = vec![tokens[..12].to_vec(), tokens[12..24].to_vec()];
    let all = model.model.forward(&melody, &batch).unwrap();
    let mut cache = model.model.new_cache(&melody, 2).unwrap();
    let last = model
        .model
        .step(&mut cache, &batch, LogitRows::Last)
        .unwrap();
    let all_last = all.narrow(1, 11, 1).unwrap().squeeze(1).unwrap();
    assert!(max_diff(&last, &all_last) < 1e-5);
    // Each row equals that sequence run alone.
    let alone = model.model.forward(&melody, &batch[1..]).unwrap();
    assert!(max_diff(&all.narrow(0, 1, 1).unwrap(), &alone) < 1e-5);
}

#[test]
fn greedy_offline_generation_matches_pytorch() {
    for name in CONFIGS {
        let model = LoadedOffline::load(&folder(name)).unwrap();
        let fx = fixture(name);
        let melody_ids = ids(&fx["melody"]);
        let melody: Vec<MelodyFrame> = melody_ids[1..melody_ids.len() - 1]
            .iter()
            .map(|&id| model.vocabulary.melody_frame(id).unwrap())
            .collect();
        let request = OptionsRequest {
            melody: &melody,
            locked: &[],
            count: 2,
            max_retries: 3,
            guide: None,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let options = generate_offline_options(
            &model.model,
            &model.vocabulary,
            &request,
            &SamplingParams::greedy(),
            &mut rng,
        )
        .unwrap();
        let expected = ids(&fx["greedy_chords"]);
        for option in options {
            let got: Vec<u32> = option
                .chords
                .iter()
                .map(|&c| model.vocabulary.chord_id(c).unwrap())
                .collect();
            assert_eq!(got, expected, "{name}");
        }
    }
}

#[test]
fn sampled_offline_options_differ_and_respect_locks() {
    let model = LoadedOffline::load(&folder(CONFIGS[1])).unwrap();
    let melody = vec![MelodyFrame::Onset(64); 32];
    let mut locked = vec![None; melody.len()];
    locked[0] = Some(ChordFrame::Onset(2));
    locked[1] = Some(ChordFrame::Hold(2));
    let request = OptionsRequest {
        melody: &melody,
        locked: &locked,
        count: 4,
        max_retries: 8,
        guide: None,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let options = generate_offline_options(
        &model.model,
        &model.vocabulary,
        &request,
        &SamplingParams::default(),
        &mut rng,
    )
    .unwrap();
    assert_eq!(options.len(), 4);
    for (i, a) in options.iter().enumerate() {
        assert_eq!(a.chords.len(), 32);
        assert_eq!(&a.chords[..2], &[ChordFrame::Onset(2), ChordFrame::Hold(2)]);
        for b in &options[i + 1..] {
            assert_ne!(a.chords, b.chords);
        }
        for w in a.chords.windows(2) {
            if let ChordFrame::Hold(c) = w[1] {
                assert!(matches!(w[0], ChordFrame::Silence) || w[0].chord() == Some(c));
            }
        }
    }
    // A melody longer than the context is refused, not truncated.
    let long = vec![MelodyFrame::Silence; 79];
    let request = OptionsRequest {
        melody: &long,
        locked: &[],
        ..request
    };
    assert!(generate_offline_options(
        &model.model,
        &model.vocabulary,
        &request,
        &SamplingParams::default(),
        &mut rng
    )
    .is_err());
}

#[test]
fn a_folder_of_the_other_kind_is_refused_by_name() {
    let err = LoadedModel::load(&folder(CONFIGS[0])).err().unwrap();
    assert!(matches!(err, WeightsError::WrongKind { .. }), "{err}");
    assert!(err.to_string().contains("holds an offline model"), "{err}");
    let err = LoadedOffline::load(&folder("d64_h2_dh32")).err().unwrap();
    assert!(matches!(err, WeightsError::WrongKind { .. }), "{err}");
    assert!(matches!(
        AnyModel::load(&folder(CONFIGS[1])).unwrap(),
        AnyModel::Offline(_)
    ));
}

#[test]
fn a_missing_cross_attention_tensor_is_named() {
    let dir = std::env::temp_dir().join(format!("comper-offline-missing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let src = folder(CONFIGS[0]);
    for file in ["config.json", "chord_names.json"] {
        std::fs::copy(src.join(file), dir.join(file)).unwrap();
    }
    let mut tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let name = "decoder.decoder.attn_layers.layers.1.1.to_k.weight";
    tensors.remove(name).unwrap();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    let err = LoadedOffline::load(&dir).err().unwrap();
    assert!(err.to_string().contains(name), "{err}");
}

#[test]
fn realjam_offline_checkpoint_imports_and_checks() {
    let src = folder("import/offline");
    let out = std::env::temp_dir().join(format!("comper-import-offline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let report = import_checkpoint(
        &src.join("step=5.ckpt"),
        &folder(CONFIGS[0]).join("chord_names.json"),
        Some(&src.join("args.yml")),
        &out,
    )
    .unwrap();
    let ImportedConfig::Offline(config) = &report.config else {
        panic!("imported as online");
    };
    assert_eq!(
        (
            config.base.dim,
            config.enc_depth,
            config.base.depth,
            config.base.heads
        ),
        (48, 2, 2, 2)
    );
    assert_eq!((config.base.dim_head, config.base.max_seq_len), (24, 80));
    let model = AnyModel::load(&out).unwrap();
    let diff =
        max_logit_difference(&model, &folder(CONFIGS[0]).join("fixture.safetensors")).unwrap();
    assert!(diff < TOLERANCE, "{diff}");
    let other = max_logit_difference(&model, &folder(CONFIGS[1]).join("fixture.safetensors"));
    assert!(other.is_err() || other.unwrap() > 1e-3);
}
