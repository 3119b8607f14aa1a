//! The converter's `.npz` splits (`training/convert.py`), read back as frame tracks.
//!
//! A split holds four integer arrays: `tokens` (every example's online sequence
//! `[BOS, c0, m0, …, EOS]`, concatenated), `offsets` (example boundaries into `tokens`),
//! `bars` (bar-line frames, concatenated) and `bar_offsets` (example boundaries into `bars`).

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};

use super::EvalError;
use comper_music::tokens::{TokenId, Vocabulary};
use comper_realtime::frames::{ChordFrame, MelodyFrame};

/// One example of a split: a melody, its ground-truth chords and where its bars start.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// One entry per 16th-note frame.
    pub melody: Vec<MelodyFrame>,
    /// The ground truth, one entry per frame (same length as `melody`).
    pub chords: Vec<ChordFrame>,
    /// Frames where a bar starts, ascending (may be empty when the data has none).
    pub bars: Vec<usize>,
}

impl Example {
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.melody.len()
    }

    /// Whether the example has no frames.
    pub fn is_empty(&self) -> bool {
        self.melody.is_empty()
    }
}

/// One split's arrays, read once; examples are decoded on demand so that even the 95k-example
/// training split never sits in memory as frames.
pub struct Split {
    path: PathBuf,
    tokens: Vec<i64>,
    offsets: Vec<i64>,
    bars: Vec<i64>,
    bar_offsets: Vec<i64>,
}

impl Split {
    /// Reads `path` (an `.npz` written by `training/convert.py`).
    pub fn read(path: &Path) -> Result<Self, EvalError> {
        let raw = read_raw(path)?;
        if raw.bar_offsets.len() != raw.offsets.len() {
            return Err(EvalError::BadData {
                path: path.to_owned(),
                message: format!(
                    "{} token offsets but {} bar offsets",
                    raw.offsets.len(),
                    raw.bar_offsets.len()
                ),
            });
        }
        Ok(raw)
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Whether the split has no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Example `i`, its tokens decoded with `vocab`.
    pub fn example(&self, i: usize, vocab: &Vocabulary) -> Result<Example, EvalError> {
        let bad = |message: String| EvalError::BadData {
            path: self.path.clone(),
            message: format!("example {i}: {message}"),
        };
        let (start, end) = span(&self.offsets, i, self.tokens.len())
            .ok_or_else(|| bad("token offsets missing, out of order or out of range".into()))?;
        let (bar_start, bar_end) = span(&self.bar_offsets, i, self.bars.len())
            .ok_or_else(|| bad("bar offsets missing, out of order or out of range".into()))?;
        let ids = self
            .tokens
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(|&t| TokenId::try_from(t).map_err(|_| bad(format!("negative token id {t}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let (chords, melody) = vocab
            .split_online_sequence(&ids)
            .map_err(|e| bad(e.to_string()))?;
        if chords.len() != melody.len() {
            return Err(bad(format!(
                "{} chord frames but {} melody frames",
                chords.len(),
                melody.len()
            )));
        }
        let bars = self
            .bars
            .get(bar_start..bar_end)
            .unwrap_or_default()
            .iter()
            .filter_map(|&b| usize::try_from(b).ok())
            .filter(|&b| b < melody.len())
            .collect();
        Ok(Example {
            melody,
            chords,
            bars,
        })
    }
}

fn read_raw(path: &Path) -> Result<Split, EvalError> {
    let names = ["tokens", "offsets", "bars", "bar_offsets"];
    let tensors = Tensor::read_npz_by_name(path, &names).map_err(|e| EvalError::BadData {
        path: path.to_owned(),
        message: format!("cannot read the arrays {names:?}: {e}"),
    })?;
    let mut arrays = Vec::with_capacity(names.len());
    for (name, tensor) in names.iter().zip(&tensors) {
        arrays.push(integers(tensor).map_err(|message| EvalError::BadData {
            path: path.to_owned(),
            message: format!("array {name:?}: {message}"),
        })?);
    }
    let mut arrays = arrays.into_iter();
    let mut next = || arrays.next().unwrap_or_default();
    Ok(Split {
        path: path.to_owned(),
        tokens: next(),
        offsets: next(),
        bars: next(),
        bar_offsets: next(),
    })
}

/// A 1-D integer array as `i64`s, whatever integer type numpy stored.
fn integers(tensor: &Tensor) -> Result<Vec<i64>, String> {
    let flat = tensor.flatten_all().map_err(|e| e.to_string())?;
    let widen = |r: candle_core::Result<Vec<i64>>| r.map_err(|e| e.to_string());
    match flat.dtype() {
        DType::I16 => widen(
            flat.to_vec1::<i16>()
                .map(|v| v.into_iter().map(i64::from).collect()),
        ),
        DType::I32 => widen(
            flat.to_vec1::<i32>()
                .map(|v| v.into_iter().map(i64::from).collect()),
        ),
        DType::I64 => widen(flat.to_vec1::<i64>()),
        DType::U8 => widen(
            flat.to_vec1::<u8>()
                .map(|v| v.into_iter().map(i64::from).collect()),
        ),
        DType::U32 => widen(
            flat.to_vec1::<u32>()
                .map(|v| v.into_iter().map(i64::from).collect()),
        ),
        other => Err(format!("has dtype {other:?}, expected integers")),
    }
}

/// `[start, end)` of entry `i` of an offsets array, checked against the data length.
fn span(offsets: &[i64], i: usize, len: usize) -> Option<(usize, usize)> {
    let start = usize::try_from(*offsets.get(i)?).ok()?;
    let end = usize::try_from(*offsets.get(i + 1)?).ok()?;
    (start <= end && end <= len).then_some((start, end))
}

/// `count` example indices spread evenly over `total` (all of them when `count ≥ total`), so a
/// quick evaluation still sees every dataset of a split in proportion.
pub fn evenly_spaced(total: usize, count: usize) -> Vec<usize> {
    if count >= total {
        return (0..total).collect();
    }
    (0..count).map(|i| i * total / count).collect()
}

/// The dataset of every example of a split, from the converter's `<split>_meta.jsonl` (one
/// JSON object with a `"dataset"` field per example); `None` when the file does not exist.
pub fn read_datasets(path: &Path, examples: usize) -> Result<Option<Vec<String>>, EvalError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(EvalError::BadData {
                path: path.to_owned(),
                message: e.to_string(),
            })
        }
    };
    let bad = |message: String| EvalError::BadData {
        path: path.to_owned(),
        message,
    };
    let datasets = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let entry: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(format!("line {}: {e}", i + 1)))?;
            entry
                .get("dataset")
                .and_then(|d| d.as_str())
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("line {}: no \"dataset\" string", i + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if datasets.len() != examples {
        return Err(bad(format!(
            "{} entries for {examples} examples",
            datasets.len()
        )));
    }
    Ok(Some(datasets))
}
