"""Writes the PyTorch reference fixtures that tests/model_parity.rs checks the Rust decoder against.

For each small configuration this builds a random x-transformers 2.11.23 decoder exactly the way
ReaLchords builds its online model (realjam ``core/transformers.py`` DEFAULT_KWARGS with
``cross_attend=False``), perturbs every parameter and buffer so that each one influences the
output, and writes ``tests/fixtures/parity/<cfg>/``:

* a Comper weights folder: ``model.safetensors`` (state-dict names), ``config.json``,
  ``chord_names.json``;
* ``fixture.safetensors``: ``tokens`` i64 [T], full-sequence ``logits`` f32 [T, V],
  ``step_logits`` f32 [T, V] (one token at a time through x-transformers' KV cache, as
  ``generate`` runs it), ``melody`` i64 [F] and ``greedy_chords`` i64 [F] (online generation:
  chord = argmax over the ReaLJam-valid chord tokens, melody teacher-forced).

The "bf16" configuration has every tensor rounded to bfloat16 (like an RL ``actor.pth``), so the
script can also write lossless PyTorch checkpoints of it for ``comper import``:
``tests/fixtures/parity/import/step=3.ckpt`` (Lightning layout, f32) and ``actor.pth`` (DeepSpeed
layout, bf16).

The offline configurations are random encoder-decoders built as ReaLchords builds its offline
model (``training/comper_data/model.py``: T5 relative position bias, cross-attention), with a
``fixture.safetensors`` of ``melody`` i64 [M] (encoder input ``[BOS, m…, EOS]``), ``tokens``
i64 [T] (decoder input ``[BOS, c…]``), ``logits`` [T, V], ``step_logits`` [T, V] (decoder run
token by token through x-transformers' cache) and ``greedy_chords`` (offline generation, argmax
over the single-part chord validity mask). Melodies are long enough to reach the logarithmic
position buckets. The first is also written as ReaLJam's flat ``import/offline/step=5.ckpt``.

Run from the repository root:  python training/make_parity_fixtures.py
"""

import json
import os

import torch
from safetensors.torch import save_file
from comper_data.model import OfflineEncoderDecoder, OnlineDecoder

OUT = os.path.join("tests", "fixtures", "parity")
CHORDS = ["C", "Dm", "Em", "F", "G", "Am", "Bdim", "G7"]
NUM_TOKENS = 260 + 2 * len(CHORDS)
SILENCE, BOS = 3, 1
CHORD_HOLD, CHORD_ON = 260, 260 + len(CHORDS)

CONFIGS = [
    # name, dim, depth, heads, dim_head, max_seq_len, bf16
    ("d64_h2_dh32", 64, 2, 2, 32, 96, False),
    ("bf16_d32_h2_dh24", 32, 3, 2, 24, 96, True),
]

OFFLINE_CONFIGS = [
    # name, dim, enc_depth, dec_depth, heads, dim_head, max_seq_len
    ("offline_d48_h2_dh24", 48, 2, 2, 2, 24, 80),
    ("offline_d32_h4_dh16", 32, 1, 3, 4, 16, 80),
]


def build(dim, depth, heads, dim_head, max_seq_len):
    """The training code's model (one definition for training and parity), in eval mode."""
    model = OnlineDecoder(NUM_TOKENS, dim, depth, heads, max_seq_len=max_seq_len, dim_head=dim_head)
    return model.decoder.eval()


def perturb(model, gen, bf16):
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith("inv_freq"):
                p.mul_(1 + 0.05 * noise)  # only the stored values reproduce the logits
            elif "qk_norm" in name:
                p.copy_(1 + 0.4 * noise)
            elif name.endswith("bias"):
                p.copy_(0.2 * noise)
            else:
                p.add_(0.3 * p.std() * noise)
            if bf16:
                p.copy_(p.to(torch.bfloat16).to(torch.float32))


