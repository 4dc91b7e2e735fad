"""An independent PyTorch oracle for aoetron's GptModel.

Written from docs (design/AOE.md, the issue-12 option contract notes/moe_options_spec.md, and the
contracts in models/gpt_model.h, models/model_config.h, core/ops/{rope,attention,rmsnorm}.h,
core/optim/adamw.h), never from the C++ model code, so that
agreement between the two means something. Plain on purpose: experts are loops over a mask,
attention is matmul + masked softmax, backward is autograd. f32 and f64 both work (the dtype of
the parameters decides).

The model (y = x · W, W stored [in, out]):
    x = embedding[tokens]
    L × { x = x + Attention(RMSNorm(x));  x = x + FFN(RMSNorm(x)) }
    logits = RMSNorm(x) · W_lm
    loss = mean_t CE(logits_t, target_t) + Σ_layers (L_aux + L_z)
FFN is dense SwiGLU, router MoE (top-K of x·W_r, softmax over the K selected logits) or AoE
(top-K of the L2 norms of each expert's slice of C = x·Ŵ_down, softmax over the K selected norms;
the "release" variant takes the softmax over all n norms and keeps the K selected weights as
they are). L_aux = α·n·Σ_i f_i·P_i over the micro-batch's B·T tokens, f_i = fraction of tokens
that selected i (Σ f_i = K), P_i = mean softmax over all n scores.

Issue-12 options (notes/moe_options_spec.md; all off by default, and then the model above is
computed exactly as before):
  granularity G, d_expert  n·G routed experts, K·G selected, each of width d_expert (0: d_ffn/G).
                           AoE's derived d_wide is parameter-matched to a SwiGLU of width
                           d_expert and rounded (round_expert_width).
  n_shared_experts S, d_shared  one always-on SwiGLU of width S·d_shared (0: d_expert) added to
                           the routed output: y = routed(x) + shared(x).
  router_score sigmoid     (router MoE) s = σ(logits); top-K on s; w = s[I] / Σ_K s[I];
                           P and Ent_conf use q = s / Σ_n s.
  z_loss_coeff             L_z = coeff · mean_t logsumexp(logits_t)² per layer (AoE: the norms).
  expert_bias_rate         a per-layer bias b [n] added to the scores for selection only (no
                           gradient, not trained by AdamW); expert_bias_update() is its
                           once-per-optimizer-step rule.

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
ROUTER_SCORES = ("softmax", "sigmoid")  # index = the config's enum value (0 softmax, 1 sigmoid)
EXPERT_BIAS_SUFFIX = "ffn.expert_bias"


def round_expert_width(raw):
    """A derived expert width as layouts split it and GEMMs like it (moe_options_spec.md): the
    nearest multiple of 64 when raw ≥ 64, else the nearest multiple of 8, at least 8. An exact
    half-way raw rounds up (floor(raw/m + 0.5)); the spec names no tie rule, and such a tie is
    exact in double (raw = m·(k + ½) is dyadic), so double and exact arithmetic agree on it."""
    m = 64 if raw >= 64 else 8
    return max(8, m * int(math.floor(raw / m + 0.5)))


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
    d_wide: int = 0  # 0: parameter-matched to a d_expert SwiGLU (AOE.md Eq. 5, then rounded)
    aoe_gate: str = "paper"  # paper | release
    aux_loss_coeff: float = 0.01
    # Issue 12 (notes/moe_options_spec.md). Unlike ModelConfig, which stores n_experts = n·G and
    # top_k = k·G already resolved, this Config holds the USER values n_experts = n, top_k = k
    # and granularity = G (what parity_dump writes as config.*); routed_experts() and
    # routed_top_k() resolve n·G and k·G here, and everything below uses those.
    granularity: int = 1
    d_expert: int = 0  # routed SwiGLU expert width; 0 = d_ffn / granularity
    n_shared_experts: int = 0
    d_shared: int = 0  # 0 = the routed expert width d_expert
    router_score: str = "softmax"  # softmax | sigmoid (router MoE only)
    z_loss_coeff: float = 0.0
    expert_bias_rate: float = 0.0  # 0 = no expert_bias parameter at all
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02

    @property
    def head_dim(self):
        return self.d_model // self.n_heads

    def routed_experts(self):
        """n·G: the number of routed experts the layers have."""
        return self.n_experts * self.granularity

    def routed_top_k(self):
        """K·G: the number of routed experts each token selects."""
        return self.top_k * self.granularity

    def resolved_d_expert(self):
        """Routed SwiGLU expert width: d_expert if set, else d_ffn / G (required to divide)."""
        if self.d_expert:
            return self.d_expert
        assert self.d_ffn % self.granularity == 0, (self.d_ffn, self.granularity)
        return self.d_ffn // self.granularity

    def shared_width(self):
        """S·d_shared (d_shared 0 = d_expert): the width of the shared experts' one SwiGLU."""
        return self.n_shared_experts * (self.d_shared or self.resolved_d_expert())

    def has_shared(self):
        return self.ffn != "dense" and self.n_shared_experts > 0

    def has_expert_bias(self):
        return self.ffn != "dense" and self.expert_bias_rate > 0

    def parameter_matched_d_wide(self):
        """AOE.md Eq. 5 unrounded, matched to a SwiGLU expert of width w = d_expert:
        (3·d·w − r·d) / (r + 2·d)."""
        d, r, w = self.d_model, self.d_low, self.resolved_d_expert()
        return (3 * d * w - r * d) / (r + 2 * d)

    def resolved_d_wide(self):
        """d_wide if set, else parameter_matched_d_wide() rounded by round_expert_width."""
        if self.d_wide:
            return self.d_wide
        return round_expert_width(self.parameter_matched_d_wide())

    def check(self):
        assert self.ffn in FFN_KINDS, self.ffn
        assert self.aoe_gate in AOE_GATES, self.aoe_gate
        assert self.router_score in ROUTER_SCORES, self.router_score
        assert self.d_model % self.n_heads == 0 and self.head_dim % 2 == 0
        if self.ffn != "dense":
            assert self.granularity >= 1 and self.d_expert >= 0
            assert self.n_shared_experts >= 0 and self.d_shared >= 0
            assert self.z_loss_coeff >= 0 and self.expert_bias_rate >= 0
            assert 1 <= self.top_k <= self.n_experts
            assert self.resolved_d_expert() >= 1
            # The spec makes a sigmoid router with AoE a config error.
            assert self.ffn == "moe" or self.router_score == "softmax", "sigmoid is moe-only"


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
        else:
            n = cfg.routed_experts()
            if cfg.ffn == "moe":
                w = cfg.resolved_d_expert()
                shapes[p + "ffn.router.weight"] = (d, n)
                for e in range(n):
                    shapes[p + f"ffn.experts.{e}.w_g"] = (d, w)
                    shapes[p + f"ffn.experts.{e}.w_p"] = (d, w)
                    shapes[p + f"ffn.experts.{e}.w_o"] = (w, d)
            else:
                wide = cfg.resolved_d_wide()
                shapes[p + "ffn.w_down"] = (d, n * cfg.d_low)
                for e in range(n):
                    shapes[p + f"ffn.experts.{e}.w_up"] = (cfg.d_low, wide)
                    shapes[p + f"ffn.experts.{e}.w_p"] = (d, wide)
                    shapes[p + f"ffn.experts.{e}.w_o"] = (wide, d)
            if cfg.has_shared():
                s = cfg.shared_width()
                shapes[p + "ffn.shared.w_g"] = (d, s)
                shapes[p + "ffn.shared.w_p"] = (d, s)
                shapes[p + "ffn.shared.w_o"] = (s, d)
            if cfg.has_expert_bias():
                shapes[p + EXPERT_BIAS_SUFFIX] = (n,)
    shapes["final_norm.weight"] = (d,)
    shapes["lm_head.weight"] = (d, V)
    return shapes


