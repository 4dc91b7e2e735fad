"""Loads an `aoetron-ckpt export` in PyTorch and checks it against aoetron's own forward pass.

    /usr/bin/python3 check_export.py --export DIR --bundle FIXTURE.aoetb

The safetensors files are parsed here by hand (json + torch.frombuffer) — the format is small,
and this documents it (docs/checkpoint.md):
    u64 little-endian N | N bytes of JSON header | data
    header: {"__metadata__": {...}, "<name>": {"dtype": "F32", "shape": [...],
             "data_offsets": [begin, end]}, ...}   offsets relative to the data section
and model.safetensors.index.json maps every tensor name to its file.

Checks: the index and the files agree (every tensor in exactly the file the index names, byte
ranges contiguous, total_size right); the names are exactly the model's parameters
(reference_model.parameter_shapes: every expert of every layer, no optimizer state) with their
shapes; and the PyTorch reference model (tests/parity/reference_model.py) computes, from the
exported weights, the cross-entropy and aux loss that GptModel::Forward computed (recorded in
the fixture bundle) to f32 rounding (relative 1e-5). Exit 0 pass, 1 fail, 77 no torch.
"""

import argparse
import json
import os
import struct
import sys

try:
    import torch
except ImportError as error:
    print(f"SKIP: torch is not importable by {sys.executable}: {error}")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "parity"))
import reference_model as ref  # noqa: E402
from check_parity import config_from_bundle  # noqa: E402
from tensor_bundle import read_bundle  # noqa: E402

DTYPES = {"F32": torch.float32, "F64": torch.float64, "BF16": torch.bfloat16,
          "I32": torch.int32, "I64": torch.int64}
REL_TOLERANCE = 1e-5


def read_safetensors(path):
    """{name: tensor} of one safetensors file, and its metadata."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_size])
    data = blob[8 + header_size:]
    metadata = header.pop("__metadata__", {})
    tensors, spans = {}, []
    for name, info in header.items():
        begin, end = info["data_offsets"]
        spans.append((begin, end))
        dtype = DTYPES[info["dtype"]]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype) if end > begin else \
            torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(info["shape"])
    spans.sort()
    position = 0
    for begin, end in spans:  # contiguous, no holes, nothing after
        assert begin == position, f"{path}: hole or overlap at byte {begin} (expected {position})"
        position = end
    assert position == len(data), f"{path}: {len(data) - position} trailing bytes"
    return tensors, metadata


def load_export(directory):
    """{name: tensor} of a whole export (every file the index names), checked against the index."""
    with open(os.path.join(directory, "model.safetensors.index.json")) as f:
        index = json.load(f)
    weight_map = index["weight_map"]
    files = sorted(set(weight_map.values()))
    tensors, total = {}, 0
    for name in files:
        loaded, metadata = read_safetensors(os.path.join(directory, name))
        assert metadata.get("format") == "pt", metadata
        for key, t in loaded.items():
            assert key not in tensors, f"{key} in two files"
            assert weight_map.get(key) == name, f"{key} is in {name}, the index says {weight_map.get(key)}"
            tensors[key] = t
            total += t.numel() * t.element_size()
    assert set(tensors) == set(weight_map), "index and files name different tensors"
    assert index["metadata"]["total_size"] == total, (index["metadata"], total)
    return tensors, files, total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--export", required=True)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--min_files", type=int, default=2)
    # An `export --dtype=bf16` of the same checkpoint: every tensor must be the f32 export's,
    # rounded to nearest even (torch's f32 → bf16 conversion), with the same names and shapes.
    parser.add_argument("--bf16_export", default="")
    args = parser.parse_args()

    tensors, files, total = load_export(args.export)
    if args.bf16_export:
        narrow, _, narrow_total = load_export(args.bf16_export)
        assert set(narrow) == set(tensors), "the bf16 export names other tensors"
        assert narrow_total * 2 == total, (narrow_total, total)
        for name, t in tensors.items():
            assert narrow[name].dtype == torch.bfloat16, (name, narrow[name].dtype)
            assert torch.equal(narrow[name].view(torch.int16), t.to(torch.bfloat16).view(torch.int16)), \
                f"{name}: the bf16 export is not the f32 weights rounded to nearest even"
        print(f"bf16 export: {len(narrow)} tensors, each the f32 export rounded to nearest even")
    assert len(files) >= args.min_files, f"expected a sharded export, got {len(files)} file(s)"

    b = read_bundle(args.bundle)
    cfg = config_from_bundle(b)
    shapes = ref.parameter_shapes(cfg)
    missing = sorted(set(shapes) - set(tensors))
    extra = sorted(set(tensors) - set(shapes))
    assert not missing and not extra, f"names differ: missing {missing}, unexpected {extra}"
    for name, shape in shapes.items():
        assert tuple(tensors[name].shape) == tuple(shape), (name, tensors[name].shape, shape)
    experts = [n for n in tensors if ".experts." in n]
    print(f"{len(tensors)} tensors in {len(files)} files ({total} bytes), "
          f"{len(experts)} expert tensors")

    params = ref.params_from_dict(tensors, cfg, torch.float32)
    tokens = torch.as_tensor(b["tokens"]).long()
    targets = torch.as_tensor(b["targets"]).long()
    with torch.no_grad():
        _, ce, aux, records = ref.forward(params, tokens, targets, cfg)
        aux = aux + ref.z_loss_total(records)  # the trainer's aux_loss: balance + z-losses
    ok = True
    for label, ours, theirs in (("loss", float(b["loss"]), ce.item()),
                                ("aux_loss", float(b["aux_loss"]), aux.item())):
        rel = abs(ours - theirs) / max(abs(theirs), 1e-30)
        good = rel <= REL_TOLERANCE
        ok = ok and good
        print(f"{label:9s} aoetron {ours:.9f}  pytorch(export) {theirs:.9f}  rel {rel:.2e} "
              f"{'ok' if good else 'FAIL'}")
    if cfg.ffn != "dense":
        assert float(b["aux_loss"]) > 0, "aux loss is zero: the check would not see expert weights"
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
