"""An independent PyTorch oracle for aoetron's GptModel.

Written from docs (design/AOE.md and the contracts in models/gpt_model.h, models/model_config.h,
core/ops/{rope,attention,rmsnorm}.h, core/optim/adamw.h), never from the C++ model code, so that
agreement between the two means something. Plain on purpose: experts are loops over a mask,
attention is matmul + masked softmax, backward is autograd. f32 and f64 both work (the dtype of
the parameters decides).

The model (y = x · W, W stored [in, out]):
    x = embedding[tokens]
    L × { x = x + Attention(RMSNorm(x));  x = x + FFN(RMSNorm(x)) }
    logits = RMSNorm(x) · W_lm
    loss = mean_t CE(logits_t, target_t) + Σ_layers L_aux
FFN is dense SwiGLU, router MoE (top-K of x·W_r, softmax over the K selected logits) or AoE
(top-K of the L2 norms of each expert's slice of C = x·Ŵ_down, softmax over the K selected norms;
the "release" variant takes the softmax over all n norms and keeps the K selected weights as
they are). L_aux = α·n·Σ_i f_i·P_i over the micro-batch's B·T tokens, f_i = fraction of tokens
that selected i (Σ f_i = K), P_i = mean softmax over all n scores.

Used by tests/parity/check_parity.py (parity with the C++ dump) and scripts/pytorch_baseline.py
(the eager speed baseline).
"""

import dataclasses
import functools
import math

import torch
import torch.nn.functional as F

FFN_KINDS = ("dense", "moe", "aoe")
AOE_GATES = ("paper", "release")


@dataclasses.dataclass
class Config:
    """Mirrors models/model_config.h (same field names, same defaults)."""

    vocab_size: int = 8192
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    seq_len: int = 256
    d_ffn: int = 1024
    ffn: str = "aoe"  # dense | moe | aoe
    n_experts: int = 8
    top_k: int = 2
    d_low: int = 64
    d_wide: int = 0  # 0: parameter-matched to a d_ffn expert (AOE.md Eq. 5)
    aoe_gate: str = "paper"  # paper | release
    aux_loss_coeff: float = 0.01
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02

    @property
    def head_dim(self):
        return self.d_model // self.n_heads

    def resolved_d_wide(self):
        """AOE.md Eq. 5: d_wide = (3·d·d_ffn − r·d) / (r + 2·d), rounded to the nearest integer."""
        if self.d_wide:
            return self.d_wide
        d, r = self.d_model, self.d_low
        return int(math.floor((3 * d * self.d_ffn - r * d) / (r + 2 * d) + 0.5))

    def check(self):
        assert self.ffn in FFN_KINDS, self.ffn
        assert self.aoe_gate in AOE_GATES, self.aoe_gate
        assert self.d_model % self.n_heads == 0 and self.head_dim % 2 == 0
        if self.ffn != "dense":
            assert 1 <= self.top_k <= self.n_experts


def parameter_shapes(cfg):
    """{name: shape} in the naming of models/gpt_model.h."""
    d, V = cfg.d_model, cfg.vocab_size
    shapes = {"embedding.weight": (V, d)}
    for l in range(cfg.n_layers):
        p = f"layers.{l}."
        shapes[p + "attn_norm.weight"] = (d,)
        # [in, q|k|v, head·head_dim]: the middle dim lets tensor parallelism split heads by a
        # plain block split of dim 2; as a [d, 3d] matrix it is the packed (q|k|v, head, hd).
        shapes[p + "attn.w_qkv"] = (d, 3, d)
        shapes[p + "attn.w_o"] = (d, d)
        shapes[p + "ffn_norm.weight"] = (d,)
        if cfg.ffn == "dense":
            shapes[p + "ffn.w_g"] = (d, cfg.d_ffn)
            shapes[p + "ffn.w_p"] = (d, cfg.d_ffn)
            shapes[p + "ffn.w_o"] = (cfg.d_ffn, d)
        elif cfg.ffn == "moe":
            shapes[p + "ffn.router.weight"] = (d, cfg.n_experts)
            for e in range(cfg.n_experts):
                shapes[p + f"ffn.experts.{e}.w_g"] = (d, cfg.d_ffn)
                shapes[p + f"ffn.experts.{e}.w_p"] = (d, cfg.d_ffn)
                shapes[p + f"ffn.experts.{e}.w_o"] = (cfg.d_ffn, d)
        else:
            wide = cfg.resolved_d_wide()
            shapes[p + "ffn.w_down"] = (d, cfg.n_experts * cfg.d_low)
            for e in range(cfg.n_experts):
                shapes[p + f"ffn.experts.{e}.w_up"] = (cfg.d_low, wide)
                shapes[p + f"ffn.experts.{e}.w_p"] = (d, wide)
                shapes[p + f"ffn.experts.{e}.w_o"] = (wide, d)
    shapes["final_norm.weight"] = (d,)
    shapes["lm_head.weight"] = (d, V)
    return shapes


