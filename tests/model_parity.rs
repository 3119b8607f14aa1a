//! The Rust decoder against PyTorch/x-transformers 2.11.23 reference outputs written by
//! `training/make_parity_fixtures.py` (random, fully perturbed small decoders).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use comper_model::{weights, Decoder, LoadedModel, LogitRows};

const TOLERANCE: f32 = 1e-4;
const CONFIGS: [&str; 2] = ["d64_h2_dh32", "bf16_d32_h2_dh24"];

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

/// Runs `tokens` through the decoder in chunks of the given sizes, collecting every position's logits.
fn chunked_logits(decoder: &Decoder, tokens: &[u32], chunk_sizes: &[usize]) -> Tensor {
    let mut cache = decoder.new_cache(1).unwrap();
    let mut rows = Vec::new();
    let mut start = 0;
    let mut sizes = chunk_sizes.iter().cycle();
    while start < tokens.len() {
        let n = (*sizes.next().unwrap()).min(tokens.len() - start);
        let logits = decoder
            .step(
                &mut cache,
                &[tokens[start..start + n].to_vec()],
                LogitRows::All,
            )
            .unwrap();
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
        let logits = model
            .decoder
            .forward(&[tokens])
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
        let model = LoadedModel::load(&folder(name)).unwrap();
        let fx = fixture(name);
        let tokens = ids(&fx["tokens"]);
        for chunks in [&[1][..], &[2][..], &[1, 3, 2][..]] {
            let logits = chunked_logits(&model.decoder, &tokens, chunks);
            let diff = max_diff(&logits, &fx["step_logits"]);
            assert!(
                diff < TOLERANCE,
                "{name} chunks {chunks:?}: max |Δlogit| = {diff}"
            );
        }
    }
}

#[test]
fn bf16_weights_run_as_stored_and_equal_their_f32_values() {
    // This fixture's weights are bf16-rounded (stored as f32), so converting them to bf16 is
    // exact: a decoder kept at 16 bits must give the very same logits, matching PyTorch.
    let name = CONFIGS[1];
    let dir = folder(name);
    let model = LoadedModel::load(&dir).unwrap();
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(weights::storage_dtype(&tensors), DType::F32);
    let bf16: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.to_dtype(DType::BF16).unwrap()))
        .collect();
    let fx = fixture(name);
    let tokens = vec![ids(&fx["tokens"])];
    let widened = model.decoder.forward(&tokens).unwrap();
    assert_eq!(weights::storage_dtype(&bf16), DType::BF16);
    let bf16_decoder = weights::decoder_from_tensors(&model.config, bf16.clone(), &dir).unwrap();
    // Kept at 16 bits: half the bytes to stream, the same products.
    assert_eq!(
        2 * bf16_decoder.streamed_weight_bytes(),
        model.decoder.streamed_weight_bytes()
    );
    let stored = bf16_decoder.forward(&tokens).unwrap();
    assert_eq!(max_diff(&stored, &widened), 0.0);
    let diff = max_diff(&stored.squeeze(0).unwrap(), &fx["logits"]);
    assert!(diff < TOLERANCE, "max |Δlogit| = {diff}");

    // Rotary frequencies stored f32 beside 16-bit matrices (as `training/export.py` writes
    // them) leave the matrices 16-bit and are used unrounded: nudged off the bf16 grid, they
    // must give the logits of an all-f32 decoder with the same nudge.
    let key = weights::INV_FREQ_KEY;
    let nudged = tensors[key].affine(1.0 + 1.0 / 4096.0, 0.0).unwrap();
    let mut mixed = bf16;
    mixed.insert(key.into(), nudged.clone());
    let mut full = tensors;
    full.insert(key.into(), nudged);
    let written = std::env::temp_dir().join(format!("comper-mixed-{}", std::process::id()));
    weights::write_folder(&written, &model.config, &model.vocabulary, &mixed).unwrap();
    let reread =
        candle_core::safetensors::load(written.join("model.safetensors"), &Device::Cpu).unwrap();
    let _ = std::fs::remove_dir_all(&written);
    assert_eq!(reread[key].dtype(), DType::F32);
    assert_eq!(weights::storage_dtype(&reread), DType::BF16);
    let mixed_decoder = weights::decoder_from_tensors(&model.config, reread, &dir).unwrap();
    assert_eq!(
        mixed_decoder.streamed_weight_bytes(),
        bf16_decoder.streamed_weight_bytes()
    );
    let full_decoder = weights::decoder_from_tensors(&model.config, full, &dir).unwrap();
    let want = full_decoder.forward(&tokens).unwrap();
    assert!(max_diff(&want, &widened) > 0.0, "the nudge must matter");
    assert_eq!(
        max_diff(&mixed_decoder.forward(&tokens).unwrap(), &want),
        0.0
    );
}

