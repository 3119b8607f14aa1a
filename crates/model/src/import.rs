//! Turning official ReaLchords/ReaLJam PyTorch checkpoints into Comper weights folders.
//!
//! Accepted inputs (spec §7): a ReaLJam `step=N.ckpt` (flat state dict), a Lightning training
//! checkpoint (weights under `state_dict`, keys prefixed `model.` or `model._orig_mod.`) and an RL
//! `actor.pth` (keys `model.module.[_orig_mod.]…`), of the online decoder (`decoder.…`) or of the
//! offline encoder–decoder (`encoder.…` and `decoder.decoder.…`, e.g. ReaLJam's
//! `enc_dec_base_chord_random_truncate_3_datasets`). The hyper-parameters are read off the tensor
//! shapes; `args.yml` can supply `max_seq_len` (not visible in any shape) and cross-check the rest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::weights::{self, WeightsError, INV_FREQ_KEY};
use super::{ModelConfig, ModelError, ModelKind, OfflineConfig};
use crate::weights::AnyModel;

/// `max_seq_len` of the ReaLchords online model, used when no `args.yml` says otherwise.
pub const DEFAULT_MAX_SEQ_LEN: usize = 514;
/// `dec_max_seq_len` of the ReaLchords offline model, used when no `args.yml` says otherwise.
pub const DEFAULT_OFFLINE_MAX_SEQ_LEN: usize = 258;

/// Why a checkpoint could not be imported or checked.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read PyTorch checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("{path} holds no decoder tensors (keys seen: {sample})")]
    NoDecoder { path: PathBuf, sample: String },
    #[error("cannot infer the model shape from {path}: {message}")]
    Shape { path: PathBuf, message: String },
    #[error("{path}: {key} is {from_args} but the tensors say {from_shapes}")]
    ArgsMismatch {
        path: PathBuf,
        key: String,
        from_args: usize,
        from_shapes: usize,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("parity fixture {path}: {message}")]
    Fixture { path: PathBuf, message: String },
    #[error("running the model failed: {0}")]
    Model(#[from] ModelError),
}

/// A checkpoint's model tensors under Comper's names, plus what was left out.
pub struct StateDict {
    /// Tensors named as in spec §2.1 (`decoder.…`) or §2.2 (`encoder.…`, `decoder.decoder.…`), in
    /// their stored dtype.
    pub tensors: HashMap<String, Tensor>,
    /// Keys that are not part of the decoder (e.g. an RL critic), after prefix stripping.
    pub ignored: Vec<String>,
}

/// Reads a PyTorch zip checkpoint with candle's unpickler, unwrapping a `state_dict` nesting and
/// stripping wrapper prefixes (see [`canonical_key`]).
pub fn read_checkpoint(path: &Path) -> Result<StateDict, ImportError> {
    let err = |message: String| ImportError::Checkpoint {
        path: path.to_owned(),
        message,
    };
    let raw = match candle_core::pickle::read_all_with_key(path, Some("state_dict")) {
        Ok(tensors) if !tensors.is_empty() => tensors,
        _ => candle_core::pickle::read_all(path).map_err(|e| err(e.to_string()))?,
    };
    let mut tensors = HashMap::new();
    let mut ignored = Vec::new();
    for (key, tensor) in raw {
        let key = canonical_key(&key);
        if key.starts_with("decoder.") || key.starts_with("encoder.") {
            tensors.insert(key, tensor);
        } else {
            ignored.push(key);
        }
    }
    ignored.sort();
    if tensors.is_empty() {
        let sample = ignored
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ImportError::NoDecoder {
            path: path.to_owned(),
            sample,
        });
    }
    Ok(StateDict { tensors, ignored })
}

/// Strips `model.module.` (DeepSpeed RL actor), `model.` (Lightning) and `_orig_mod.`/`._orig_mod`
/// (`torch.compile`) so keys read `decoder.…` as in the bare `DecoderTransformer` (or
/// `encoder.…`/`decoder.decoder.…` as in the bare `EncoderDecoderTransformer`).
pub fn canonical_key(key: &str) -> String {
    let mut key = key.replace("._orig_mod", "");
    loop {
        let stripped = ["model.module.", "module.", "_orig_mod.", "model."]
            .iter()
            .find_map(|prefix| key.strip_prefix(prefix).map(str::to_owned));
        match stripped {
            Some(rest) => key = rest,
            None => return key,
        }
    }
}