def is_norm_weight(name):
    return name.endswith("norm.weight")


def takes_weight_decay(name):
    """core/optim/adamw.h: λ is zero for norm weights, and only for them."""
    return not is_norm_weight(name)


def init_parameters(cfg, seed, dtype=torch.float32):
    """gpt_model.h's initialisation in distribution (not bit for bit: torch's generator, not
    Philox): matrices N(0, std²), residual-output projections N(0, (std/sqrt(2L))²), norms 1."""
    gen = torch.Generator().manual_seed(seed)
    params = {}
    for name, shape in parameter_shapes(cfg).items():
        if is_norm_weight(name):
            t = torch.ones(shape, dtype=dtype)
        else:
            std = cfg.init_std
            if name.endswith("attn.w_o") or name.endswith(".w_o"):
                std /= math.sqrt(2 * cfg.n_layers)
            t = torch.randn(shape, generator=gen, dtype=torch.float32).to(dtype) * std
        params[name] = t.requires_grad_(True)
    return params


# ---- Layers --------------------------------------------------------------------------------------


def rms_norm(x, weight, eps):
    """core/ops/rmsnorm.h: y = x / sqrt(mean(x²) + eps) ⊙ w."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


@functools.lru_cache(maxsize=16)
def _rope_tables(T, hd, theta, dtype):
    """cos and sin of p·θ_i, [1, T, 1, hd/2], computed in f64 and rounded once to dtype.
    Cached: they depend only on the shape (saves the speed baseline recomputing them)."""
    i = torch.arange(hd // 2, dtype=torch.float64)
    inv_freq = theta ** (-2.0 * i / hd)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]  # [T, hd/2]
    return (torch.cos(angle).to(dtype)[None, :, None, :],
            torch.sin(angle).to(dtype)[None, :, None, :])


def rope(v, theta):
    """core/ops/rope.h, rotate-half: θ_i = theta^(−2i/hd), (a, b) = (v[i], v[i + hd/2]),
    a' = a·cos(pθ_i) − b·sin(pθ_i), b' = a·sin(pθ_i) + b·cos(pθ_i), p = index along T.
    v: [B, T, H, hd]."""
    T, hd = v.shape[1], v.shape[-1]
    cos, sin = _rope_tables(T, hd, float(theta), v.dtype)
    half = hd // 2
    a, b = v[..., :half], v[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


@functools.lru_cache(maxsize=16)
def _causal_mask(T):
    """True above the diagonal: key j > query i is masked."""
    return torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)


def attention(h, w_qkv, w_o, cfg):
    """Causal MHA (core/ops/attention.h). w_qkv: [d, 3, d]; as [d, 3d] its columns are ordered
    (q|k|v, head, head_dim)."""
    B, T, d = h.shape
    H, hd = cfg.n_heads, cfg.head_dim
    qkv = (h @ w_qkv.reshape(d, 3 * d)).view(B, T, 3, H, hd)
    q = rope(qkv[:, :, 0], cfg.rope_theta).transpose(1, 2)  # [B, H, T, hd]
    k = rope(qkv[:, :, 1], cfg.rope_theta).transpose(1, 2)
    v = qkv[:, :, 2].transpose(1, 2)
    scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
    scores = scores.masked_fill(_causal_mask(T), float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v  # [B, H, T, hd]
    return out.transpose(1, 2).reshape(B, T, d) @ w_o


def swiglu(x, w_g, w_p, w_o):
    """E(x) = (SiLU(x W_g) ⊙ (x W_p)) W_o."""
    return (F.silu(x @ w_g) * (x @ w_p)) @ w_o


def top_k_lower_index_wins(scores, k):
    """Indices [N, k] of the k largest scores per row, in descending order; among equal scores
    the lower index comes first (core/ops/topk.h). torch.topk promises no tie order, so this
    uses a stable descending sort. Also returns the sorted scores (for tie margins)."""
    sorted_scores, order = torch.sort(scores.detach(), dim=-1, descending=True, stable=True)
    return order[:, :k], sorted_scores


class RoutingRecord:
    """What one routed layer decided, for comparisons and diagnostics."""

    def __init__(self, indices, sorted_scores, counts, aux_loss):
        self.indices = indices  # [N, K] selected experts per token, descending score
        self.sorted_scores = sorted_scores  # [N, n]
        self.counts = counts  # [n] tokens that selected each expert (Σ = N·K)
        self.aux_loss = aux_loss  # this layer's α·n·Σ f_i P_i (a tensor)

    def selection_margin(self):
        """Per token, (K-th largest score) − ((K+1)-th largest): how far the selection is from a
        tie. +inf when K = n (nothing is left out)."""
        K = self.indices.shape[1]
        s = self.sorted_scores
        if K == s.shape[1]:
            return torch.full((s.shape[0],), float("inf"), dtype=s.dtype)
        return s[:, K - 1] - s[:, K]


def load_balancing_loss(all_scores, indices, cfg):
    """AOE.md Eq. 6 over this micro-batch's N tokens: α·n·Σ_i f_i P_i. f is a count (no
    gradient); P carries gradient into every expert's score through the softmax over all n."""
    N, n = all_scores.shape
    counts = torch.bincount(indices.reshape(-1), minlength=n)
    f = counts.to(all_scores.dtype) / N
    P = torch.softmax(all_scores, dim=-1).mean(dim=0)
    return cfg.aux_loss_coeff * n * (f * P).sum(), counts


