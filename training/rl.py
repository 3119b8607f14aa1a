"""Policy-gradient fine-tuning of the online decoder for note-in-chord fit, kept close to a
reference model by a KL penalty (the shape of ReaLchords' RL stage, with the fit computed from
the melody instead of learned reward models).

    python training/rl.py --data training/data --init-weights weights/comper-online \
        --run /work/runs/online-rl --minutes 60

Each step takes `--melodies` bar-aligned training windows of `--frames` frames, samples
`--samples` chord tracks for each with the current policy (melody teacher-forced, Comper's
validity masks and chord-change grid, temperature 1), and scores every frame: 1 when the
melody note sounds inside the chord, else 0, less `--size-cost` for each pitch class the chord has
beyond three (a thicker chord fits more notes by itself; without the cost the policy learns to
play minor sevenths everywhere), and less `--offbeat-cost` on a frame where a chord starts
between beats. A chord token's return is the discounted reward of
the frames from it on (`--gamma` per frame); its advantage is that return minus the mean
return of the other samples of the same melody at the same frame. The loss is
`-advantage · log π(token)` over the sampled chord tokens that had a choice, plus `--kl` ×
the exact KL divergence from the reference model's distribution (the starting weights,
frozen) over the same valid tokens, plus `--melody-kl` × the same divergence of the melody
predictions at the (teacher-forced) melody slots: they share the weights, and the live engine
samples them as the imagined melody. The run folder gets ckpt.pt (the format `export.py`
reads), log.jsonl, and chord_names.json. `--device cuda` runs it all on a GPU (in f32); there
the sampling loop is bound by the per-frame decoding calls, not the batch, so give it many
more `--melodies` per step than on the CPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comper_data.batches import TokenSet, crop, num_chords_from, pad_batch  # noqa: E402
from comper_data.model import DIM_HEAD, MAX_SEQ_LEN, build_model  # noqa: E402
from comper_data.policy import (  # noqa: E402
    chord_pitch_classes,
    discounted_returns,
    fit_rewards,
    frame_fit,
    leave_one_out_advantages,
    offbeat_onsets,
    sounding_chord,
    valid_chord_mask,
)
from comper_data.tokens import CHORD_BASE, EOS, num_tokens  # noqa: E402
from train import save_checkpoint, valid_nll  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parent / "data")
    ap.add_argument("--init-weights", type=Path, required=True, help="exported online weights folder to start from")
    ap.add_argument("--reference", type=Path, help="weights folder the KL penalty anchors to (default: --init-weights)")
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--melodies", type=int, default=8, help="melodies per step")
    ap.add_argument("--samples", type=int, default=4, help="chord tracks sampled per melody (>= 2)")
    ap.add_argument("--frames", type=int, default=128, help="frames per melody window (bar-aligned)")
    ap.add_argument("--change-grid", type=int, default=2, help="chords may change every N frames from the bar line")
    ap.add_argument("--gamma", type=float, default=0.9)
    ap.add_argument("--kl", type=float, default=0.1, help="weight of the KL divergence from the reference")
    ap.add_argument("--size-cost", type=float, default=0.15,
                    help="reward taken off per sounding melody frame for each chord pitch class beyond three")
    ap.add_argument("--melody-kl", type=float, default=0.1,
                    help="weight of the KL divergence from the reference at the melody slots (teacher-forced)")
    ap.add_argument("--offbeat-cost", type=float, default=0.0,
                    help="reward taken off for each chord that starts between beats")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0 = only --minutes)")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="torch device to train on (cpu, cuda, cuda:1, ...)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--keep-checkpoints", action="store_true", help="also keep a copy of every checkpoint as ckpt-STEP.pt")
    return ap.parse_args(argv)


def load_decoder(weights: Path, config: dict, device: torch.device):
    from safetensors.torch import load_file

    model = build_model(config)
    model.load_state_dict(load_file(str(weights / "model.safetensors")))
    model.eval()
    return model.to(device)


@torch.no_grad()
def sample_chords(model, melody: torch.Tensor, num_chords: int, change_grid: int, generator: torch.Generator):
    """Chord tokens `[batch, frames]` sampled at temperature 1 for the melody tokens
    `[batch, frames]` with the KV cache, and the valid-token masks used `[batch, frames, V]`."""
    batch, frames = melody.shape
    vocab = num_tokens(num_chords)
    device = melody.device
    seq = torch.full((batch, 1), 1, dtype=torch.long, device=device)  # BOS
    logits, cache = model.decoder(seq, return_intermediates=True)
    chords = torch.zeros(batch, frames, dtype=torch.long, device=device)
    masks = torch.zeros(batch, frames, vocab, dtype=torch.bool, device=device)
    prev = None
    for t in range(frames):
        mask = valid_chord_mask(prev, t % change_grid == 0, num_chords, vocab, device).expand(batch, vocab)
        step_logits = logits[:, -1].float().masked_fill(~mask, float("-inf"))
        choice = torch.multinomial(F.softmax(step_logits, dim=-1), 1, generator=generator).squeeze(1)
        chords[:, t], masks[:, t], prev = choice, mask, choice
        if t + 1 < frames:
            seq = torch.cat([seq, choice[:, None], melody[:, t : t + 1]], dim=1)
            logits, cache = model.decoder(seq, cache=cache, cache_age=2, return_intermediates=True)
    return chords, masks


def interleave(chords: torch.Tensor, melody: torch.Tensor) -> torch.Tensor:
    """`[BOS, c0, m0, c1, m1, ...]` for `[batch, frames]` parts."""
    batch, frames = chords.shape
    seq = torch.empty(batch, 1 + 2 * frames, dtype=torch.long, device=chords.device)
    seq[:, 0] = 1
    seq[:, 1::2] = chords
    seq[:, 2::2] = melody
    return seq


def log_probs_of(model, seq: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`[batch, frames, V]` log-probabilities of each chord slot's valid tokens (invalid ones
    get a finite −1e9, so that masked terms have zero, not NaN, gradients), and of the next
    melody token at each melody slot over the whole vocabulary."""
    logits = model.decoder(seq[:, :-1]).float()
    chords = F.log_softmax(logits[:, 0::2].masked_fill(~masks, -1e9), dim=-1)
    return chords, F.log_softmax(logits[:, 1::2], dim=-1)


