"""Runs an `aoetron-ckpt export` knowing only docs/checkpoint.md ("Export").

    /usr/bin/python3 read_export_from_docs.py --export DIR --expect EXPECT.json --docs checkpoint.md

Written from the documentation alone, on purpose: it shares no code with aoetron or with the
PyTorch oracle of tests/parity, so a fact the export does not carry (config.json, the tensor
layout, the conventions) makes it fail. It reads config.json and the safetensors files (parsed
by hand: u64 header length, JSON header, data), checks that config.json has exactly the keys the
docs list and that the tensors are exactly config.json's tensor_layout, runs its own forward pass
(dense, router MoE, AoE; shared experts, sigmoid router, expert bias, granularity through the
resolved sizes) on the batch in EXPECT.json (written by export_fixture) and compares the loss and
the aux loss with the trainer's. Exit 0 pass, 1 fail, 77 no torch.
"""

import argparse
import json
import math
import os
import re
import struct
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError as error:
    print(f"SKIP: torch is not importable by {sys.executable}: {error}")
    sys.exit(77)

# Both sides compute in f32 from the same f32 weights, in different orders: each dot product of
# length k ≤ 3·d (96 here) carries a relative rounding error of at most ~k·2^-24 ≈ 6e-6 in the
# worst case and ~sqrt(k)·2^-24 ≈ 6e-7 typically; through 2 layers of residual sums, the norms,
# the softmaxes and a mean of 32 cross-entropies (≈ log 64 ≈ 4, no cancellation) these stay at
# the typical size, ~1e-6 (measured: 2e-8 to 1e-7). 1e-5 is ten times that and still hundreds of
# times smaller than what a wrong convention changes (measured on moe_options: interleaved
# instead of rotate-half rotary pairs 1.5e-2, w_qkv's last two axes misread 4.8e-2, the expert
# bias ignored 3.5e-3). The margin assumes routing is decisive (no near-ties that rounding could
# flip), which the fixture's init_std 0.2 gives.
REL_TOLERANCE = 1e-5
DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F64": torch.float64,
          "I32": torch.int32, "I64": torch.int64}


def documented_keys(docs_path):
    """The keys in the table of docs/checkpoint.md's "config.json, key by key" section."""
    with open(docs_path) as f:
        text = f.read()
    section = text.split("### config.json, key by key", 1)[1]
    section = re.split(r"\n#+ ", section, maxsplit=1)[0]
    return set(re.findall(r"^\| `([a-z_0-9]+)` \|", section, flags=re.MULTILINE))


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"]).to(torch.float32)
    return out


def load_export(directory):
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(directory, "model.safetensors.index.json")) as f:
        index = json.load(f)
    weights = {}
    for file in sorted(set(index["weight_map"].values())):
        weights.update(read_safetensors(os.path.join(directory, file)))
    return config, weights