def routed_ffn(x, params, prefix, cfg):
    """Router MoE or AoE over x [N, d]. Returns (y [N, d], RoutingRecord)."""
    N, d = x.shape
    n, K = cfg.n_experts, cfg.top_k
    if cfg.ffn == "moe":
        scores = x @ params[prefix + "router.weight"]  # router logits [N, n]
        indices, sorted_scores = top_k_lower_index_wins(scores, K)
        gates = torch.softmax(scores.gather(1, indices), dim=-1)  # over the K selected logits
        C = None
    else:
        r = cfg.d_low
        C = (x @ params[prefix + "w_down"]).view(N, n, r)  # one matmul for all experts
        scores = torch.linalg.vector_norm(C, ord=2, dim=-1)  # p_i = ‖C_i‖₂, [N, n]
        indices, sorted_scores = top_k_lower_index_wins(scores, K)
        if cfg.aoe_gate == "paper":
            gates = torch.softmax(scores.gather(1, indices), dim=-1)
        else:  # release: softmax over all n norms, the K selected weights not renormalised
            gates = torch.softmax(scores, dim=-1).gather(1, indices)

    y = torch.zeros_like(x)
    for e in range(n):
        token_ids, slot = (indices == e).nonzero(as_tuple=True)
        if token_ids.numel() == 0:
            continue
        pe = prefix + f"experts.{e}."
        xe = x.index_select(0, token_ids)
        if cfg.ffn == "moe":
            out = swiglu(xe, params[pe + "w_g"], params[pe + "w_p"], params[pe + "w_o"])
        else:
            ce = C[:, e, :].index_select(0, token_ids)  # the cached C_i, never recomputed
            out = (F.silu(ce @ params[pe + "w_up"]) * (xe @ params[pe + "w_p"])) @ params[pe + "w_o"]
        y = y.index_add(0, token_ids, gates[token_ids, slot].unsqueeze(1) * out)

    aux, counts = load_balancing_loss(scores, indices, cfg)
    return y, RoutingRecord(indices, sorted_scores, counts, aux)


