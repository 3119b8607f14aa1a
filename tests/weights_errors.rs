//! A broken weights folder must fail with an error that names the file and the problem.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use comper_model::weights::{CHORD_NAMES_FILE, CONFIG_FILE, MODEL_FILE};
use comper_model::{LoadedModel, WeightsError};

const SOURCE: &str = "bf16_d32_h2_dh24";

/// A fresh copy of a parity weights folder in the temp dir.
fn scratch_copy(case: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity")
        .join(SOURCE);
    let dir = std::env::temp_dir().join(format!("comper-weights-{}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for file in [MODEL_FILE, CONFIG_FILE, CHORD_NAMES_FILE] {
        std::fs::copy(src.join(file), dir.join(file)).unwrap();
    }
    dir
}

fn tensors(dir: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join(MODEL_FILE), &Device::Cpu).unwrap()
}

fn save(dir: &Path, tensors: &HashMap<String, Tensor>) {
    candle_core::safetensors::save(tensors, dir.join(MODEL_FILE)).unwrap();
}

fn load_err(dir: &Path) -> WeightsError {
    match LoadedModel::load(dir) {
        Ok(_) => panic!("{} loaded although it is broken", dir.display()),
        Err(err) => err,
    }
}

const Q_KEY: &str = "decoder.attn_layers.layers.2.1.to_q.weight";

#[test]
fn the_intact_copy_loads() {
    let dir = scratch_copy("intact");
    let model = LoadedModel::load(&dir).unwrap();
    assert_eq!(model.config.depth, 3);
    assert_eq!(model.vocabulary.num_chords(), 8);
}

