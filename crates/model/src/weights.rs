//! Comper weights folders: `model.safetensors` (PyTorch state-dict names), `config.json` and
//! `chord_names.json`. Loading checks everything up front so a bad folder fails with a message
//! naming the file and the problem instead of misbehaving later.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::{Decoder, ModelConfig, ModelError, ModelKind, OfflineConfig, OfflineModel};
use comper_music::tokens::{TokenError, Vocabulary, CHORD_BASE};

/// File holding the tensors.
pub const MODEL_FILE: &str = "model.safetensors";
/// File holding the [`ModelConfig`] as JSON.
pub const CONFIG_FILE: &str = "config.json";
/// File holding the chord names (a JSON array of strings) that fix the token layout.
pub const CHORD_NAMES_FILE: &str = "chord_names.json";
/// Environment variable that points `comper` at a weights folder when `--weights` is not given.
pub const WEIGHTS_ENV: &str = "COMPER_WEIGHTS";
/// Folder under `weights/` holding the online model Comper ships and uses by default.
pub const DEFAULT_MODEL_NAME: &str = "comper-online";
/// Folder under `weights/` holding the offline model Comper ships.
pub const DEFAULT_OFFLINE_NAME: &str = "comper-offline";

/// The weights folder to use when none is named: `$COMPER_WEIGHTS`, else the shipped
/// `weights/comper-online/` of this source tree.
pub fn default_weights_dir() -> PathBuf {
    match std::env::var_os(WEIGHTS_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => shipped_dir(DEFAULT_MODEL_NAME),
    }
}

/// The shipped `weights/<name>/` folder of this source tree (two levels above this crate).
pub fn shipped_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../weights")
        .join(name)
}

/// State-dict name of the stored RoPE frequencies.
pub const INV_FREQ_KEY: &str = "decoder.attn_layers.rotary_pos_emb.inv_freq";

/// Why a weights folder (or a state dict about to become one) is unusable.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("{path} is not a valid model config: {message}")]
    BadConfig { path: PathBuf, message: String },
    #[error("{path} is not a valid chord-name list: {message}")]
    BadChordNames { path: PathBuf, message: String },
    #[error("{path} is not a readable safetensors file (truncated or corrupt?): {message}")]
    BadSafetensors { path: PathBuf, message: String },
    #[error("{path} lacks tensor {name:?}")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path} has unexpected tensor {name:?} (not part of this decoder)")]
    UnexpectedTensor { path: PathBuf, name: String },
    #[error("{path}: tensor {name:?} has shape {actual:?}, expected {expected:?}")]
    WrongShape {
        path: PathBuf,
        name: String,
        actual: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{path}: tensor {name:?} has dtype {dtype:?}; only f32, f16 and bf16 are accepted")]
    WrongDtype {
        path: PathBuf,
        name: String,
        dtype: DType,
    },
    #[error(
        "{path}: num_tokens is {num_tokens} but {chords} chord names need 260 + 2·{chords} = {expected}"
    )]
    VocabularyMismatch {
        path: PathBuf,
        num_tokens: usize,
        chords: usize,
        expected: usize,
    },
    #[error("building the decoder from {path} failed: {source}")]
    Model { path: PathBuf, source: ModelError },
    #[error("{path} holds an {found} model, but an {wanted} one is needed here")]
    WrongKind {
        path: PathBuf,
        found: ModelKind,
        wanted: ModelKind,
    },
}

/// A weights folder, loaded and validated: what `comper suggest` and the plugin run.
pub struct LoadedModel {
    /// The folder's `config.json`.
    pub config: ModelConfig,
    /// The folder's `chord_names.json`.
    pub vocabulary: Vocabulary,
    /// The network, ready to decode.
    pub decoder: Decoder,
}

impl LoadedModel {
    /// Loads and validates `dir/{config.json, chord_names.json, model.safetensors}`.
    pub fn load(dir: &Path) -> Result<Self, WeightsError> {
        let files = read_folder(dir)?;
        Self::from_bytes(files.bytes(dir))
    }

    /// Loads and validates a weights folder already in memory (the plugin embeds its default
    /// model); errors name the files as if they lay in `bytes.dir`.
    pub fn from_bytes(bytes: FolderBytes<'_>) -> Result<Self, WeightsError> {
        let config_path = bytes.dir.join(CONFIG_FILE);
        expect_kind(bytes.config, &config_path, ModelKind::Online)?;
        let config = parse_config(bytes.config, &config_path)?;
        let vocabulary = parse_chord_names(bytes.chord_names, &bytes.dir.join(CHORD_NAMES_FILE))?;
        check_vocabulary(&config, &vocabulary, &config_path)?;
        let model_path = bytes.dir.join(MODEL_FILE);
        let tensors = parse_safetensors(bytes.model, &model_path)?;
        let decoder = decoder_from_tensors(&config, tensors, &model_path)?;
        Ok(Self {
            config,
            vocabulary,
            decoder,
        })
    }
}

