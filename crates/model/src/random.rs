//! Networks of a given shape with random weights: what speed measurements and tests run when
//! the shape matters and the weights do not.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::weights::{expected_offline_shapes, expected_shapes, INV_FREQ_KEY};
use crate::{Decoder, ModelConfig, ModelError, OfflineConfig, OfflineModel};

/// A decoder of shape `config` with random f32 weights (the weights do not change the speed).
pub fn random_decoder(config: &ModelConfig) -> Result<Decoder, ModelError> {
    random_decoder_stored(config, DType::F32)
}

/// [`random_decoder`] with its weights stored as `dtype` (f32, f16 or bf16).
pub fn random_decoder_stored(config: &ModelConfig, dtype: DType) -> Result<Decoder, ModelError> {
    let rotary_half = config.default_rotary_dim() / 2;
    let mut tensors = HashMap::new();
    for (name, shape) in expected_shapes(config, rotary_half) {
        let tensor = if name == INV_FREQ_KEY {
            let freqs: Vec<f32> = (0..rotary_half)
                .map(|i| 10000f32.powf(-((2 * i) as f32) / (2 * rotary_half) as f32))
                .collect();
            Tensor::from_vec(freqs, rotary_half, &Device::Cpu)?
        } else {
            random_weight(&name, shape)?
        };
        tensors.insert(name, tensor.to_dtype(dtype)?);
    }
    Decoder::load(
        config,
        VarBuilder::from_tensors(tensors, dtype, &Device::Cpu),
    )
}

/// An offline model of shape `config` with random f32 weights.
pub fn random_offline(config: &OfflineConfig) -> Result<OfflineModel, ModelError> {
    random_offline_stored(config, DType::F32)
}

/// [`random_offline`] with its weights stored as `dtype` (f32, f16 or bf16).
pub fn random_offline_stored(
    config: &OfflineConfig,
    dtype: DType,
) -> Result<OfflineModel, ModelError> {
    let mut tensors = HashMap::new();
    for (name, shape) in expected_offline_shapes(config) {
        let tensor = random_weight(&name, shape)?;
        tensors.insert(name, tensor.to_dtype(dtype)?);
    }
    OfflineModel::load(
        config,
        VarBuilder::from_tensors(tensors, dtype, &Device::Cpu),
    )
}

/// One f32 weight of `shape`: ones for a qk-norm scale (as trained models start), small random
/// values otherwise.
fn random_weight(name: &str, shape: Vec<usize>) -> Result<Tensor, ModelError> {
    let tensor = if name.contains("qk_norm") {
        Tensor::ones(shape, DType::F32, &Device::Cpu)?
    } else {
        Tensor::randn(0f32, 0.05, shape, &Device::Cpu)?
    };
    Ok(tensor)
}