def state_dict(model):
    # Comper's names are those of ReaLJam's DecoderTransformer, whose `.decoder` is this wrapper.
    return {f"decoder.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def melody_tokens(gen, frames):
    """A random monophonic melody as ReaLchords melody tokens (onset, holds, silences)."""
    out, prev = [], None
    for _ in range(frames):
        r = torch.rand(1, generator=gen).item()
        if prev is not None and r < 0.45:
            out.append(prev)  # hold
        elif r < 0.6:
            out.append(SILENCE)
            prev = None
        else:
            pitch = int(torch.randint(55, 80, (1,), generator=gen))
            out.append(132 + pitch)
            prev = 4 + pitch
    return out


def chord_mask(prev):
    """ReaLJam chord validity: SILENCE, any onset, and the hold of the current chord (any hold
    after SILENCE, no hold at the very start)."""
    mask = torch.zeros(NUM_TOKENS, dtype=torch.bool)
    mask[SILENCE] = True
    mask[CHORD_ON:] = True
    if prev == SILENCE:
        mask[CHORD_HOLD:CHORD_ON] = True
    elif prev is not None:
        index = prev - CHORD_ON if prev >= CHORD_ON else prev - CHORD_HOLD
        mask[CHORD_HOLD + index] = True
    return mask


def greedy_online(model, melody):
    seq, chords, prev = [BOS], [], None
    for m in melody:
        with torch.no_grad():
            logits = model(torch.tensor([seq]))[0, -1]
        masked = logits.masked_fill(~chord_mask(prev), float("-inf"))
        top2 = masked.topk(2).values
        assert top2[0] - top2[1] > 1e-3, "near tie in greedy decoding; pick another seed"
        chord = int(masked.argmax())
        chords.append(chord)
        prev = chord
        seq += [chord, m]
    return chords


def step_logits(model, tokens):
    rows, cache = [], None
    with torch.no_grad():
        for t in range(1, len(tokens) + 1):
            x = torch.tensor([tokens[:t]])
            logits, cache = model(x, return_intermediates=True, cache=cache)
            rows.append(logits[0, -1])
    return torch.stack(rows)


def greedy_offline(model, melody_ids, frames):
    """Offline generation as ReaLJam's intro runs it, greedy: chord = argmax over the valid
    chord tokens given the previous chord."""
    context = model.encode(torch.tensor([melody_ids]))
    seq, chords, prev = [BOS], [], None
    for _ in range(frames):
        with torch.no_grad():
            logits = model.decoder(torch.tensor([seq]), context=context)[0, -1]
        masked = logits.masked_fill(~chord_mask(prev), float("-inf"))
        top2 = masked.topk(2).values
        assert top2[0] - top2[1] > 1e-3, "near tie in greedy decoding; pick another seed"
        chord = int(masked.argmax())
        chords.append(chord)
        prev = chord
        seq.append(chord)
    return chords


def offline_step_logits(model, melody_ids, tokens):
    """The decoder run one token at a time through x-transformers' KV cache (the cross-attention
    keys/values are cached on the first call)."""
    context = model.encode(torch.tensor([melody_ids]))
    rows, cache = [], None
    with torch.no_grad():
        for t in range(1, len(tokens) + 1):
            logits, cache = model.decoder.decoder(torch.tensor([tokens[:t]]), context=context,
                                                  cache=cache, return_intermediates=True)
            rows.append(logits[0, -1])
    return torch.stack(rows)


def write_offline(seed, name, dim, enc_depth, dec_depth, heads, dim_head, max_seq_len):
    gen = torch.Generator().manual_seed(2000 + seed)
    torch.manual_seed(100 + seed)
    model = OfflineEncoderDecoder(NUM_TOKENS, dim, enc_depth, dec_depth, heads, max_seq_len=max_seq_len,
                                  dim_head=dim_head).eval()
    perturb(model, gen, False)
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(folder, "model.safetensors"))
    config = dict(name=name, kind="offline", dim=dim, enc_depth=enc_depth, depth=dec_depth, heads=heads,
                  dim_head=dim_head, num_tokens=NUM_TOKENS, max_seq_len=max_seq_len)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(folder, "chord_names.json"), "w") as f:
        json.dump(CHORDS, f)
    frames = 44
    melody_ids = [BOS] + melody_tokens(gen, frames) + [2]
    tokens = [BOS] + torch.randint(CHORD_HOLD, NUM_TOKENS, (frames - 1,), generator=gen).tolist()
    with torch.no_grad():
        logits = model(torch.tensor([melody_ids]), torch.tensor([tokens]))[0]
    fixture = {
        "melody": torch.tensor(melody_ids, dtype=torch.int64),
        "tokens": torch.tensor(tokens, dtype=torch.int64),
        "logits": logits.contiguous(),
        "step_logits": offline_step_logits(model, melody_ids, tokens).contiguous(),
        "greedy_chords": torch.tensor(greedy_offline(model, melody_ids, frames), dtype=torch.int64),
    }
    save_file(fixture, os.path.join(folder, "fixture.safetensors"))
    return sd