/// An offline weights folder, loaded and validated: what Suggest mode and the live intro run.
pub struct LoadedOffline {
    /// The folder's `config.json`.
    pub config: OfflineConfig,
    /// The folder's `chord_names.json`.
    pub vocabulary: Vocabulary,
    /// The network, ready to encode melodies and decode chords.
    pub model: OfflineModel,
}

impl LoadedOffline {
    /// Loads and validates an offline weights folder.
    pub fn load(dir: &Path) -> Result<Self, WeightsError> {
        let files = read_folder(dir)?;
        Self::from_bytes(files.bytes(dir))
    }

    /// Loads and validates an offline weights folder already in memory.
    pub fn from_bytes(bytes: FolderBytes<'_>) -> Result<Self, WeightsError> {
        let config_path = bytes.dir.join(CONFIG_FILE);
        expect_kind(bytes.config, &config_path, ModelKind::Offline)?;
        let config = parse_offline_config(bytes.config, &config_path)?;
        let vocabulary = parse_chord_names(bytes.chord_names, &bytes.dir.join(CHORD_NAMES_FILE))?;
        check_vocabulary(&config.base, &vocabulary, &config_path)?;
        let model_path = bytes.dir.join(MODEL_FILE);
        let tensors = parse_safetensors(bytes.model, &model_path)?;
        let model = offline_from_tensors(&config, tensors, &model_path)?;
        Ok(Self {
            config,
            vocabulary,
            model,
        })
    }
}

/// A weights folder of either kind.
pub enum AnyModel {
    Online(LoadedModel),
    Offline(LoadedOffline),
}

impl AnyModel {
    /// Loads whichever kind of model `dir` holds (its `config.json` says).
    pub fn load(dir: &Path) -> Result<Self, WeightsError> {
        let files = read_folder(dir)?;
        Self::from_bytes(files.bytes(dir))
    }

    /// [`AnyModel::load`] for a folder in memory.
    pub fn from_bytes(bytes: FolderBytes<'_>) -> Result<Self, WeightsError> {
        match read_kind(bytes.config, &bytes.dir.join(CONFIG_FILE))? {
            ModelKind::Online => LoadedModel::from_bytes(bytes).map(Self::Online),
            ModelKind::Offline => LoadedOffline::from_bytes(bytes).map(Self::Offline),
        }
    }
}

/// The three files of a folder read from disk.
struct FolderFiles {
    config: String,
    chord_names: String,
    model: Vec<u8>,
}

impl FolderFiles {
    fn bytes<'a>(&'a self, dir: &'a Path) -> FolderBytes<'a> {
        FolderBytes {
            dir,
            config: &self.config,
            chord_names: &self.chord_names,
            model: &self.model,
        }
    }
}

fn read_folder(dir: &Path) -> Result<FolderFiles, WeightsError> {
    let model_path = dir.join(MODEL_FILE);
    Ok(FolderFiles {
        config: read_text(&dir.join(CONFIG_FILE))?,
        chord_names: read_text(&dir.join(CHORD_NAMES_FILE))?,
        model: std::fs::read(&model_path).map_err(|source| WeightsError::Io {
            path: model_path,
            source,
        })?,
    })
}