/// The `args.yml` fields cross-checked or used: the online model's, and the offline model's
/// `enc_`/`dec_` variants.
const ARG_FIELDS: [&str; 10] = [
    "dim",
    "depth",
    "heads",
    "dim_head",
    "max_seq_len",
    "enc_dim",
    "enc_depth",
    "enc_heads",
    "dec_depth",
    "dec_max_seq_len",
];

/// Hyper-parameters from `args.yml` (argbind's flat `Class.key: value` YAML). Only integer
/// entries whose last dotted component names a model field are read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TrainingArgs {
    values: HashMap<String, usize>,
}

impl TrainingArgs {
    /// Reads the integer fields of interest from an `args.yml`.
    pub fn read(path: &Path) -> Result<Self, ImportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ImportError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::parse(&text))
    }

    /// Parses `key: integer` lines; everything else is skipped.
    pub fn parse(text: &str) -> Self {
        let mut values = HashMap::new();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let field = key.trim().rsplit('.').next().unwrap_or_default();
            if let Ok(value) = value.trim().parse::<usize>() {
                if ARG_FIELDS.contains(&field) {
                    values.insert(field.to_string(), value);
                }
            }
        }
        Self { values }
    }

    /// The value of a model field, if the file set it.
    pub fn get(&self, field: &str) -> Option<usize> {
        self.values.get(field).copied()
    }
}

/// The shape of an imported checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportedConfig {
    Online(ModelConfig),
    Offline(OfflineConfig),
}

impl ImportedConfig {
    /// The decoder's shape (for the offline model: the chord decoder's; the encoder matches it
    /// but for its depth).
    pub fn base(&self) -> &ModelConfig {
        match self {
            Self::Online(config) => config,
            Self::Offline(config) => &config.base,
        }
    }
}

/// Reads the model shape off the tensors (spec §13): `[V, D]` from the embedding, `[H, 1, Dh]`
/// from the first q scale, depth from the highest layer index (two entries per online or encoder
/// block, three per offline decoder block). Offline when there are `encoder.…` tensors.
pub fn infer_config(
    name: &str,
    tensors: &HashMap<String, Tensor>,
    args: &TrainingArgs,
    path: &Path,
) -> Result<ImportedConfig, ImportError> {
    let shapes = CheckpointShapes { tensors, path };
    let offline = tensors.keys().any(|k| k.starts_with("encoder."));
    let stack = if offline {
        OFFLINE_DECODER
    } else {
        ONLINE_DECODER
    };
    let width = shapes.width(stack)?;
    check_args(args, path, &[("dim_head", width.dim_head)])?;
    if offline {
        offline_config(name, &shapes, args, width)
    } else {
        online_config(name, &shapes, args, width)
    }
}

/// Where the online decoder's tensors live.
const ONLINE_DECODER: &str = "decoder";
/// Where the offline model's chord decoder's tensors live.
const OFFLINE_DECODER: &str = "decoder.decoder";

/// A checkpoint's tensors, read for their shapes; errors name the checkpoint.
struct CheckpointShapes<'a> {
    tensors: &'a HashMap<String, Tensor>,
    path: &'a Path,
}

/// The widths every block of a checkpoint shares.
#[derive(Clone, Copy)]
struct Width {
    num_tokens: usize,
    dim: usize,
    heads: usize,
    dim_head: usize,
}

impl Width {
    /// The config of a decoder of this width, `depth` blocks and context `max_seq_len`.
    fn config(self, name: &str, depth: usize, max_seq_len: usize) -> ModelConfig {
        ModelConfig {
            name: name.to_string(),
            dim: self.dim,
            depth,
            heads: self.heads,
            dim_head: self.dim_head,
            num_tokens: self.num_tokens,
            max_seq_len,
        }
    }
}