def forward(params, tokens, targets, cfg):
    """Total loss = CE + Σ aux for tokens, targets: int [B, T]. Returns (total, ce, aux,
    [RoutingRecord per layer] (empty for dense))."""
    B, T = tokens.shape
    x = params["embedding.weight"][tokens.long()]  # [B, T, d]
    records = []
    aux_total = x.new_zeros(())
    for l in range(cfg.n_layers):
        p = f"layers.{l}."
        h = rms_norm(x, params[p + "attn_norm.weight"], cfg.norm_eps)
        x = x + attention(h, params[p + "attn.w_qkv"], params[p + "attn.w_o"], cfg)
        h = rms_norm(x, params[p + "ffn_norm.weight"], cfg.norm_eps).reshape(B * T, -1)
        if cfg.ffn == "dense":
            y = swiglu(h, params[p + "ffn.w_g"], params[p + "ffn.w_p"], params[p + "ffn.w_o"])
        else:
            y, record = routed_ffn(h, params, p + "ffn.", cfg)
            records.append(record)
            aux_total = aux_total + record.aux_loss
        x = x + y.view(B, T, -1)
    h = rms_norm(x, params["final_norm.weight"], cfg.norm_eps)
    logits = h @ params["lm_head.weight"]
    ce = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1).long())
    return ce + aux_total, ce, aux_total, records


# ---- Optimizer -----------------------------------------------------------------------------------


@dataclasses.dataclass
class AdamWHyperParams:
    """core/optim/adamw.h defaults."""

    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1


class AdamW:
    """core/optim/adamw.h, written out (torch.optim.AdamW applies the decay as a separate
    multiply θ(1−ηλ) before the Adam step, which rounds differently). For step s ≥ 1:
        m ← β1·m + (1−β1)·g          v ← β2·v + (1−β2)·g²
        m̂ = m / (1−β1^s)             v̂ = v / (1−β2^s)
        θ ← θ − η·(m̂ / (sqrt(v̂) + ε) + λ·θ),   λ = 0 for norm weights.
    Moments have the parameters' dtype."""

    def __init__(self, params, hp=None):
        self.params = params
        self.hp = hp or AdamWHyperParams()
        self.m = {k: torch.zeros_like(v, requires_grad=False) for k, v in params.items()}
        self.v = {k: torch.zeros_like(v, requires_grad=False) for k, v in params.items()}
        self.steps_taken = 0

    @torch.no_grad()
    def step(self, lr):
        self.steps_taken += 1
        s, hp = self.steps_taken, self.hp
        bias1 = 1.0 - hp.beta1**s
        bias2 = 1.0 - hp.beta2**s
        for name, theta in self.params.items():
            g = theta.grad if theta.grad is not None else torch.zeros_like(theta)
            m, v = self.m[name], self.v[name]
            m.mul_(hp.beta1).add_((1.0 - hp.beta1) * g)
            v.mul_(hp.beta2).add_((1.0 - hp.beta2) * g * g)
            m_hat = m / bias1
            v_hat = v / bias2
            decay = hp.weight_decay if takes_weight_decay(name) else 0.0
            theta.sub_(lr * (m_hat / (torch.sqrt(v_hat) + hp.eps) + decay * theta))


def zero_grads(params):
    for t in params.values():
        t.grad = None


def params_from_dict(tensors, cfg, dtype):
    """Leaf tensors (requires_grad) of `dtype` from {name: array}, checking that names and shapes
    are exactly those of parameter_shapes(cfg)."""
    shapes = parameter_shapes(cfg)
    missing = sorted(set(shapes) - set(tensors))
    extra = sorted(set(tensors) - set(shapes))
    if missing or extra:
        raise ValueError(f"parameter names differ: missing {missing[:5]}, unexpected {extra[:5]}")
    params = {}
    for name, shape in shapes.items():
        t = torch.as_tensor(tensors[name]).to(dtype).clone()
        if tuple(t.shape) != tuple(shape):
            raise ValueError(f"{name}: shape {tuple(t.shape)}, expected {tuple(shape)}")
        params[name] = t.requires_grad_(True)
    return params