/// The `kind` field of a `config.json` (online when absent).
fn read_kind(text: &str, path: &Path) -> Result<ModelKind, WeightsError> {
    #[derive(serde::Deserialize)]
    struct KindOnly {
        #[serde(default)]
        kind: ModelKind,
    }
    serde_json::from_str::<KindOnly>(text)
        .map(|k| k.kind)
        .map_err(|e| WeightsError::BadConfig {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

fn expect_kind(text: &str, path: &Path, wanted: ModelKind) -> Result<(), WeightsError> {
    let found = read_kind(text, path)?;
    if found != wanted {
        return Err(WeightsError::WrongKind {
            path: path.to_owned(),
            found,
            wanted,
        });
    }
    Ok(())
}

/// The three files of a weights folder, in memory.
#[derive(Debug, Clone, Copy)]
pub struct FolderBytes<'a> {
    /// Where the files came from, for error messages.
    pub dir: &'a Path,
    /// `config.json`.
    pub config: &'a str,
    /// `chord_names.json`.
    pub chord_names: &'a str,
    /// `model.safetensors`.
    pub model: &'a [u8],
}

/// Reads and sanity-checks `config.json` (unknown fields are ignored).
pub fn read_config(path: &Path) -> Result<ModelConfig, WeightsError> {
    parse_config(&read_text(path)?, path)
}

fn parse_config(text: &str, path: &Path) -> Result<ModelConfig, WeightsError> {
    let bad = |message: String| WeightsError::BadConfig {
        path: path.to_owned(),
        message,
    };
    let config: ModelConfig = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    for (field, value) in [
        ("dim", config.dim),
        ("depth", config.depth),
        ("heads", config.heads),
        ("dim_head", config.dim_head),
        ("num_tokens", config.num_tokens),
    ] {
        if value == 0 {
            return Err(bad(format!("{field} must be positive")));
        }
    }
    if config.max_seq_len < 3 {
        return Err(bad(format!(
            "max_seq_len {} leaves no room for a frame",
            config.max_seq_len
        )));
    }
    Ok(config)
}

fn parse_offline_config(text: &str, path: &Path) -> Result<OfflineConfig, WeightsError> {
    let base = parse_config(text, path)?;
    let config: OfflineConfig =
        serde_json::from_str(text).map_err(|e| WeightsError::BadConfig {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if config.enc_depth == 0 {
        return Err(WeightsError::BadConfig {
            path: path.to_owned(),
            message: "enc_depth must be positive".into(),
        });
    }
    Ok(OfflineConfig { base, ..config })
}

/// Reads `chord_names.json` into the vocabulary that fixes the token layout.
pub fn read_chord_names(path: &Path) -> Result<Vocabulary, WeightsError> {
    parse_chord_names(&read_text(path)?, path)
}

fn parse_chord_names(text: &str, path: &Path) -> Result<Vocabulary, WeightsError> {
    let bad = |message: String| WeightsError::BadChordNames {
        path: path.to_owned(),
        message,
    };
    let names: Vec<String> = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    Vocabulary::new(names).map_err(|e: TokenError| bad(e.to_string()))
}

/// Checks `num_tokens == 260 + 2·chords`; `path` names the config in the error.
pub fn check_vocabulary(
    config: &ModelConfig,
    vocabulary: &Vocabulary,
    path: &Path,
) -> Result<(), WeightsError> {
    let expected = vocabulary.num_tokens() as usize;
    if config.num_tokens != expected {
        return Err(WeightsError::VocabularyMismatch {
            path: path.to_owned(),
            num_tokens: config.num_tokens,
            chords: vocabulary.num_chords(),
            expected,
        });
    }
    debug_assert_eq!(expected, CHORD_BASE as usize + 2 * vocabulary.num_chords());
    Ok(())
}

/// Reads every tensor of a safetensors file (truncation and corruption are reported, not panics).
pub fn read_safetensors(path: &Path) -> Result<HashMap<String, Tensor>, WeightsError> {
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_safetensors(&bytes, path)
}

fn parse_safetensors(bytes: &[u8], path: &Path) -> Result<HashMap<String, Tensor>, WeightsError> {
    candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| {
        WeightsError::BadSafetensors {
            path: path.to_owned(),
            message: e.to_string(),
        }
    })
}

/// Names and shapes of one attention layer (self or cross) at `prefix`.
fn attention_shapes(config: &ModelConfig, prefix: &str) -> Vec<(String, Vec<usize>)> {
    let (d, h, dh, inner) = (
        config.dim,
        config.heads,
        config.dim_head,
        config.attn_inner_dim(),
    );
    vec![
        (format!("{prefix}.qk_norm_q_scale"), vec![h, 1, dh]),
        (format!("{prefix}.qk_norm_k_scale"), vec![h, 1, dh]),
        (format!("{prefix}.to_q.weight"), vec![inner, d]),
        (format!("{prefix}.to_k.weight"), vec![inner, d]),
        (format!("{prefix}.to_v.weight"), vec![inner, d]),
        (format!("{prefix}.to_out.weight"), vec![d, inner]),
    ]
}

/// Names and shapes of one SwiGLU feed-forward at `prefix` (`….ff`).
fn feed_forward_shapes(config: &ModelConfig, prefix: &str) -> Vec<(String, Vec<usize>)> {
    let (d, ff) = (config.dim, config.ff_inner_dim());
    vec![
        (format!("{prefix}.0.proj.weight"), vec![2 * ff, d]),
        (format!("{prefix}.0.proj.bias"), vec![2 * ff]),
        (format!("{prefix}.2.weight"), vec![d, ff]),
        (format!("{prefix}.2.bias"), vec![d]),
    ]
}

/// Blocks of `layer_types` (e.g. `["a", "f"]`, `["a", "c", "f"]`) repeated `depth` times under
/// `stack.attn_layers.layers`.
fn stack_shapes(
    config: &ModelConfig,
    stack: &str,
    depth: usize,
    cross: bool,
) -> Vec<(String, Vec<usize>)> {
    let per_block = if cross { 3 } else { 2 };
    let mut shapes = Vec::new();
    for l in 0..depth {
        let entry = |i: usize| format!("{stack}.attn_layers.layers.{}.1", per_block * l + i);
        shapes.extend(attention_shapes(config, &entry(0)));
        if cross {
            shapes.extend(attention_shapes(config, &entry(1)));
        }
        shapes.extend(feed_forward_shapes(
            config,
            &format!("{}.ff", entry(per_block - 1)),
        ));
    }
    shapes
}

/// Every tensor name and shape a decoder of `config` needs, given `rotary_half = len(inv_freq)`.
pub fn expected_shapes(config: &ModelConfig, rotary_half: usize) -> Vec<(String, Vec<usize>)> {
    let (d, v) = (config.dim, config.num_tokens);
    let mut shapes = vec![
        ("decoder.token_emb.emb.weight".to_string(), vec![v, d]),
        (INV_FREQ_KEY.to_string(), vec![rotary_half]),
        ("decoder.to_logits.weight".to_string(), vec![v, d]),
    ];
    shapes.extend(stack_shapes(config, "decoder", config.depth, false));
    shapes
}

/// Every tensor name and shape an offline model of `config` needs (spec §2.2).
pub fn expected_offline_shapes(config: &OfflineConfig) -> Vec<(String, Vec<usize>)> {
    let base = &config.base;
    let (d, v, h) = (base.dim, base.num_tokens, base.heads);
    let rel_pos = "attn_layers.rel_pos.relative_attention_bias.weight";
    let mut shapes = vec![
        ("encoder.token_emb.emb.weight".to_string(), vec![v, d]),
        (format!("encoder.{rel_pos}"), vec![32, h]),
        (
            "decoder.decoder.token_emb.emb.weight".to_string(),
            vec![v, d],
        ),
        (format!("decoder.decoder.{rel_pos}"), vec![32, h]),
        ("decoder.decoder.to_logits.weight".to_string(), vec![v, d]),
    ];
    shapes.extend(stack_shapes(base, "encoder", config.enc_depth, false));
    shapes.extend(stack_shapes(base, "decoder.decoder", base.depth, true));
    shapes
}

/// Checks that `tensors` holds exactly the decoder's tensors with the right shapes and a float
/// dtype. `path` names the source in errors.
pub fn validate_tensors(
    config: &ModelConfig,
    tensors: &HashMap<String, Tensor>,
    path: &Path,
) -> Result<(), WeightsError> {
    let inv_freq = tensors
        .get(INV_FREQ_KEY)
        .ok_or_else(|| WeightsError::MissingTensor {
            path: path.to_owned(),
            name: INV_FREQ_KEY.into(),
        })?;
    let rotary_half = match inv_freq.dims() {
        [r] if *r >= 1 && 2 * r <= config.dim_head => *r,
        dims => {
            return Err(WeightsError::WrongShape {
                path: path.to_owned(),
                name: INV_FREQ_KEY.into(),
                actual: dims.to_vec(),
                expected: vec![config.default_rotary_dim() / 2],
            })
        }
    };
    check_exact_tensors(&expected_shapes(config, rotary_half), tensors, path)
}

/// Checks that `tensors` holds exactly the offline model's tensors (shapes, a float dtype).
pub fn validate_offline_tensors(
    config: &OfflineConfig,
    tensors: &HashMap<String, Tensor>,
    path: &Path,
) -> Result<(), WeightsError> {
    check_exact_tensors(&expected_offline_shapes(config), tensors, path)
}

/// Checks that `tensors` holds exactly `expected` (names, shapes, a float dtype).
fn check_exact_tensors(
    expected: &[(String, Vec<usize>)],
    tensors: &HashMap<String, Tensor>,
    path: &Path,
) -> Result<(), WeightsError> {
    for (name, shape) in expected {
        let tensor = tensors
            .get(name)
            .ok_or_else(|| WeightsError::MissingTensor {
                path: path.to_owned(),
                name: name.clone(),
            })?;
        if tensor.dims() != shape.as_slice() {
            return Err(WeightsError::WrongShape {
                path: path.to_owned(),
                name: name.clone(),
                actual: tensor.dims().to_vec(),
                expected: shape.clone(),
            });
        }
        if !matches!(tensor.dtype(), DType::F32 | DType::F16 | DType::BF16) {
            return Err(WeightsError::WrongDtype {
                path: path.to_owned(),
                name: name.clone(),
                dtype: tensor.dtype(),
            });
        }
    }
    let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let mut unexpected: Vec<&String> = tensors
        .keys()
        .filter(|k| !known.contains(k.as_str()))
        .collect();
    unexpected.sort();
    if let Some(name) = unexpected.first() {
        return Err(WeightsError::UnexpectedTensor {
            path: path.to_owned(),
            name: (*name).clone(),
        });
    }
    Ok(())
}

/// The precision a model keeps its weight matrices in: f16 or bf16 when every tensor is stored
/// so (products widen them to f32 as they stream them, reading half the bytes), f32 otherwise
/// (a file mixing precisions is upcast, never rounded). The rotary frequencies do not count: they
/// are always read at the precision they were stored in, since rounding them to 16 bits would
/// turn a late position's angle by a sizeable fraction of a radian.
pub fn storage_dtype(tensors: &HashMap<String, Tensor>) -> DType {
    let mut dtypes = tensors
        .iter()
        .filter(|(name, _)| name.as_str() != INV_FREQ_KEY)
        .map(|(_, tensor)| tensor.dtype());
    match dtypes.next() {
        Some(first @ (DType::F16 | DType::BF16)) if dtypes.all(|d| d == first) => first,
        _ => DType::F32,
    }
}

/// Validates a state dict and builds the decoder from it (computing in f32; see [`storage_dtype`]).
pub fn decoder_from_tensors(
    config: &ModelConfig,
    tensors: HashMap<String, Tensor>,
    path: &Path,
) -> Result<Decoder, WeightsError> {
    validate_tensors(config, &tensors, path)?;
    let dtype = storage_dtype(&tensors);
    let vb = VarBuilder::from_tensors(tensors, dtype, &Device::Cpu);
    Decoder::load(config, vb).map_err(|source| WeightsError::Model {
        path: path.to_owned(),
        source,
    })
}

/// Validates an offline state dict and builds the model from it (computing in f32; see
/// [`storage_dtype`]).
pub fn offline_from_tensors(
    config: &OfflineConfig,
    tensors: HashMap<String, Tensor>,
    path: &Path,
) -> Result<OfflineModel, WeightsError> {
    validate_offline_tensors(config, &tensors, path)?;
    let dtype = storage_dtype(&tensors);
    let vb = VarBuilder::from_tensors(tensors, dtype, &Device::Cpu);
    OfflineModel::load(config, vb).map_err(|source| WeightsError::Model {
        path: path.to_owned(),
        source,
    })
}

/// Writes a complete weights folder, creating `dir` if needed. Tensors sharing one 16-bit
/// precision keep it (see [`storage_dtype`]); any others are upcast to f32, except the rotary
/// frequencies, which keep their own.
pub fn write_folder(
    dir: &Path,
    config: &impl serde::Serialize,
    vocabulary: &Vocabulary,
    tensors: &HashMap<String, Tensor>,
) -> Result<(), WeightsError> {
    let write_err = |path: PathBuf, message: String| WeightsError::Write { path, message };
    std::fs::create_dir_all(dir).map_err(|e| write_err(dir.to_owned(), e.to_string()))?;
    let dtype = storage_dtype(tensors);
    let mut stored = HashMap::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let keep = if name == INV_FREQ_KEY {
            tensor.dtype()
        } else {
            dtype
        };
        let converted = tensor
            .to_dtype(keep)
            .map_err(|e| write_err(dir.join(MODEL_FILE), e.to_string()))?;
        stored.insert(name.clone(), converted);
    }
    let model_path = dir.join(MODEL_FILE);
    candle_core::safetensors::save(&stored, &model_path)
        .map_err(|e| write_err(model_path.clone(), e.to_string()))?;
    let config_path = dir.join(CONFIG_FILE);
    let config_json = serde_json::to_string_pretty(config)
        .map_err(|e| write_err(config_path.clone(), e.to_string()))?;
    std::fs::write(&config_path, config_json + "\n")
        .map_err(|e| write_err(config_path.clone(), e.to_string()))?;
    let names_path = dir.join(CHORD_NAMES_FILE);
    let names_json = serde_json::to_string(vocabulary.names())
        .map_err(|e| write_err(names_path.clone(), e.to_string()))?;
    std::fs::write(&names_path, names_json + "\n")
        .map_err(|e| write_err(names_path.clone(), e.to_string()))
}

fn read_text(path: &Path) -> Result<String, WeightsError> {
    std::fs::read_to_string(path).map_err(|source| WeightsError::Io {
        path: path.to_owned(),
        source,
    })
}
