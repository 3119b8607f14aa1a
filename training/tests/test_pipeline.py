"""End to end on a fake dataset folder: convert -> crop batches -> train a few steps -> export."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import convert
from comper_data.batches import TokenSet, crop, pad_batch
from comper_data.tokens import BOS, CHORD_BASE, EOS, NOTE_ON_BASE, PAD, num_tokens
from fixtures import write_nottingham, write_pop909_song


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    for name in [f"{i:03d}" for i in range(1, 11)]:
        write_pop909_song(root / "pop909" / "POP909", name)
    write_nottingham(root / "nottingham")
    out = root / "out"
    split_file = root / "splits.json"
    assert convert.main(["--datasets", str(root), "--only", "pop909", "nottingham", "--out", str(out),
                         "--split-file", str(split_file), "--min-chord-count", "3"]) == 0
    return out, split_file


def test_split_file_is_song_level_and_stable(converted):
    out, split_file = converted
    split = json.loads(split_file.read_text())
    pop = split["pop909"]
    assert sorted(pop["train"] + pop["valid"] + pop["test"]) == [f"{i:03d}" for i in range(1, 11)]
    assert (len(pop["train"]), len(pop["valid"]), len(pop["test"])) == (8, 1, 1)
    assert convert.make_split({"pop909": []}, 1) == {"pop909": {"train": [], "valid": [], "test": []}}


def test_vocabulary_and_token_ranges(converted):
    out, _ = converted
    names = json.loads((out / "chord_names.json").read_text())
    assert names == sorted(set(names))
    # every kept quality appears on all 12 roots
    assert len(names) % 12 == 0
    report = json.loads((out / "report.json").read_text())
    assert report["vocabulary_size"] == len(names)
    # the Nottingham "Fa7" (aug7, seen twice) is rarer than --min-chord-count 3: it becomes
    # an augmented triad; the equally rare dim triad cannot be simplified and stays
    assert report["chord_qualities"]["C+7"] == 2
    assert report["simplified_qualities (as on C)"] == {"C+7": {"count": 2, "to": "C+"}}
    assert "C+7" not in names and "Co" in names
    train = TokenSet(out / "train.npz")
    per_song = sum(d.get("examples train", 0) for d in report["datasets"].values())
    assert len(train) == report["splits"]["train"]["examples"] == 13 * per_song
    for i in range(len(train)):
        seq = train.sequence(i)
        assert seq[0] == BOS and seq[-1] == EOS
        assert len(seq) % 2 == 0 and len(seq) <= 514
        assert seq.min() > PAD and seq.max() < num_tokens(len(names))
        chords, melody = seq[1:-1:2], seq[2:-1:2]
        assert ((chords == 3) | (chords >= CHORD_BASE)).all()
        assert (melody < CHORD_BASE).all()


def test_crop_restarts_holds_and_drops_eos():
    c = 5
    # 300 frames: chord 0 onset then holds; melody pitch 60 onset then holds
    frames = 300
    seq = [BOS]
    for t in range(frames):
        seq += [CHORD_BASE + (c if t == 0 else 0), (NOTE_ON_BASE if t == 0 else 4) + 60]
    seq = np.array(seq + [EOS])
    rng = np.random.default_rng(0)
    window = crop(seq, np.array([0, 16, 32]), 128, c, rng)
    assert window[0] == BOS and len(window) == 1 + 2 * 128
    assert window[1] == CHORD_BASE + c and window[2] == NOTE_ON_BASE + 60
    assert EOS not in window
    assert (crop(seq[:21], np.array([0]), 128, c, rng) == seq[:21]).all()
    batch = pad_batch([np.array([1, 2]), np.array([1, 3, 4])])
    assert batch.tolist() == [[1, 2, PAD], [1, 3, 4]]


def test_train_resume_and_export(converted, tmp_path):
    import train
    import export
    from safetensors.torch import load_file

    out, _ = converted
    run = tmp_path / "run"
    common = ["--data", str(out), "--run", str(run), "--dim", "32", "--depth", "1", "--heads", "2",
              "--batch-size", "4", "--minutes", "5", "--log-every", "1", "--valid-every", "2", "--ckpt-every", "2"]
    assert train.main(common + ["--max-steps", "3"]) == 0
    assert train.main(common + ["--max-steps", "5", "--resume"]) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "train_loss" in e] == [1, 2, 3, 4, 5]
    assert all(np.isfinite(e["valid_nll"]) for e in log if "valid_nll" in e)

    folder = export.export(run, "tiny", tmp_path / "weights")
    config = json.loads((folder / "config.json").read_text())
    names = json.loads((folder / "chord_names.json").read_text())
    assert {k: config[k] for k in ("name", "dim", "depth", "heads", "dim_head", "max_seq_len")} == {
        "name": "tiny", "dim": 32, "depth": 1, "heads": 2, "dim_head": 64, "max_seq_len": 514}
    assert config["num_tokens"] == 260 + 2 * len(names)
    tensors = load_file(str(folder / "model.safetensors"))
    assert tensors["decoder.token_emb.emb.weight"].shape == (config["num_tokens"], 32)
    assert tensors["decoder.to_logits.weight"].shape == (config["num_tokens"], 32)
    assert tensors["decoder.attn_layers.rotary_pos_emb.inv_freq"].shape == (16,)
    assert tensors["decoder.attn_layers.layers.0.1.qk_norm_q_scale"].shape == (2, 1, 64)
    assert tensors["decoder.attn_layers.layers.1.1.ff.2.weight"].shape == (32, 128)
    assert all(str(t.dtype) == "torch.float32" for t in tensors.values())

    # 16-bit export: the matrices halve, the rotary frequencies stay f32 (exactly the trained ones).
    half = load_file(str(export.export(run, "tiny-f16", tmp_path / "weights", "float16") / "model.safetensors"))
    inv_freq = "decoder.attn_layers.rotary_pos_emb.inv_freq"
    assert str(half[inv_freq].dtype) == "torch.float32"
    assert half[inv_freq].equal(tensors[inv_freq])
    assert all(str(t.dtype) == "torch.float16" for k, t in half.items() if k != inv_freq)


def test_keep_best_keeps_the_lowest_validation_and_exports(converted, tmp_path):
    """`--keep-best` writes best.pt whenever the subset valid NLL improves (also at the end)
    and `export --checkpoint best.pt` exports it with that NLL."""
    import train
    import export

    out, _ = converted
    run = tmp_path / "run"
    assert train.main(["--data", str(out), "--run", str(run), "--dim", "32", "--depth", "1", "--heads", "2",
                       "--batch-size", "4", "--minutes", "5", "--log-every", "1", "--valid-every", "2",
                       "--max-steps", "5", "--keep-best"]) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    checks = [e for e in log if "valid_nll" in e]
    assert [e["step"] for e in checks] == [2, 4, 5]
    best = torch.load(run / "best.pt", map_location="cpu", weights_only=False)
    assert round(best["valid_nll"], 4) == min(e["valid_nll"] for e in checks)
    assert best["step"] == [e["step"] for e in checks if e.get("best")][-1]
    folder = export.export(run, "best", tmp_path / "weights", checkpoint="best.pt")
    config = json.loads((folder / "config.json").read_text())
    assert (config["train_steps"], config["valid_nll"]) == (best["step"], round(best["valid_nll"], 4))


def test_fine_tune_from_weights_with_extra_examples(converted, tmp_path):
    """`--init-weights` starts from an exported folder and `--extra` mixes in more examples (here
    the training split itself, given twice, as `comper best-of` rounds would be)."""
    import train
    import export
    from safetensors.torch import load_file

    from comper_data.batches import TokenSet

    out, _ = converted
    common = ["--data", str(out), "--dim", "32", "--depth", "1", "--heads", "2", "--batch-size", "4",
              "--minutes", "5", "--log-every", "1", "--valid-every", "100", "--ckpt-every", "100"]
    assert train.main(common + ["--run", str(tmp_path / "base"), "--max-steps", "2"]) == 0
    base = export.export(tmp_path / "base", "base", tmp_path / "weights")

    extra = [str(out / "train.npz")] * 2
    both = TokenSet(*map(Path, extra))
    one = TokenSet(out / "train.npz")
    assert len(both) == 2 * len(one)
    assert (both.sequence(len(one)) == one.sequence(0)).all()
    assert (both.bar_frames(len(one)) == one.bar_frames(0)).all()

    tuned_run = tmp_path / "tuned"
    args = common + ["--run", str(tuned_run), "--max-steps", "1", "--lr", "0", "--warmup", "0",
                     "--init-weights", str(base), "--extra", *extra, "--extra-share", "0.5"]
    assert train.main(args) == 0
    tuned = export.export(tuned_run, "tuned", tmp_path / "weights")
    # lr 0: the fine-tuned weights are still exactly the ones it started from
    before, after = load_file(str(base / "model.safetensors")), load_file(str(tuned / "model.safetensors"))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_offline_pair_splits_and_truncates():
    from comper_data.batches import offline_pair

    c = 5
    seq = [BOS]
    for t in range(40):
        seq += [CHORD_BASE + c + t % 3, NOTE_ON_BASE + 60 + t % 7]
    seq = np.array(seq + [EOS])
    melody, chords = offline_pair(seq)
    assert melody[0] == BOS and melody[-1] == EOS and len(melody) == 42
    assert chords[0] == BOS and chords[-1] == EOS and len(chords) == 42
    assert (melody[1:-1] == seq[2:-1:2]).all() and (chords[1:-1] == seq[1:-1:2]).all()
    # a window without EOS still gets one on both sides
    melody, chords = offline_pair(seq[:21])
    assert len(melody) == len(chords) == 12 and melody[-1] == chords[-1] == EOS
    lengths = {len(offline_pair(seq, np.random.default_rng(s), truncate_prob=1.0)[0]) for s in range(30)}
    assert min(lengths) >= 16 + 2 and max(lengths) <= 42 and len(lengths) > 3


def test_offline_train_resume_and_export(converted, tmp_path):
    import train
    import export
    from safetensors.torch import load_file

    out, _ = converted
    run = tmp_path / "run"
    common = ["--model", "offline", "--data", str(out), "--run", str(run), "--dim", "32", "--depth", "2",
              "--enc-depth", "1", "--heads", "2", "--batch-size", "4", "--minutes", "5", "--log-every", "1",
              "--valid-every", "2", "--ckpt-every", "2"]
    assert train.main(common + ["--max-steps", "2"]) == 0
    assert train.main(common + ["--max-steps", "3", "--resume"]) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "train_loss" in e] == [1, 2, 3]
    assert all(np.isfinite(e["valid_nll"]) for e in log if "valid_nll" in e)

    folder = export.export(run, "tiny-offline", tmp_path / "weights", "float16")
    config = json.loads((folder / "config.json").read_text())
    assert {k: config[k] for k in ("kind", "dim", "enc_depth", "depth", "heads", "dim_head", "max_seq_len")} == {
        "kind": "offline", "dim": 32, "enc_depth": 1, "depth": 2, "heads": 2, "dim_head": 64, "max_seq_len": 258}
    tensors = load_file(str(folder / "model.safetensors"))
    assert tensors["encoder.token_emb.emb.weight"].shape == (config["num_tokens"], 32)
    assert tensors["encoder.attn_layers.rel_pos.relative_attention_bias.weight"].shape == (32, 2)
    assert "encoder.to_logits.weight" not in tensors
    assert tensors["decoder.decoder.attn_layers.layers.4.1.to_q.weight"].shape == (128, 32)  # cross-attn
    assert tensors["decoder.decoder.to_logits.weight"].shape == (config["num_tokens"], 32)
    assert not any("inv_freq" in k for k in tensors)
    assert all(str(t.dtype) == "torch.float16" for t in tensors.values())


def test_policy_gradient_fine_tuning_runs_and_exports(converted, tmp_path):
    """`rl.py` samples, scores and updates a tiny exported model, logs the fit and the KL, and
    leaves a checkpoint `export.py` turns into a weights folder that differs from the start."""
    import export
    import rl
    import train
    from safetensors.torch import load_file

    out, _ = converted
    common = ["--data", str(out), "--dim", "32", "--depth", "1", "--heads", "2", "--batch-size", "4",
              "--minutes", "5", "--log-every", "1", "--valid-every", "100", "--ckpt-every", "100"]
    assert train.main(common + ["--run", str(tmp_path / "base"), "--max-steps", "2"]) == 0
    base = export.export(tmp_path / "base", "base", tmp_path / "weights")
    run = tmp_path / "rl"
    assert rl.main(["--data", str(out), "--init-weights", str(base), "--run", str(run), "--melodies", "2",
                    "--samples", "2", "--frames", "16", "--max-steps", "2", "--log-every", "1",
                    "--lr", "1e-3", "--keep-checkpoints", "--ckpt-every", "1"]) == 0
    entries = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [e for e in entries if "fit" in e]
    assert [e["step"] for e in steps] == [1, 2]
    assert all(0.0 <= e["fit"] <= 1.0 and e["kl"] >= 0.0 for e in steps)
    assert (run / "ckpt-1.pt").exists() and (run / "ckpt-2.pt").exists()
    tuned = export.export(run, "tuned", tmp_path / "weights")
    before, after = load_file(str(base / "model.safetensors")), load_file(str(tuned / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(SystemExit, match="frames"):
        rl.main(["--data", str(out), "--init-weights", str(base), "--run", str(run), "--frames", "100000"])