#[test]
fn last_row_logits_equal_the_last_of_all_rows() {
    let model = LoadedModel::load(&folder(CONFIGS[0])).unwrap();
    let tokens = ids(&fixture(CONFIGS[0])["tokens"]);
    let batch = vec![tokens[..10].to_vec(), tokens[10..20].to_vec()];
    let mut cache = model.decoder.new_cache(2).unwrap();
    let last = model
        .decoder
        .step(&mut cache, &batch, LogitRows::Last)
        .unwrap();
    let all = model.decoder.forward(&batch).unwrap();
    let all_last = all.narrow(1, 9, 1).unwrap().squeeze(1).unwrap();
    assert!(max_diff(&last, &all_last) < 1e-6);

    let mut cache = model.decoder.new_cache(2).unwrap();
    let tail = model
        .decoder
        .step(&mut cache, &batch, LogitRows::Tail(3))
        .unwrap();
    assert_eq!(tail.dims(), &[2, 3, model.decoder.config().num_tokens]);
    assert!(max_diff(&tail, &all.narrow(1, 7, 3).unwrap()) < 1e-6);
    for bad in [0, 11] {
        let mut cache = model.decoder.new_cache(2).unwrap();
        let err = model
            .decoder
            .step(&mut cache, &batch, LogitRows::Tail(bad))
            .unwrap_err();
        assert!(err.to_string().contains("last"), "{err}");
    }
}

#[test]
fn stored_inv_freq_is_used_not_recomputed() {
    // The fixtures perturb inv_freq; a decoder recomputing 10000^(-2i/d) could not match.
    let dir = folder(CONFIGS[1]);
    let model = LoadedModel::load(&dir).unwrap();
    assert_eq!(model.decoder.rotary_dim(), 12);
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let inv_freq: Vec<f32> = tensors["decoder.attn_layers.rotary_pos_emb.inv_freq"]
        .to_vec1()
        .unwrap();
    let recomputed: Vec<f32> = (0..6)
        .map(|i| 1.0 / 10000f32.powf(2.0 * i as f32 / 12.0))
        .collect();
    assert!(inv_freq
        .iter()
        .zip(&recomputed)
        .skip(1)
        .any(|(a, b)| (a - b).abs() > 1e-4));
}

// ---- sampling on the parity models -------------------------------------------------------------

use comper_generate::sample::filter::part_log_prob;
use comper_generate::sample::{
    generate_options, plan_live, LiveRequest, OptionsRequest, Part, SamplingParams,
};
use comper_realtime::frames::{ChordFrame, MelodyFrame};
use rand::SeedableRng;

fn fixture_melody(model: &LoadedModel, fx: &HashMap<String, Tensor>) -> Vec<MelodyFrame> {
    ids(&fx["melody"])
        .into_iter()
        .map(|id| model.vocabulary.melody_frame(id).unwrap())
        .collect()
}