def expand_layout(config):
    """{name: shape} from config.json's tensor_layout patterns."""
    shapes = {}
    for pattern, entry in config["tensor_layout"].items():
        layers = range(config["n_layers"]) if "{l}" in pattern else [None]
        experts = range(config["n_routed_experts"]) if "{e}" in pattern else [None]
        for l in layers:
            for e in experts:
                name = pattern.replace("{l}", str(l)).replace("{e}", str(e))
                shapes[name] = tuple(entry["shape"])
        assert len(entry["axes"]) == len(entry["shape"]), pattern
    return shapes


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(v, theta):
    """Rotate-half pairing: (v[i], v[i + hd/2]) rotated by p·θ_i, θ_i = theta^(-2i/hd)."""
    _, seq, _, hd = v.shape  # [B, T, H, hd]
    i = torch.arange(hd // 2, dtype=torch.float64)
    angle = torch.arange(seq, dtype=torch.float64)[:, None] * theta ** (-2.0 * i / hd)
    cos = angle.cos().to(v.dtype)[None, :, None, :]
    sin = angle.sin().to(v.dtype)[None, :, None, :]
    a, b = v[..., :hd // 2], v[..., hd // 2:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def attention(x, w, config, prefix):
    batch, seq, d = x.shape
    heads, hd = config["n_heads"], config["head_dim"]
    qkv = (x @ w[prefix + "w_qkv"].reshape(d, 3 * d)).view(batch, seq, 3, heads, hd)
    q, k, v = qkv.unbind(2)
    q, k = rope(q, config["rope_theta"]), rope(k, config["rope_theta"])
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, hd]
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    causal = torch.ones(seq, seq, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, seq, d)
    return out @ w[prefix + "w_o"]


def swiglu(gate_in, x, w_gate, w_p, w_o):
    return (F.silu(gate_in @ w_gate) * (x @ w_p)) @ w_o


def top_k_lower_index_wins(scores, k):
    """The k largest per row; among equal scores the lower index first (a stable sort)."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    return order[:, :k]


def routed_ffn(x, w, config, prefix):
    """y [N, d] and this layer's aux loss + z-loss."""
    n, k = config["n_routed_experts"], config["routed_top_k"]
    aoe = config["ffn"] == "aoe"
    sigmoid = config["ffn"] == "moe" and config["router_score"] == "sigmoid"
    if aoe:
        r = config["d_low"]
        c = x @ w[prefix + "w_down"]
        logits = c.view(-1, n, r).norm(dim=-1)
    else:
        logits = x @ w[prefix + "router.weight"]
    s = logits.sigmoid() if sigmoid else logits
    bias = w[prefix + "expert_bias"] if config["has_expert_bias"] else torch.zeros(n)
    chosen = top_k_lower_index_wins(s + bias, k)  # the bias moves the selection only
    v = s.gather(1, chosen)
    if aoe and config["aoe_gate"] == "release":
        gates = s.softmax(1).gather(1, chosen)
    elif sigmoid:
        gates = v / v.sum(1, keepdim=True)
    else:
        gates = v.softmax(1)
    y = torch.zeros_like(x)
    for e in range(n):
        rows, slots = (chosen == e).nonzero(as_tuple=True)
        if rows.numel() == 0:
            continue
        p = f"{prefix}experts.{e}."
        xe = x[rows]
        if aoe:
            gate_in, w_gate = c[rows, e * r:(e + 1) * r], w[p + "w_up"]
        else:
            gate_in, w_gate = xe, w[p + "w_g"]
        out = swiglu(gate_in, xe, w_gate, w[p + "w_p"], w[p + "w_o"])
        y.index_add_(0, rows, gates[rows, slots, None] * out)
    if config["shared_width"] > 0:
        y = y + swiglu(x, x, w[prefix + "shared.w_g"], w[prefix + "shared.w_p"],
                       w[prefix + "shared.w_o"])
    tokens = x.shape[0]
    f = torch.bincount(chosen.flatten(), minlength=n).to(x.dtype) / tokens  # Σ f = K
    assert abs(f.sum().item() - config["aux_loss_load_fraction_sum"]) < 1e-6
    q = s / s.sum(1, keepdim=True) if sigmoid else logits.softmax(1)
    aux = config["aux_loss_coeff"] * n * (f * q.mean(0)).sum()
    z = config["z_loss_coeff"] * logits.logsumexp(1).pow(2).mean()
    return y, aux + z


def forward(w, config, tokens, targets):
    eps = config["norm_eps"]
    h = w["embedding.weight"][tokens]  # [B, T, d]
    batch, seq, d = h.shape
    aux = torch.zeros(())
    for l in range(config["n_layers"]):
        p = f"layers.{l}."
        h = h + attention(rmsnorm(h, w[p + "attn_norm.weight"], eps), w, config, p + "attn.")
        x = rmsnorm(h, w[p + "ffn_norm.weight"], eps).reshape(batch * seq, d)
        if config["ffn"] == "dense":
            y = swiglu(x, x, w[p + "ffn.w_g"], w[p + "ffn.w_p"], w[p + "ffn.w_o"])
        else:
            y, layer_aux = routed_ffn(x, w, config, p + "ffn.")
            aux = aux + layer_aux
        h = h + y.view(batch, seq, d)
    logits = rmsnorm(h, w["final_norm.weight"], eps) @ w["lm_head.weight"]
    flat_targets = targets.reshape(-1)
    kept = flat_targets >= 0
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1])[kept], flat_targets[kept],
                             reduction="none")
    return losses.mean(), aux


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--export", required=True)
    parser.add_argument("--expect", required=True)
    parser.add_argument("--docs", required=True)
    args = parser.parse_args()

    config, weights = load_export(args.export)
    documented = documented_keys(args.docs)
    assert len(documented) > 40, f"found only {len(documented)} keys in {args.docs}"
    missing, undocumented = sorted(documented - set(config)), sorted(set(config) - documented)
    assert not missing and not undocumented, \
        f"config.json lacks documented keys {missing}, has undocumented keys {undocumented}"
    assert config["rope_pairing"] == "rotate_half" and config["tie_word_embeddings"] is False
    assert config["weight_layout"].startswith("[in, out]"), config["weight_layout"]
    shapes = expand_layout(config)
    assert set(shapes) == set(weights), \
        f"tensor_layout vs files: missing {sorted(set(shapes) - set(weights))}, " \
        f"unexpected {sorted(set(weights) - set(shapes))}"
    for name, shape in shapes.items():
        assert tuple(weights[name].shape) == shape, (name, weights[name].shape, shape)
    print(f"config.json: {len(config)} keys as documented; {len(weights)} tensors as its "
          f"tensor_layout; ffn {config['ffn']}, {config['n_routed_experts']} routed experts, "
          f"K {config['routed_top_k']}, shared width {config['shared_width']}, "
          f"expert bias {config['has_expert_bias']}")

    with open(args.expect) as f:
        expect = json.load(f)
    tokens = torch.tensor(expect["tokens"], dtype=torch.long)
    targets = torch.tensor(expect["targets"], dtype=torch.long)
    with torch.no_grad():
        loss, aux = forward(weights, config, tokens, targets)
    ok = True
    for label, theirs, ours in (("loss", expect["loss"], loss.item()),
                                ("aux_loss", expect["aux_loss"], aux.item())):
        if theirs == 0.0:
            good = ours == 0.0
            rel = abs(ours)
        else:
            rel = abs(ours - theirs) / abs(theirs)
            good = rel <= REL_TOLERANCE
        ok = ok and good
        print(f"{label:9s} trainer {theirs:.9f}  from docs {ours:.9f}  rel {rel:.2e} "
              f"{'ok' if good else 'FAIL'}")
    if config["ffn"] != "dense":
        assert expect["aux_loss"] > 0, "aux loss is zero: the check would not see the routing"
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