def is_norm_weight(name):
    return name.endswith("norm.weight")


def is_expert_bias(name):
    return name.endswith(EXPERT_BIAS_SUFFIX)


def is_trained(name):
    """Everything but the expert bias, which only expert_bias_update() changes."""
    return not is_expert_bias(name)


def takes_weight_decay(name):
    """core/optim/adamw.h: λ is zero for norm weights, and only for them, among the trained
    parameters (the expert bias is not trained at all; False for it)."""
    return is_trained(name) and not is_norm_weight(name)


def init_parameters(cfg, seed, dtype=torch.float32):
    """gpt_model.h's initialisation in distribution (not bit for bit: torch's generator, not
    Philox): matrices N(0, std²), residual-output projections N(0, (std/sqrt(2L))²) (the
    shared experts' w_o too), norms 1, expert biases 0 (no gradient: requires_grad False)."""
    gen = torch.Generator().manual_seed(seed)
    params = {}
    for name, shape in parameter_shapes(cfg).items():
        if is_expert_bias(name):
            params[name] = torch.zeros(shape, dtype=dtype)
            continue
        if is_norm_weight(name):
            t = torch.ones(shape, dtype=dtype)
        else:
            std = cfg.init_std
            if name.endswith("attn.w_o") or name.endswith(".w_o"):
                std /= math.sqrt(2 * cfg.n_layers)
            t = torch.randn(shape, generator=gen, dtype=torch.float32).to(dtype) * std
        params[name] = t.requires_grad_(is_trained(name))
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

    def __init__(self, indices, sorted_scores, counts, aux_loss, z_loss=None, affinities=None):
        self.indices = indices  # [N, K] selected experts per token, descending selection score
        self.sorted_scores = sorted_scores  # [N, n] selection scores (score + bias), sorted
        self.counts = counts  # [n] tokens that selected each expert (Σ = N·K)
        self.aux_loss = aux_loss  # this layer's α·n·Σ f_i P_i (a tensor)
        # this layer's z_loss_coeff · mean_t logsumexp(logits_t)² (a zero tensor when off)
        self.z_loss = z_loss if z_loss is not None else aux_loss.new_zeros(())
        self.affinities = affinities  # [N, n] q: rows sum to 1; P_i = mean_t q_ti

    def selection_margin(self):
        """Per token, (K-th largest score) − ((K+1)-th largest): how far the selection is from a
        tie. +inf when K = n (nothing is left out)."""
        K = self.indices.shape[1]
        s = self.sorted_scores
        if K == s.shape[1]:
            return torch.full((s.shape[0],), float("inf"), dtype=s.dtype)
        return s[:, K - 1] - s[:, K]

    def ent_conf(self):
        """AOE.md diagnostics: mean over tokens of −Σ_i q_i log q_i (q: softmax over all n
        scores, or for the sigmoid router the normalised affinities s / Σ s)."""
        q = self.affinities.detach()
        return -(q * torch.log(q.clamp_min(torch.finfo(q.dtype).tiny))).sum(-1).mean()


