"""Export a training checkpoint as a Comper weights folder.

    python training/export.py --run /work/runs/online-256 --name online-256 --out weights

Writes OUT/NAME/model.safetensors (the state dict with its official key names, f32 or, with
--dtype float16, f16 except the online model's rotary frequencies, which stay f32; online
`decoder.…` including `decoder.attn_layers.rotary_pos_emb.inv_freq`; offline `encoder.…` and
`decoder.decoder.…`), config.json (with `kind` "online" or "offline") and chord_names.json
(the vocabulary in id order, copied from the run folder).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comper_data.model import build_model  # noqa: E402

INV_FREQ = "decoder.attn_layers.rotary_pos_emb.inv_freq"
ARCHITECTURES = {
    "online": "ReaLchords online decoder (x-transformers 2.11.23 TransformerWrapper+Decoder)",
    "offline": "ReaLchords offline encoder-decoder (x-transformers 2.11.23 Encoder + cross-attending Decoder, T5 relative position bias)",
}


def last_valid_nll(log_path: Path) -> float | None:
    """The most recent validation NLL in a run's log.jsonl, if any."""
    if not log_path.exists():
        return None
    value = None
    for line in log_path.read_text().splitlines():
        entry = json.loads(line)
        value = entry.get("valid_nll_full", entry.get("valid_nll", value))
    return value


def export(run: Path, name: str, out: Path, dtype: str = "float32", checkpoint: str = "ckpt.pt") -> Path:
    """Write the weights folder and return its path."""
    state = torch.load(run / checkpoint, map_location="cpu", weights_only=False)
    config = state["config"]
    names = json.loads((run / "chord_names.json").read_text())
    if config["num_tokens"] != 260 + 2 * len(names):
        raise SystemExit(f"num_tokens {config['num_tokens']} does not match {len(names)} chord names")

    # Rebuild the model so the exported names are exactly what x-transformers produces.
    model = build_model(config)
    model.load_state_dict(state["model"])
    store = getattr(torch, dtype)
    # The rotary frequencies stay f32: rounded to 16 bits they would turn late positions' angles
    # by a sizeable fraction of a radian (Comper keeps the matrices 16-bit and reads these as stored).
    tensors = {k: v.detach().to(torch.float32 if k == INV_FREQ else store).contiguous()
               for k, v in model.state_dict().items()}
    kind = config.get("model", "online")
    if kind == "online" and INV_FREQ not in tensors:
        raise SystemExit(f"{INV_FREQ} missing from the state dict")

    from safetensors.torch import save_file

    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"))
    meta = {
        "name": name,
        "kind": kind,
        "dim": config["dim"],
        **({"enc_depth": config["enc_depth"]} if kind == "offline" else {}),
        "depth": config["depth"],
        "heads": config["heads"],
        "dim_head": config["dim_head"],
        "num_tokens": config["num_tokens"],
        "max_seq_len": config["max_seq_len"],
        "num_chords": len(names),
        "train_steps": state["step"],
        "train_seconds": round(state["elapsed"]),
        # best.pt (train.py --keep-best) carries its own (subset) validation NLL
        "valid_nll": round(state["valid_nll"], 4) if "valid_nll" in state else last_valid_nll(run / "log.jsonl"),
        "architecture": ARCHITECTURES[kind],
        "training_data": "POP909 (MIT), Nottingham (GPL-3), OpenEWLD (MIT); see training/DATA_REPORT.md",
    }
    (folder / "config.json").write_text(json.dumps(meta, indent=1) + "\n")
    (folder / "chord_names.json").write_text(json.dumps(names, indent=1, ensure_ascii=False) + "\n")
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="run folder with ckpt.pt and chord_names.json")
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", type=Path, default=Path("weights"))
    ap.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                    help="stored precision (Comper computes in f32 either way; float16 halves the file)")
    ap.add_argument("--checkpoint", default="ckpt.pt", help="checkpoint file in --run (best.pt: train.py --keep-best)")
    args = ap.parse_args(argv)
    folder = export(args.run, args.name, args.out, args.dtype, args.checkpoint)
    print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