def main():
    torch.manual_seed(0)
    written = {}
    for seed, (name, dim, depth, heads, dim_head, max_seq_len, bf16) in enumerate(CONFIGS):
        gen = torch.Generator().manual_seed(1000 + seed)
        torch.manual_seed(seed)
        model = build(dim, depth, heads, dim_head, max_seq_len)
        perturb(model, gen, bf16)
        folder = os.path.join(OUT, name)
        os.makedirs(folder, exist_ok=True)
        sd = state_dict(model)
        save_file(sd, os.path.join(folder, "model.safetensors"))
        config = dict(name=name, dim=dim, depth=depth, heads=heads, dim_head=dim_head,
                      num_tokens=NUM_TOKENS, max_seq_len=max_seq_len)
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        with open(os.path.join(folder, "chord_names.json"), "w") as f:
            json.dump(CHORDS, f)

        tokens = [BOS] + torch.randint(3, NUM_TOKENS, (47,), generator=gen).tolist()
        with torch.no_grad():
            logits = model(torch.tensor([tokens]))[0]
        melody = melody_tokens(gen, 24)
        fixture = {
            "tokens": torch.tensor(tokens, dtype=torch.int64),
            "logits": logits.contiguous(),
            "step_logits": step_logits(model, tokens).contiguous(),
            "melody": torch.tensor(melody, dtype=torch.int64),
            "greedy_chords": torch.tensor(greedy_online(model, melody), dtype=torch.int64),
        }
        save_file(fixture, os.path.join(folder, "fixture.safetensors"))
        written[name] = sd

    # Official-checkpoint layouts for `comper import`, from the bf16-exact configuration.
    sd = written["bf16_d32_h2_dh24"]
    folder = os.path.join(OUT, "import")
    os.makedirs(folder, exist_ok=True)
    lightning = {
        "epoch": 0,
        "global_step": 3,
        "pytorch-lightning_version": "2.5.0",
        "state_dict": {f"model._orig_mod.{k}": v for k, v in sd.items()},
        "optimizer_states": [{"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 1e-4}]}],
    }
    torch.save(lightning, os.path.join(folder, "step=3.ckpt"))
    actor = {f"model.module._orig_mod.{k}": v.to(torch.bfloat16) for k, v in sd.items()}
    torch.save(actor, os.path.join(folder, "actor.pth"))
    with open(os.path.join(folder, "args.yml"), "w") as f:
        f.write("DecoderTransformer.dim: 32\nDecoderTransformer.depth: 3\n"
                "DecoderTransformer.heads: 2\nDecoderTransformer.max_seq_len: 96\n")

    offline = {}
    for seed, config in enumerate(OFFLINE_CONFIGS):
        offline[config[0]] = write_offline(seed, *config)
    # ReaLJam's generative checkpoint: a flat state dict with every "model." removed, + args.yml.
    folder = os.path.join(OUT, "import", "offline")
    os.makedirs(folder, exist_ok=True)
    torch.save(offline["offline_d48_h2_dh24"], os.path.join(folder, "step=5.ckpt"))
    with open(os.path.join(folder, "args.yml"), "w") as f:
        f.write("EncoderDecoderTransformer.enc_dim: 48\nEncoderDecoderTransformer.enc_depth: 2\n"
                "EncoderDecoderTransformer.dec_depth: 2\nEncoderDecoderTransformer.dec_max_seq_len: 80\n")


if __name__ == "__main__":
    main()