def load_balancing_loss(all_scores, indices, cfg, affinities=None):
    """AOE.md Eq. 6 over this micro-batch's N tokens: α·n·Σ_i f_i P_i. f is a count (no
    gradient); P = mean_t q_t carries gradient into every expert's score. q defaults to the
    softmax over all n scores; the sigmoid router passes its normalised affinities s / Σ_n s."""
    N, n = all_scores.shape
    counts = torch.bincount(indices.reshape(-1), minlength=n)
    f = counts.to(all_scores.dtype) / N
    q = torch.softmax(all_scores, dim=-1) if affinities is None else affinities
    P = q.mean(dim=0)
    return cfg.aux_loss_coeff * n * (f * P).sum(), counts


def router_z_loss(logits, coeff):
    """coeff · mean_t (logsumexp_i logits_ti)² over the N tokens (ST-MoE's z-loss)."""
    return coeff * torch.logsumexp(logits, dim=-1).pow(2).mean()


class Routing:
    """route()'s result: what the expert loop and the losses need."""

    def __init__(self, indices, sorted_scores, gates, logits, affinities, C):
        self.indices = indices  # [N, K]
        self.sorted_scores = sorted_scores  # [N, n] selection scores (with bias), sorted
        self.gates = gates  # [N, K] gate weight of each selected expert
        self.logits = logits  # [N, n] raw scores: router logits or AoE norms (z-loss, softmax q)
        self.affinities = affinities  # [N, n] q for P (None: the softmax of logits)
        self.C = C  # AoE: [N, n, r] = x·Ŵ_down; router MoE: None


def route(x, params, prefix, cfg):
    """Scores, top-K selection and gate weights of a routed layer for x [N, d].
    Selection is top-K of s + b (b = the expert bias, detached: no gradient reaches it); the
    gate weights and the aux loss use the unbiased s."""
    N, d = x.shape
    n, K = cfg.routed_experts(), cfg.routed_top_k()
    bias = params[prefix + "expert_bias"].detach() if cfg.has_expert_bias() else None
    C = affinities = None
    if cfg.ffn == "moe":
        logits = x @ params[prefix + "router.weight"]  # [N, n]
        if cfg.router_score == "sigmoid":
            scores = torch.sigmoid(logits)
            affinities = scores / scores.sum(dim=-1, keepdim=True)
        else:
            scores = logits
    else:
        r = cfg.d_low
        C = (x @ params[prefix + "w_down"]).view(N, n, r)  # one matmul for all experts
        logits = scores = torch.linalg.vector_norm(C, ord=2, dim=-1)  # p_i = ‖C_i‖₂, [N, n]
    selection = scores if bias is None else scores.detach() + bias
    indices, sorted_scores = top_k_lower_index_wins(selection, K)
    if cfg.ffn == "moe" and cfg.router_score == "sigmoid":
        selected = scores.gather(1, indices)
        gates = selected / selected.sum(dim=-1, keepdim=True)  # renormalised over the K
    elif cfg.ffn == "aoe" and cfg.aoe_gate == "release":
        # softmax over all n norms, the K selected weights not renormalised
        gates = torch.softmax(scores, dim=-1).gather(1, indices)
    else:  # softmax router, AoE paper: softmax over the K selected logits / norms
        gates = torch.softmax(scores.gather(1, indices), dim=-1)
    return Routing(indices, sorted_scores, gates, logits, affinities, C)


