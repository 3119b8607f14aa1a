"""Train Comper's chord models on the CPU (or a GPU, --device cuda): the online decoder
(ReaLchords decoder-only architecture) or, with --model offline, the offline encoder-decoder.

    python training/train.py --data training/data --run /work/runs/online-256 \
        --dim 256 --depth 4 --heads 4 --threads 1 --minutes 75
    python training/train.py --model offline --data training/data --run /work/runs/offline-256 \
        --dim 256 --depth 4 --heads 4 --threads 2 --minutes 100

Online loss: cross-entropy on every target position except PAD (chords, melody and EOS, as
ReaLchords), with the key mask ReaLchords uses (PAD and the EOS-target position masked).
Offline loss: cross-entropy on the decoder's chord targets and EOS (ReaLchords'
LitEncoderDecoder), the melody encoder seeing the whole window; --truncate-prob of the
windows are cut to a random shorter length first (ReaLchords' random_truncate).
AdamW, linear warmup then cosine decay to 10 % (over --max-steps, or over the --minutes
budget by wall-clock time), gradient clipping. The run folder gets
ckpt.pt (every --ckpt-every steps and on exit, including Ctrl-C/SIGTERM), log.jsonl
(train loss, valid NLL, lr, time) and a copy of chord_names.json; --resume continues it.
On a GPU (`--device cuda`) the training steps run under bf16 autocast (`--amp none` keeps f32),
the optimizer is fused AdamW and the loop waits for the device only to log; validation runs in
f32 on every device.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comper_data.batches import TokenSet, crop, num_chords_from, offline_pair, pad_batch  # noqa: E402
from comper_data.model import DIM_HEAD, MAX_SEQ_LEN, OFFLINE_MAX_SEQ_LEN, build_model  # noqa: E402
from comper_data.tokens import EOS, PAD, num_tokens  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parent / "data")
    ap.add_argument("--run", type=Path, required=True, help="run folder for checkpoints and logs")
    ap.add_argument("--resume", action="store_true", help="continue from RUN/ckpt.pt")
    ap.add_argument("--model", choices=("online", "offline"), default="online")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--depth", type=int, default=4, help="decoder blocks (and encoder blocks, offline, unless --enc-depth)")
    ap.add_argument("--enc-depth", type=int, default=0, help="offline encoder blocks (0 = --depth)")
    ap.add_argument("--truncate-prob", type=float, default=0.2, help="offline: share of windows cut to a random length")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--crop-frames", type=int, default=128, help="train on bar-aligned windows of this many frames (256 = whole examples)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--max-steps", type=int, default=0, help="schedule length in steps; 0 = the cosine follows wall-clock time over --minutes")
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of this invocation")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="torch device to train on (cpu, cuda, cuda:1, ...)")
    ap.add_argument("--amp", choices=("bf16", "none"), default="bf16",
                    help="on a GPU, run the training steps under bf16 autocast (the CPU always trains in f32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--valid-every", type=int, default=250)
    ap.add_argument("--valid-examples", type=int, default=128, help="fixed subset for periodic validation (0 = all)")
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--keep-best", action="store_true",
                    help="also keep RUN/best.pt (weights only, the format export.py reads): the weights with the lowest "
                         "valid NLL on the fixed subset, checked every --valid-every steps and at the end")
    ap.add_argument("--init-weights", type=Path, help="start from this exported weights folder (model.safetensors) instead of random weights")
    ap.add_argument("--extra", type=Path, nargs="+", help="more training examples (.npz files, e.g. `comper best-of` output) to draw from")
    ap.add_argument("--extra-share", type=float, default=0.5, help="share of each batch drawn from --extra")
    return ap.parse_args(argv)


def lr_at(step: int, args, max_steps: int, time_progress: float) -> float:
    """Linear warmup to --lr, then cosine decay to 10 % of it: over `max_steps` steps when
    that is set, else over the time budget (`time_progress` = elapsed / budget), so a
    time-limited run ends its schedule on time whatever the machine's load."""
    warmup = max(1, min(args.warmup, max_steps // 10)) if max_steps else args.warmup
    if step < warmup:
        return args.lr * (step + 1) / warmup
    if max_steps:
        progress = (step - warmup) / max(1, max_steps - warmup)
    else:
        progress = time_progress
    progress = min(1.0, max(0.0, progress))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def make_batch(kind: str, seqs: list[np.ndarray], rng=None, truncate_prob: float = 0.0):
    """Padded model input for online sequences: one array (online) or the encoder and
    decoder arrays (offline, see `offline_pair`)."""
    if kind == "online":
        return torch.from_numpy(pad_batch(seqs))
    pairs = [offline_pair(s, rng, truncate_prob) for s in seqs]
    return (torch.from_numpy(pad_batch([m for m, _ in pairs])), torch.from_numpy(pad_batch([c for _, c in pairs])))


def to_device(batch, device: torch.device):
    """A batch from `make_batch` on `device` (copied from pinned memory without waiting)."""
    if device.type == "cpu":
        return batch

    def move(t: torch.Tensor) -> torch.Tensor:
        return t.pin_memory().to(device, non_blocking=True)

    return tuple(map(move, batch)) if isinstance(batch, tuple) else move(batch)


def loss_on(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean next-token cross-entropy over non-PAD targets, and how many there were (a tensor,
    so a training step does not wait for the device)."""
    if isinstance(batch, tuple):
        melody, chords = batch
        inputs, targets = chords[:, :-1], chords[:, 1:]
        logits = model(melody, inputs, melody_mask=melody != PAD, chord_mask=inputs != PAD)
    else:
        inputs, targets = batch[:, :-1], batch[:, 1:]
        mask = (targets != PAD) & (targets != EOS)
        logits = model(inputs, mask=mask)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD)
    return loss, (targets != PAD).sum()


@torch.no_grad()
def valid_nll(model, kind: str, data: TokenSet, indices: list[int], batch_size: int) -> float:
    """Token-weighted mean NLL (nats) over the given validation examples (whole sequences);
    None when there are none."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    order = sorted(indices, key=lambda i: data.offsets[i + 1] - data.offsets[i])
    for k in range(0, len(order), batch_size):
        batch = to_device(make_batch(kind, [data.sequence(i) for i in order[k : k + batch_size]]), device)
        loss, n = loss_on(model, batch)
        total += float(loss) * int(n)
        count += int(n)
    model.train()
    return total / count if count else None


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically so an interrupted save never leaves a broken checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already fixed in this process (e.g. a second run under pytest)
        pass
    args.run.mkdir(parents=True, exist_ok=True)
    ckpt_path = args.run / "ckpt.pt"
    log_path = args.run / "log.jsonl"

    names_path = args.data / "chord_names.json"
    num_chords = num_chords_from(names_path)
    shutil.copyfile(names_path, args.run / "chord_names.json")
    train, valid = TokenSet(args.data / "train.npz"), TokenSet(args.data / "valid.npz")

    config = {
        "dim": args.dim, "depth": args.depth, "heads": args.heads, "dim_head": DIM_HEAD,
        "num_tokens": num_tokens(num_chords), "max_seq_len": MAX_SEQ_LEN, "dropout": args.dropout,
    }
    if args.model == "offline":
        config.update(model="offline", enc_depth=args.enc_depth or args.depth, max_seq_len=OFFLINE_MAX_SEQ_LEN)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    amp = args.amp == "bf16" and device.type == "cuda"
    model = build_model(config)
    if args.init_weights and not args.resume:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(args.init_weights / "model.safetensors")))
        print(f"initialised from {args.init_weights}", flush=True)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=args.weight_decay,
                                  fused=device.type == "cuda")
    extra = TokenSet(*args.extra) if args.extra else None
    extra_count = round(args.batch_size * args.extra_share) if extra else 0
    rng = np.random.default_rng(args.seed)
    step, max_steps, elapsed_before, schedule_s = 0, args.max_steps, 0.0, args.minutes * 60
    if args.resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if state["config"] != config:
            raise SystemExit(f"checkpoint config {state['config']} differs from the requested {config}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        step, max_steps, elapsed_before = state["step"], state["max_steps"], state["elapsed"]
        schedule_s = state["schedule_s"]
        if args.max_steps:
            max_steps = args.max_steps
        print(f"resumed at step {step} (schedule: {max_steps or f'{schedule_s:.0f} s'})", flush=True)

    valid_rng = np.random.default_rng(12345)
    valid_subset = list(range(len(valid)))
    if args.valid_examples and args.valid_examples < len(valid):
        valid_subset = sorted(valid_rng.choice(len(valid), args.valid_examples, replace=False).tolist())

    best_path = args.run / "best.pt"
    best = {"nll": float("inf")}
    if args.keep_best and args.resume and best_path.exists():
        best["nll"] = torch.load(best_path, map_location="cpu", weights_only=False)["valid_nll"]

    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters, {config}, on {device}"
          f"{' (bf16 autocast)' if amp else ''}", flush=True)
    print(f"train examples {len(train)}, valid examples {len(valid)}, chords {num_chords}", flush=True)
    if extra:
        print(f"extra examples {len(extra)} from {', '.join(map(str, args.extra))}, {extra_count} of every {args.batch_size} in a batch", flush=True)

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))

    def checkpoint(elapsed: float) -> None:
        save_checkpoint(ckpt_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(), "step": step, "max_steps": max_steps, "elapsed": elapsed, "schedule_s": schedule_s,
            "config": config, "args": {k: str(v) for k, v in vars(args).items()},
        })

    def log(entry: dict) -> None:
        print(json.dumps(entry), flush=True)
        with open(log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def validate(elapsed: float) -> None:
        nll = valid_nll(model, args.model, valid, valid_subset, args.batch_size)
        entry = {"step": step, "valid_nll": rounded(nll)}
        if args.keep_best and nll is not None and nll < best["nll"]:
            best["nll"] = nll
            save_checkpoint(best_path, {"model": model.state_dict(), "config": config, "step": step,
                                        "elapsed": elapsed, "valid_nll": nll})
            entry["best"] = True
        log(entry)

    budget = args.minutes * 60
    start = time.time()
    window_loss, window_n = torch.zeros((), device=device), 0
    model.train()
    while not stop["now"]:
        now = time.time() - start
        if now >= budget:
            break
        if max_steps and step >= max_steps:
            break
        lr = lr_at(step, args, max_steps, (elapsed_before + now) / schedule_s)
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = rng.integers(len(train), size=args.batch_size - extra_count)
        seqs = [crop(train.sequence(i), train.bar_frames(i), args.crop_frames, num_chords, rng) for i in idx]
        if extra_count:
            idx = rng.integers(len(extra), size=extra_count)
            seqs += [crop(extra.sequence(i), extra.bar_frames(i), args.crop_frames, num_chords, rng) for i in idx]
        batch = to_device(make_batch(args.model, seqs, rng, args.truncate_prob), device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss, _ = loss_on(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        step += 1
        window_loss += loss.detach()
        window_n += 1
        if step % args.log_every == 0:
            log({"step": step, "train_loss": round(window_loss.item() / window_n, 4), "lr": round(lr, 6),
                 "elapsed_s": round(elapsed_before + time.time() - start, 1)})
            window_loss, window_n = torch.zeros((), device=device), 0
        if step % args.valid_every == 0:
            validate(elapsed_before + time.time() - start)
        if step % args.ckpt_every == 0:
            checkpoint(elapsed_before + time.time() - start)

    checkpoint(elapsed_before + time.time() - start)
    if args.keep_best and step % args.valid_every:
        validate(elapsed_before + time.time() - start)
    log({"step": step, "valid_nll_full": rounded(valid_nll(model, args.model, valid, list(range(len(valid))), args.batch_size)),
         "event": "end", "elapsed_s": round(elapsed_before + time.time() - start, 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