#[test]
fn greedy_online_generation_matches_pytorch() {
    for name in CONFIGS {
        let model = LoadedModel::load(&folder(name)).unwrap();
        let fx = fixture(name);
        let melody = fixture_melody(&model, &fx);
        let request = OptionsRequest {
            melody: &melody,
            locked: &[],
            count: 2,
            max_retries: 3,
            guide: None,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let options = generate_options(
            &model.decoder,
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
fn options_differ_respect_locks_and_are_seeded() {
    let model = LoadedModel::load(&folder(CONFIGS[0])).unwrap();
    let melody = fixture_melody(&model, &fixture(CONFIGS[0]));
    let mut locked = vec![None; melody.len()];
    locked[0] = Some(ChordFrame::Onset(4));
    locked[1] = Some(ChordFrame::Hold(4));
    locked[10] = Some(ChordFrame::Silence);
    let request = OptionsRequest {
        melody: &melody,
        locked: &locked,
        count: 5,
        max_retries: 8,
        guide: None,
    };
    let run = |seed| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        generate_options(
            &model.decoder,
            &model.vocabulary,
            &request,
            &SamplingParams::default(),
            &mut rng,
        )
        .unwrap()
    };
    let options = run(42);
    assert_eq!(options.len(), 5);
    for (i, a) in options.iter().enumerate() {
        assert_eq!(a.chords.len(), melody.len());
        assert_eq!(a.chords[0], ChordFrame::Onset(4));
        assert_eq!(a.chords[1], ChordFrame::Hold(4));
        assert_eq!(a.chords[10], ChordFrame::Silence);
        assert!(a.log_likelihood.is_finite() && a.log_likelihood < 0.0);
        for b in &options[i + 1..] {
            assert_ne!(a.chords, b.chords, "options must differ");
            assert!(a.log_likelihood >= b.log_likelihood, "most likely first");
        }
        // A hold only ever continues the chord sounding in the previous frame.
        for w in a.chords.windows(2) {
            if let ChordFrame::Hold(c) = w[1] {
                assert!(
                    matches!(w[0], ChordFrame::Silence) || w[0].chord() == Some(c),
                    "{w:?}"
                );
            }
        }
    }
    assert_eq!(options, run(42), "same seed, same options");
    assert_ne!(options, run(43));
}

#[test]
fn live_plan_keeps_committed_chords_and_fills_the_lookahead() {
    let model = LoadedModel::load(&folder(CONFIGS[1])).unwrap();
    let melody = fixture_melody(&model, &fixture(CONFIGS[1]));
    let chords = vec![ChordFrame::Onset(0); 5];
    let committed = [ChordFrame::Onset(3), ChordFrame::Hold(3)];
    let request = LiveRequest {
        beat_phase: 0,
        melody: &melody,
        chords: &chords,
        committed: &committed,
        lookahead: 6,
        guide: None,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let plan = plan_live(
        &model.decoder,
        &model.vocabulary,
        &request,
        &SamplingParams::default(),
        &mut rng,
    )
    .unwrap();
    assert_eq!(plan.chords.len(), 6);
    assert_eq!(&plan.chords[..2], &committed);
    assert_eq!(plan.imagined_melody.len(), 5);

    // Fully committed: no model call, the committed chords come back.
    let all = [ChordFrame::Hold(3); 6];
    let request = LiveRequest {
        beat_phase: 0,
        committed: &all,
        ..request
    };
    let plan = plan_live(
        &model.decoder,
        &model.vocabulary,
        &request,
        &SamplingParams::default(),
        &mut rng,
    )
    .unwrap();
    assert_eq!(plan.chords, all.to_vec());
    assert!(plan.imagined_melody.is_empty());
}

#[test]
fn live_context_is_trimmed_to_fit_the_model() {
    // max_seq_len 96 → 47 frames; a 100-frame history must be trimmed to 47 − L frames.
    let model = LoadedModel::load(&folder(CONFIGS[0])).unwrap();
    let melody = vec![MelodyFrame::Hold(60); 100];
    let request = LiveRequest {
        beat_phase: 0,
        melody: &melody,
        chords: &[],
        committed: &[],
        lookahead: 8,
        guide: None,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let plan = plan_live(
        &model.decoder,
        &model.vocabulary,
        &request,
        &SamplingParams::default(),
        &mut rng,
    )
    .unwrap();
    assert_eq!(plan.chords.len(), 8);
}

// ---- importing official checkpoint layouts -------------------------------------------------------

use comper_model::import::{import_checkpoint, max_logit_difference};
use comper_model::weights::AnyModel;

fn import_dir(case: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("comper-import-{}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn lightning_and_actor_checkpoints_import_losslessly() {
    let src = folder("import");
    let chords = folder(CONFIGS[1]).join("chord_names.json");
    let fixture = folder(CONFIGS[1]).join("fixture.safetensors");
    for (file, args) in [
        ("step=3.ckpt", Some(src.join("args.yml"))),
        ("actor.pth", None),
    ] {
        let out = import_dir(file);
        let report = import_checkpoint(&src.join(file), &chords, args.as_deref(), &out).unwrap();
        let config = report.config.base();
        assert_eq!(
            (config.dim, config.depth, config.heads, config.dim_head),
            (32, 3, 2, 24)
        );
        assert_eq!(config.max_seq_len, if args.is_some() { 96 } else { 514 });
        let model = AnyModel::load(&out).unwrap();
        assert!(matches!(model, AnyModel::Online(_)));
        let diff = max_logit_difference(&model, &fixture).unwrap();
        assert!(diff < TOLERANCE, "{file}: {diff}");
        // ReaLJam's actor is all bf16 and stays so (half the bytes, the same logits); the
        // Lightning checkpoint is f32.
        let stored =
            candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
        let want = if file == "actor.pth" {
            DType::BF16
        } else {
            DType::F32
        };
        assert_eq!(weights::storage_dtype(&stored), want, "{file}");
    }
}

#[test]
fn import_cli_checks_parity_and_fails_on_mismatch() {
    let src = folder("import");
    let out = import_dir("cli");
    let run = |fixture: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_comper"))
            .args([
                "import",
                src.join("actor.pth").to_str().unwrap(),
                "--chords",
            ])
            .arg(folder(CONFIGS[1]).join("chord_names.json"))
            .arg("--args")
            .arg(src.join("args.yml"))
            .arg("--out")
            .arg(&out)
            .arg("--check")
            .arg(fixture)
            .output()
            .unwrap()
    };
    let ok = run(&folder(CONFIGS[1]).join("fixture.safetensors"));
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("max |logit difference|"), "{stdout}");
    let bad = run(&folder(CONFIGS[0]).join("fixture.safetensors"));
    assert!(!bad.status.success());
}

#[test]
fn args_disagreeing_with_the_tensors_fail_the_import() {
    let src = folder("import");
    let args = import_dir("args").with_extension("yml");
    std::fs::write(&args, "DecoderTransformer.depth: 8\n").unwrap();
    let err = import_checkpoint(
        &src.join("actor.pth"),
        &folder(CONFIGS[1]).join("chord_names.json"),
        Some(&args),
        &import_dir("args-out"),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("depth"), "{err}");
}

#[test]
fn live_planner_reuses_the_context_without_changing_the_plan() {
    use comper_generate::sample::LivePlanner;
    let model = LoadedModel::load(&folder(CONFIGS[0])).unwrap();
    let melody = fixture_melody(&model, &fixture(CONFIGS[0]));
    let chords: Vec<ChordFrame> = (0..24)
        .map(|t| {
            if t % 4 == 0 {
                ChordFrame::Onset((t / 4) as u16 % 8)
            } else {
                ChordFrame::Hold((t / 4) as u16 % 8)
            }
        })
        .collect();
    let mut planner = LivePlanner::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut previous = 0;
    for frame in [12, 16, 20, 24, 8] {
        let request = LiveRequest {
            beat_phase: 0,
            melody: &melody[..frame],
            chords: &chords[..frame],
            committed: &[ChordFrame::Hold(1)],
            lookahead: 6,
            guide: None,
        };
        let reused = planner
            .plan(
                &model.decoder,
                &model.vocabulary,
                &request,
                &SamplingParams::greedy(),
                &mut rng,
            )
            .unwrap();
        let fresh = plan_live(
            &model.decoder,
            &model.vocabulary,
            &request,
            &SamplingParams::greedy(),
            &mut rng,
        )
        .unwrap();
        assert_eq!(reused, fresh, "frame {frame}");
        // Growing history: everything but the previous plan's own tokens is reused.
        let expected = if frame > previous && previous > 0 {
            1 + 2 * previous
        } else {
            0
        };
        assert!(
            planner.last_reused() >= expected,
            "frame {frame}: reused {}",
            planner.last_reused()
        );
        if frame < previous {
            assert!(planner.last_reused() <= 1 + 2 * frame);
        }
        previous = frame;
    }
}

#[path = "common/chords.rs"]
mod chords;
use chords::continues;

#[test]
fn sampled_chords_change_only_on_the_change_grid() {
    let model = LoadedModel::load(&folder(CONFIGS[0])).unwrap();
    let melody = fixture_melody(&model, &fixture(CONFIGS[0]));
    let on_beats = SamplingParams {
        change_grid: 4,
        ..SamplingParams::default()
    };
    let request = OptionsRequest {
        melody: &melody,
        locked: &[],
        count: 5,
        max_retries: 3,
        guide: None,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let options = generate_options(
        &model.decoder,
        &model.vocabulary,
        &request,
        &on_beats,
        &mut rng,
    )
    .unwrap();
    let mut changes = 0;
    for option in &options {
        for (t, w) in option.chords.windows(2).enumerate() {
            if !continues(w[0], w[1]) {
                changes += 1;
                assert_eq!((t + 1) % 4, 0, "a change at frame {}: {w:?}", t + 1);
            }
        }
    }
    assert!(changes > 0, "the random model changes chords somewhere");

    // Chords the grid holds skip their own decoder call, but each option's log-likelihood still
    // scores every chord slot: the same sum from one forward pass over the finished sequence.
    for option in &options {
        let tokens = model
            .vocabulary
            .online_sequence(&option.chords, &melody)
            .unwrap();
        let logits = model
            .decoder
            .forward(std::slice::from_ref(&tokens))
            .unwrap();
        let logits: Vec<Vec<f32>> = logits.squeeze(0).unwrap().to_vec2().unwrap();
        let expected: f64 = (0..option.chords.len())
            .map(|t| {
                part_log_prob(
                    &model.vocabulary,
                    &logits[2 * t],
                    Part::Chord,
                    tokens[1 + 2 * t],
                )
            })
            .sum();
        assert!(
            (option.log_likelihood - expected).abs() < 1e-3,
            "{} vs {expected}",
            option.log_likelihood
        );
    }

    // Live: the planned frames 10 .. 18 count from the session's first frame.
    let history = &melody[..10];
    let chords = vec![ChordFrame::Onset(1); 10];
    let request = LiveRequest {
        beat_phase: 0,
        melody: history,
        chords: &chords,
        committed: &[],
        lookahead: 8,
        guide: None,
    };
    for seed in 0..5 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let plan = plan_live(
            &model.decoder,
            &model.vocabulary,
            &request,
            &on_beats,
            &mut rng,
        )
        .unwrap();
        let mut prev = ChordFrame::Onset(1);
        for (i, &chord) in plan.chords.iter().enumerate() {
            let frame = 10 + i;
            assert!(
                frame % 4 == 0 || continues(prev, chord),
                "frame {frame}: {prev:?} -> {chord:?}"
            );
            prev = chord;
        }
    }
}