def routed_ffn(x, params, prefix, cfg):
    """Router MoE or AoE over x [N, d], plus the shared experts if any. Returns (y [N, d],
    RoutingRecord)."""
    routing = route(x, params, prefix, cfg)
    indices, gates, C = routing.indices, routing.gates, routing.C

    y = torch.zeros_like(x)
    for e in range(cfg.routed_experts()):
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
    if cfg.has_shared():
        # S shared experts = one SwiGLU of width S·d_shared, always on: y = routed + shared.
        ps = prefix + "shared."
        y = y + swiglu(x, params[ps + "w_g"], params[ps + "w_p"], params[ps + "w_o"])

    aux, counts = load_balancing_loss(routing.logits, indices, cfg, routing.affinities)
    z = router_z_loss(routing.logits, cfg.z_loss_coeff) if cfg.z_loss_coeff else None
    affinities = routing.affinities
    if affinities is None:
        affinities = torch.softmax(routing.logits.detach(), dim=-1)
    return y, RoutingRecord(indices, routing.sorted_scores, counts, aux, z, affinities)


def forward(params, tokens, targets, cfg):
    """Total loss = CE + Σ aux + Σ z for tokens, targets: int [B, T]. Returns (total, ce, aux,
    [RoutingRecord per layer] (empty for dense)); aux is Σ L_aux only, the z-losses are in the
    records (z_loss_total(records))."""
    B, T = tokens.shape
    x = params["embedding.weight"][tokens.long()]  # [B, T, d]
    records = []
    aux_total = x.new_zeros(())
    z_total = None
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
            if cfg.z_loss_coeff:
                z_total = record.z_loss if z_total is None else z_total + record.z_loss
        x = x + y.view(B, T, -1)
    h = rms_norm(x, params["final_norm.weight"], cfg.norm_eps)
    logits = h @ params["lm_head.weight"]
    ce = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1).long())
    total = ce + aux_total
    if z_total is not None:
        total = total + z_total
    return total, ce, aux_total, records


def z_loss_total(records):
    """Σ over layers of the z-losses (0 with no routed layers or the z-loss off), detached."""
    total = torch.zeros((), dtype=torch.float64)
    for record in records:
        total = total + record.z_loss.detach().double()
    return total


# ---- Aux-loss-free balancing ---------------------------------------------------------------------


def expert_bias_update(bias, load, rate):
    """The once-per-optimizer-step rule (moe_options_spec.md), a pure function:
        b_i ← b_i + rate · sign(mean_load − load_i),  mean_load = Σ_i load_i / n,  sign(0) = 0,
    load_i = pairs routed to expert i over the whole optimizer step (all micro-batches, all
    ranks). Computed in double from the stored bias, returned rounded to f32."""
    b = torch.as_tensor(bias).detach().to(torch.float64)
    load = torch.as_tensor(load).detach().to(torch.float64).reshape(-1)
    assert b.shape == load.shape, (tuple(b.shape), tuple(load.shape))
    mean_load = load.sum() / load.numel()
    return (b + rate * torch.sign(mean_load - load)).to(torch.float32)


def step_loads(records_per_micro_batch):
    """[per layer: load [n] (int64)] summed over the micro-batches of one optimizer step, each
    micro-batch given as forward()'s list of RoutingRecord."""
    loads = None
    for records in records_per_micro_batch:
        counts = [r.counts.to(torch.int64) for r in records]
        loads = counts if loads is None else [a + c for a, c in zip(loads, counts)]
    return loads or []


@torch.no_grad()
def apply_expert_bias_updates(params, loads, cfg):
    """Updates every layer's expert_bias in place from its load of the step (step_loads()).
    No-op when the model has no expert bias."""
    if not cfg.has_expert_bias():
        return
    for l, load in enumerate(loads):
        b = params[f"layers.{l}.{EXPERT_BIAS_SUFFIX}"]
        b.copy_(expert_bias_update(b, load, cfg.expert_bias_rate).to(b.dtype))


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
    Moments have the parameters' dtype. Parameters that are not trained (the expert bias) are
    skipped: no moments, no decay, no step."""

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
            if not is_trained(name):
                continue
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
    """Leaf tensors (requires_grad, except the untrained expert bias) of `dtype` from
    {name: array}, checking that names and shapes are exactly those of parameter_shapes(cfg)."""
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
        params[name] = t.requires_grad_(is_trained(name))
    return params