#[test]
fn truncated_safetensors_is_reported() {
    let dir = scratch_copy("truncated");
    let bytes = std::fs::read(dir.join(MODEL_FILE)).unwrap();
    std::fs::write(dir.join(MODEL_FILE), &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(&dir);
    assert!(matches!(err, WeightsError::BadSafetensors { .. }), "{err}");
    assert!(err.to_string().contains(MODEL_FILE), "{err}");
}

#[test]
fn garbage_safetensors_is_reported() {
    let dir = scratch_copy("garbage");
    std::fs::write(
        dir.join(MODEL_FILE),
        b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a header",
    )
    .unwrap();
    assert!(matches!(
        load_err(&dir),
        WeightsError::BadSafetensors { .. }
    ));
}

#[test]
fn wrong_shape_names_the_tensor() {
    let dir = scratch_copy("shape");
    let mut t = tensors(&dir);
    t.insert(
        Q_KEY.into(),
        Tensor::zeros((48, 31), DType::F32, &Device::Cpu).unwrap(),
    );
    save(&dir, &t);
    let err = load_err(&dir);
    match &err {
        WeightsError::WrongShape {
            name,
            actual,
            expected,
            ..
        } => {
            assert_eq!(name, Q_KEY);
            assert_eq!(actual, &vec![48, 31]);
            assert_eq!(expected, &vec![48, 32]);
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains(Q_KEY));
}

#[test]
fn missing_key_is_named() {
    let dir = scratch_copy("missing");
    let mut t = tensors(&dir);
    t.remove("decoder.attn_layers.layers.5.1.ff.2.bias");
    save(&dir, &t);
    let err = load_err(&dir);
    assert!(
        matches!(&err, WeightsError::MissingTensor { name, .. } if name == "decoder.attn_layers.layers.5.1.ff.2.bias"),
        "{err}"
    );
}

#[test]
fn missing_inv_freq_is_named() {
    let dir = scratch_copy("no-rope");
    let mut t = tensors(&dir);
    t.remove("decoder.attn_layers.rotary_pos_emb.inv_freq");
    save(&dir, &t);
    assert!(matches!(load_err(&dir), WeightsError::MissingTensor { .. }));
}

#[test]
fn unexpected_key_is_named() {
    let dir = scratch_copy("unexpected");
    let mut t = tensors(&dir);
    t.insert(
        "decoder.attn_layers.layers.6.1.to_q.weight".into(),
        t[Q_KEY].clone(),
    );
    save(&dir, &t);
    let err = load_err(&dir);
    assert!(
        matches!(&err, WeightsError::UnexpectedTensor { name, .. } if name.contains("layers.6")),
        "{err}"
    );
}

#[test]
fn integer_weights_are_rejected() {
    let dir = scratch_copy("dtype");
    let mut t = tensors(&dir);
    let ints = t[Q_KEY].to_dtype(DType::I64).unwrap();
    t.insert(Q_KEY.into(), ints);
    save(&dir, &t);
    assert!(matches!(load_err(&dir), WeightsError::WrongDtype { .. }));
}

#[test]
fn bad_config_json_is_reported() {
    let dir = scratch_copy("config");
    std::fs::write(dir.join(CONFIG_FILE), "{\"name\": \"x\", \"dim\": 32,").unwrap();
    let err = load_err(&dir);
    assert!(matches!(err, WeightsError::BadConfig { .. }), "{err}");
    assert!(err.to_string().contains(CONFIG_FILE));

    std::fs::write(
        dir.join(CONFIG_FILE),
        r#"{"name":"x","dim":32,"depth":3,"heads":2,"dim_head":24,"num_tokens":276}"#,
    )
    .unwrap();
    let err = load_err(&dir);
    assert!(err.to_string().contains("max_seq_len"), "{err}");

    std::fs::write(
        dir.join(CONFIG_FILE),
        r#"{"name":"x","dim":0,"depth":3,"heads":2,"dim_head":24,"num_tokens":276,"max_seq_len":96}"#,
    )
    .unwrap();
    assert!(matches!(load_err(&dir), WeightsError::BadConfig { .. }));
}

#[test]
fn extra_config_fields_are_ignored() {
    let dir = scratch_copy("extra-fields");
    std::fs::write(
        dir.join(CONFIG_FILE),
        r#"{"name":"x","dim":32,"depth":3,"heads":2,"dim_head":24,"num_tokens":276,"max_seq_len":96,"trained_on":"pop909"}"#,
    )
    .unwrap();
    assert!(LoadedModel::load(&dir).is_ok());
}

#[test]
fn config_disagreeing_with_tensors_is_a_shape_error() {
    let dir = scratch_copy("depth");
    std::fs::write(
        dir.join(CONFIG_FILE),
        r#"{"name":"x","dim":32,"depth":2,"heads":2,"dim_head":24,"num_tokens":276,"max_seq_len":96}"#,
    )
    .unwrap();
    assert!(matches!(
        load_err(&dir),
        WeightsError::UnexpectedTensor { .. }
    ));
}

#[test]
fn vocabulary_size_mismatch_is_reported() {
    let dir = scratch_copy("vocab");
    std::fs::write(
        dir.join(CHORD_NAMES_FILE),
        r#"["C","Dm","Em","F","G","Am","Bdim","G7","A7"]"#,
    )
    .unwrap();
    let err = load_err(&dir);
    assert!(
        matches!(
            err,
            WeightsError::VocabularyMismatch {
                num_tokens: 276,
                chords: 9,
                expected: 278,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_or_bad_chord_names_are_reported() {
    let dir = scratch_copy("names");
    std::fs::write(
        dir.join(CHORD_NAMES_FILE),
        r#"["C","C","Em","F","G","Am","Bdim","G7"]"#,
    )
    .unwrap();
    assert!(matches!(load_err(&dir), WeightsError::BadChordNames { .. }));
    std::fs::remove_file(dir.join(CHORD_NAMES_FILE)).unwrap();
    let err = load_err(&dir);
    assert!(matches!(err, WeightsError::Io { .. }), "{err}");
    assert!(err.to_string().contains(CHORD_NAMES_FILE));
}

#[test]
fn bf16_and_f16_weights_are_upcast() {
    // The bf16 fixture's values are exactly representable in bf16, so the logits must not move.
    let reference = {
        let model = LoadedModel::load(&scratch_copy("f32-ref")).unwrap();
        model.decoder.forward(&[vec![1, 270, 140, 262, 3]]).unwrap()
    };
    for dtype in [DType::BF16, DType::F16] {
        let dir = scratch_copy(&format!("{dtype:?}"));
        let t: HashMap<String, Tensor> = tensors(&dir)
            .into_iter()
            .map(|(k, v)| (k, v.to_dtype(dtype).unwrap()))
            .collect();
        save(&dir, &t);
        let model = LoadedModel::load(&dir).unwrap();
        let logits = model.decoder.forward(&[vec![1, 270, 140, 262, 3]]).unwrap();
        let diff = (logits - &reference)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let tolerance = if dtype == DType::BF16 { 1e-5 } else { 0.05 };
        assert!(diff < tolerance, "{dtype:?}: {diff}");
    }
}