impl CheckpointShapes<'_> {
    /// A shape error naming the checkpoint.
    fn error(&self, message: String) -> ImportError {
        ImportError::Shape {
            path: self.path.to_owned(),
            message,
        }
    }

    /// The shape of tensor `key`, which must be there.
    fn dims(&self, key: &str) -> Result<Vec<usize>, ImportError> {
        self.tensors
            .get(key)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| self.error(format!("missing {key}")))
    }

    /// Vocabulary and width from the token embedding of `stack`, heads from its first q scale.
    fn width(&self, stack: &str) -> Result<Width, ImportError> {
        let (num_tokens, dim) = match self
            .dims(&format!("{stack}.token_emb.emb.weight"))?
            .as_slice()
        {
            [v, d] => (*v, *d),
            other => return Err(self.error(format!("token embedding has shape {other:?}"))),
        };
        let (heads, dim_head) = match self
            .dims(&format!("{stack}.attn_layers.layers.0.1.qk_norm_q_scale"))?
            .as_slice()
        {
            [h, 1, dh] => (*h, *dh),
            other => return Err(self.error(format!("qk_norm_q_scale has shape {other:?}"))),
        };
        Ok(Width {
            num_tokens,
            dim,
            heads,
            dim_head,
        })
    }

    /// Blocks of `stack`, from its highest layer entry (`per_block` entries per block).
    fn blocks(&self, stack: &str, per_block: usize) -> Result<usize, ImportError> {
        let prefix = format!("{stack}.attn_layers.layers.");
        self.tensors
            .keys()
            .filter_map(|k| {
                k.strip_prefix(&prefix)?
                    .split('.')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .max()
            .map(|max_entry| max_entry / per_block + 1)
            .ok_or_else(|| self.error(format!("no attention layers under {stack}")))
    }
}

/// Refuses the first field `args.yml` sets to another value than the tensors show.
fn check_args(
    args: &TrainingArgs,
    path: &Path,
    fields: &[(&str, usize)],
) -> Result<(), ImportError> {
    for &(field, value) in fields {
        match args.get(field) {
            Some(from_args) if from_args != value => {
                return Err(ImportError::ArgsMismatch {
                    path: path.to_owned(),
                    key: field.into(),
                    from_args,
                    from_shapes: value,
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// The offline encoder–decoder's shape: decoder blocks of three entries, encoder blocks of two,
/// and no rotary positions.
fn offline_config(
    name: &str,
    shapes: &CheckpointShapes<'_>,
    args: &TrainingArgs,
    width: Width,
) -> Result<ImportedConfig, ImportError> {
    let (depth, enc_depth) = (
        shapes.blocks(OFFLINE_DECODER, 3)?,
        shapes.blocks("encoder", 2)?,
    );
    check_args(
        args,
        shapes.path,
        &[
            ("enc_dim", width.dim),
            ("dim", width.dim),
            ("enc_heads", width.heads),
            ("heads", width.heads),
            ("enc_depth", enc_depth),
            ("dec_depth", depth),
        ],
    )?;
    if shapes.tensors.contains_key(INV_FREQ_KEY) {
        return Err(shapes.error(
            "an encoder–decoder with rotary positions is not a ReaLchords offline model".into(),
        ));
    }
    Ok(ImportedConfig::Offline(OfflineConfig {
        kind: ModelKind::Offline,
        base: width.config(
            name,
            depth,
            args.get("dec_max_seq_len")
                .unwrap_or(DEFAULT_OFFLINE_MAX_SEQ_LEN),
        ),
        enc_depth,
    }))
}

/// The online decoder's shape: blocks of two entries and rotary positions.
fn online_config(
    name: &str,
    shapes: &CheckpointShapes<'_>,
    args: &TrainingArgs,
    width: Width,
) -> Result<ImportedConfig, ImportError> {
    let depth = shapes.blocks(ONLINE_DECODER, 2)?;
    check_args(
        args,
        shapes.path,
        &[("dim", width.dim), ("depth", depth), ("heads", width.heads)],
    )?;
    if !shapes.tensors.contains_key(INV_FREQ_KEY) {
        return Err(
            shapes.error("no rotary inv_freq: not a ReaLchords online (RoPE) decoder".into())
        );
    }
    Ok(ImportedConfig::Online(width.config(
        name,
        depth,
        args.get("max_seq_len").unwrap_or(DEFAULT_MAX_SEQ_LEN),
    )))
}

/// What `comper import` did.
pub struct ImportReport {
    /// The config written to the folder.
    pub config: ImportedConfig,
    /// Keys of the checkpoint that were dropped as not belonging to the decoder.
    pub ignored: Vec<String>,
}

/// Reads `checkpoint`, infers and validates the model against `chord_names`, and writes a weights
/// folder to `out`. A checkpoint stored in one 16-bit precision (ReaLJam's bf16 `actor.pth`) stays
/// in it — half the size and of the bytes to stream, the same logits; any other is upcast to f32.
pub fn import_checkpoint(
    checkpoint: &Path,
    chord_names: &Path,
    args: Option<&Path>,
    out: &Path,
) -> Result<ImportReport, ImportError> {
    let vocabulary = weights::read_chord_names(chord_names)?;
    let args = args
        .map(TrainingArgs::read)
        .transpose()?
        .unwrap_or_default();
    let state = read_checkpoint(checkpoint)?;
    let name = checkpoint
        .parent()
        .and_then(Path::file_name)
        .map(|dir| dir.to_string_lossy().into_owned())
        .unwrap_or_else(|| "imported".into());
    let config = infer_config(&name, &state.tensors, &args, checkpoint)?;
    weights::check_vocabulary(config.base(), &vocabulary, chord_names)?;
    let dtype = weights::storage_dtype(&state.tensors);
    let mut tensors = HashMap::with_capacity(state.tensors.len());
    for (key, tensor) in state.tensors {
        let tensor = tensor.to_dtype(dtype).map_err(ModelError::from)?;
        tensors.insert(key, tensor);
    }
    match &config {
        ImportedConfig::Online(online) => {
            weights::validate_tensors(online, &tensors, checkpoint)?;
            weights::write_folder(out, online, &vocabulary, &tensors)?;
        }
        ImportedConfig::Offline(offline) => {
            weights::validate_offline_tensors(offline, &tensors, checkpoint)?;
            weights::write_folder(out, offline, &vocabulary, &tensors)?;
        }
    }
    Ok(ImportReport {
        config,
        ignored: state.ignored,
    })
}

/// Runs `model` on a parity fixture and returns the largest absolute logit difference. Online
/// fixtures hold `tokens` i64 `[T]` and `logits` f32 `[T, V]`; offline ones also `melody` i64
/// `[M]` (the encoder input), `tokens` being the decoder input.
pub fn max_logit_difference(model: &AnyModel, fixture: &Path) -> Result<f32, ImportError> {
    let err = |message: String| ImportError::Fixture {
        path: fixture.to_owned(),
        message,
    };
    let tensors =
        candle_core::safetensors::load(fixture, &Device::Cpu).map_err(|e| err(e.to_string()))?;
    let ids = |name: &str| -> Result<Vec<u32>, ImportError> {
        let tensor = tensors
            .get(name)
            .ok_or_else(|| err(format!("no `{name}` tensor")))?;
        let values: Vec<i64> = tensor
            .to_dtype(DType::I64)
            .and_then(|t| t.to_vec1())
            .map_err(|e| err(e.to_string()))?;
        values
            .into_iter()
            .map(|t| {
                u32::try_from(t).map_err(|_| err(format!("token {t} is negative or too large")))
            })
            .collect()
    };
    let expected = tensors
        .get("logits")
        .ok_or_else(|| err("no `logits` tensor".into()))?;
    let tokens = ids("tokens")?;
    let actual = match model {
        AnyModel::Online(online) => online.decoder.forward(&[tokens])?,
        AnyModel::Offline(offline) => offline.model.forward(&ids("melody")?, &[tokens])?,
    };
    let actual = actual.squeeze(0).map_err(ModelError::from)?;
    if actual.dims() != expected.dims() {
        return Err(err(format!(
            "logits have shape {:?}, the model gives {:?}",
            expected.dims(),
            actual.dims()
        )));
    }
    let diff = (actual - expected.to_dtype(DType::F32).map_err(ModelError::from)?)
        .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
        .map_err(ModelError::from)?;
    Ok(diff)
}