def kl_divergence(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) along the last axis from log-probabilities (masked entries have p = 0)."""
    p = log_p.exp()
    return (p * (log_p - log_q)).sum(-1)


def chord_size(chords: torch.Tensor, pitch_classes: torch.Tensor) -> float:
    """Mean pitch classes of the sounding chord over frames with a chord (thicker chords fit
    more notes; this watches for the policy buying fit that way)."""
    has_chord, index = sounding_chord(chords, pitch_classes.shape[0])
    sizes = pitch_classes.sum(-1)[index[has_chord]]
    return float(sizes.float().mean()) if sizes.numel() else 0.0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.samples < 2:
        raise SystemExit("--samples must be at least 2 (the baseline is the other samples)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    args.run.mkdir(parents=True, exist_ok=True)
    names_path = args.data / "chord_names.json"
    num_chords = num_chords_from(names_path)
    shutil.copyfile(names_path, args.run / "chord_names.json")
    pitch_classes = chord_pitch_classes(names_path).to(device)
    init = json.loads((args.init_weights / "config.json").read_text())
    config = {
        "dim": init["dim"], "depth": init["depth"], "heads": init["heads"], "dim_head": init.get("dim_head", DIM_HEAD),
        "num_tokens": num_tokens(num_chords), "max_seq_len": MAX_SEQ_LEN, "dropout": 0.1,
    }
    policy = load_decoder(args.init_weights, config, device)
    reference = load_decoder(args.reference or args.init_weights, config, device)
    for p in reference.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.lr, betas=(0.9, 0.98))
    train, valid = TokenSet(args.data / "train.npz"), TokenSet(args.data / "valid.npz")
    long_enough = [i for i in range(len(train)) if len(train.sequence(i)) >= 2 + 2 * args.frames]
    if not long_enough:
        raise SystemExit(f"no training example has {args.frames} frames; lower --frames")
    valid_subset = sorted(np.random.default_rng(12345).choice(len(valid), min(128, len(valid)), replace=False).tolist())
    log_path = args.run / "log.jsonl"

    def log(entry: dict) -> None:
        print(json.dumps(entry), flush=True)
        with open(log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    start, step = time.time(), 0
    window: dict[str, float] = {}

    def checkpoint() -> None:
        save_checkpoint(args.run / "ckpt.pt", {
            "model": policy.state_dict(), "config": config, "step": step,
            "elapsed": time.time() - start, "args": {k: str(v) for k, v in vars(args).items()},
        })
        if args.keep_checkpoints:
            shutil.copyfile(args.run / "ckpt.pt", args.run / f"ckpt-{step}.pt")

    log({"step": 0, "valid_nll": round(valid_nll(policy, "online", valid, valid_subset, 16), 4), "device": str(device)})
    policy.eval()  # no dropout: the sampled and the scored distributions are the same
    while not stop["now"] and time.time() - start < args.minutes * 60 and not (args.max_steps and step >= args.max_steps):
        windows = []
        while len(windows) < args.melodies:
            i = int(long_enough[rng.integers(len(long_enough))])
            seq = crop(train.sequence(i), train.bar_frames(i), args.frames, num_chords, rng)
            seq = seq[:-1] if seq[-1] == EOS else seq
            if len(seq) == 1 + 2 * args.frames:  # equal lengths keep the batch unpadded
                windows.append(seq)
        tokens = torch.from_numpy(pad_batch(windows)).to(device).repeat_interleave(args.samples, dim=0)
        melody = tokens[:, 2::2]
        chords, masks = sample_chords(policy, melody, num_chords, args.change_grid, generator)
        sounding, fits = frame_fit(melody, chords, pitch_classes)
        rewards = fit_rewards(sounding, fits, chords, pitch_classes, args.size_cost)
        offbeat = offbeat_onsets(chords, num_chords)
        rewards = rewards - args.offbeat_cost * offbeat.float()
        returns = discounted_returns(rewards, args.gamma)
        advantages = leave_one_out_advantages(returns, args.samples)
        choice = masks.sum(-1) > 1  # forced continuations carry no gradient
        scale = advantages[choice].std().clamp_min(1e-6)
        seq = interleave(chords, melody)
        log_probs, melody_log_probs = log_probs_of(policy, seq, masks)
        with torch.no_grad():
            ref_log_probs, ref_melody_log_probs = log_probs_of(reference, seq, masks)
        taken = log_probs.gather(-1, chords[..., None]).squeeze(-1)
        probs = log_probs.exp()
        kl = kl_divergence(log_probs, ref_log_probs)
        entropy = -torch.where(masks, probs * log_probs, torch.zeros_like(probs)).sum(-1)
        pg_loss = -(advantages / scale * taken)[choice].mean()
        kl_loss = kl[choice].mean()
        # The melody predictions (the live engine's imagined melody) share the weights; keep them.
        melody_kl = kl_divergence(melody_log_probs, ref_melody_log_probs).mean()
        loss = pg_loss + args.kl * kl_loss + args.melody_kl * melody_kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        step += 1
        onsets = chords >= CHORD_BASE + num_chords
        stats = {
            "fit": float(fits.sum()) / max(1, int(sounding.sum())),
            "kl": float(kl_loss.detach()), "melody_kl": float(melody_kl.detach()), "entropy": float(entropy[choice].mean().detach()),
            "changes_per_bar": float(onsets.sum()) * 16 / chords.numel(),
            "notes_per_chord": chord_size(chords, pitch_classes),
            "offbeat_share": float(offbeat.sum()) / max(1, int(onsets.sum())),
        }
        for key, value in stats.items():
            window[key] = window.get(key, 0.0) + value
        if step % args.log_every == 0:
            log({"step": step, **{k: round(v / args.log_every, 4) for k, v in window.items()},
                 "elapsed_s": round(time.time() - start, 1)})
            window.clear()
        if step % args.ckpt_every == 0:
            checkpoint()
    checkpoint()
    log({"step": step, "valid_nll": round(valid_nll(policy, "online", valid, valid_subset, 16), 4),
         "event": "end", "elapsed_s": round(time.time() - start, 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
