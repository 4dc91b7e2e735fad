"""Checks of the PyTorch oracle itself (reference_model.py), before anything is compared to it:
autograd gradients against f64 finite differences (torch.autograd.gradcheck) for every FFN
kind and every issue-12 option (notes/moe_options_spec.md), and the conventions the parity check
relies on (top-K ties, gate weights, aux loss, z-loss, expert bias, RoPE, d_wide rounding, the
AdamW formula). Run: /usr/bin/python3 tests/parity/test_reference_model.py
Exits 77 (ctest's skip code here) if torch cannot be imported."""

import math
import os
import sys
import unittest

try:
    import torch
except ImportError as error:  # CI installs python3-torch; a bare machine skips
    print(f"SKIP: torch is not importable by {sys.executable}: {error}")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_model as ref  # noqa: E402


def tiny_config(ffn, **overrides):
    cfg = ref.Config(vocab_size=11, d_model=8, n_layers=2, n_heads=2, seq_len=5, d_ffn=6,
                     ffn=ffn, n_experts=4, top_k=2, d_low=2, d_wide=5, aux_loss_coeff=0.05,
                     init_std=0.5)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    cfg.check()
    return cfg


def tiny_batch(cfg, seed, batch=2):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), generator=gen)
    targets = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), generator=gen)
    return tokens, targets


class GradcheckTest(unittest.TestCase):
    """Autograd through the whole model (loss + aux) equals central differences in f64.
    A finite-difference step of 1e-6 cannot move a top-K selection whose margin is much larger,
    so the margin is asserted first: otherwise gradcheck would test a discontinuity."""

    def check_kind(self, ffn, bias_scale=None, **overrides):
        """bias_scale: with an expert bias (expert_bias_rate > 0), its values are drawn
        N(0, bias_scale²) (rounded to f32, as stored) and must change some selections."""
        cfg = tiny_config(ffn, **overrides)
        params = ref.init_parameters(cfg, seed=3, dtype=torch.float64)
        # Norm weights away from 1 so their gradients are exercised in general position.
        with torch.no_grad():
            for name, t in params.items():
                if ref.is_norm_weight(name):
                    t.add_(0.3 * torch.randn(t.shape, dtype=t.dtype,
                                             generator=torch.Generator().manual_seed(len(name))))
        tokens, targets = tiny_batch(cfg, seed=5)
        names = list(params)
        self.assertEqual(cfg.has_expert_bias(), bias_scale is not None)
        if cfg.has_expert_bias():
            _, _, _, unbiased = ref.forward(params, tokens, targets, cfg)
            with torch.no_grad():
                for name, t in params.items():
                    if ref.is_expert_bias(name):
                        t.copy_(bias_scale * torch.randn(
                            t.shape, generator=torch.Generator().manual_seed(len(name)),
                            dtype=torch.float64).float().double())
        total, _, _, records = ref.forward(params, tokens, targets, cfg)
        for record in records:
            self.assertEqual(tuple(record.indices.shape),
                             (tokens.numel(), cfg.routed_top_k()))
            self.assertGreater(record.selection_margin().min().item(), 1e-4)
            # The selection must vary across tokens, or half the routing code is untested.
            self.assertGreater(len({tuple(r) for r in record.indices.tolist()}), 1)
        if cfg.has_expert_bias():  # the bias must matter, or the test does not exercise it
            self.assertTrue(any(not torch.equal(a.indices, b.indices)
                                for a, b in zip(records, unbiased)))
        if cfg.z_loss_coeff:
            self.assertGreater(ref.z_loss_total(records).item(), 0.0)
        # The expert bias gets no gradient: it is not even part of the graph.
        total.backward()
        for name, t in params.items():
            if ref.is_expert_bias(name):
                self.assertIsNone(t.grad)

        def total_loss(*tensors):
            return ref.forward(dict(zip(names, tensors)), tokens, targets, cfg)[0]

        inputs = tuple(params[n].detach().clone().requires_grad_(True) for n in names)
        self.assertTrue(torch.autograd.gradcheck(total_loss, inputs, eps=1e-6, atol=1e-7,
                                                 rtol=1e-5))

    def test_dense(self):
        self.check_kind("dense")

    def test_router_moe(self):
        self.check_kind("moe")

    def test_aoe_paper(self):
        self.check_kind("aoe")

    def test_aoe_release(self):
        self.check_kind("aoe", aoe_gate="release")

    def test_aoe_top1_no_aux(self):
        self.check_kind("aoe", top_k=1, aux_loss_coeff=0.0)

    # ---- Issue 12 options, one at a time (one layer: each gradcheck costs ~1 s per 100
    # parameters; the combinations below keep two) ----

    def test_router_moe_granularity_2(self):
        self.check_kind("moe", n_layers=1, granularity=2)  # 8 experts of width 3, 4 selected

    def test_aoe_granularity_2_derived_d_wide(self):
        # 8 experts, d_wide derived from d_expert = 3 (raw 3.1 → 8)
        self.check_kind("aoe", n_layers=1, granularity=2, d_wide=0)

    def test_router_moe_explicit_d_expert(self):
        self.check_kind("moe", n_layers=1, d_expert=4)

    def test_router_moe_shared(self):
        self.check_kind("moe", n_layers=1, n_shared_experts=2, d_shared=3)

    def test_aoe_shared_default_width(self):
        self.check_kind("aoe", n_layers=1, n_shared_experts=1)  # d_shared 0 = d_expert = d_ffn

    def test_router_moe_sigmoid(self):
        self.check_kind("moe", n_layers=1, router_score="sigmoid")

    def test_router_moe_z_loss(self):
        self.check_kind("moe", n_layers=1, z_loss_coeff=0.1)

    def test_aoe_z_loss(self):
        self.check_kind("aoe", n_layers=1, z_loss_coeff=0.1)

    def test_router_moe_expert_bias(self):
        self.check_kind("moe", n_layers=1, bias_scale=0.5, expert_bias_rate=0.01)

    def test_aoe_expert_bias(self):
        self.check_kind("aoe", n_layers=1, bias_scale=0.3, expert_bias_rate=0.01)

    # ---- Combinations ----

    def test_router_moe_sigmoid_bias_z_loss_shared(self):
        self.check_kind("moe", bias_scale=0.1, router_score="sigmoid", expert_bias_rate=0.01,
                        z_loss_coeff=0.1, n_shared_experts=2, d_shared=3)

    def test_aoe_bias_shared_z_loss(self):
        self.check_kind("aoe", bias_scale=0.3, expert_bias_rate=0.01, n_shared_experts=2,
                        d_shared=3, z_loss_coeff=0.1)

    def test_aoe_release_bias_shared_z_loss(self):
        self.check_kind("aoe", bias_scale=0.3, aoe_gate="release", expert_bias_rate=0.01,
                        n_shared_experts=1, z_loss_coeff=0.1)

    def test_router_moe_everything_granularity_2(self):
        self.check_kind("moe", bias_scale=0.1, granularity=2, router_score="sigmoid",
                        expert_bias_rate=0.01, z_loss_coeff=0.1, n_shared_experts=1)


class ConventionTest(unittest.TestCase):
    def test_top_k_ties_go_to_the_lower_index(self):
        scores = torch.tensor([[1.0, 3.0, 3.0, 3.0], [2.0, 2.0, 0.0, 2.0]])
        indices, _ = ref.top_k_lower_index_wins(scores, 2)
        self.assertEqual(indices.tolist(), [[1, 2], [0, 1]])

    def test_aux_loss_is_alpha_k_for_uniform_scores(self):
        cfg = tiny_config("moe")
        scores = torch.zeros(10, cfg.n_experts, dtype=torch.float64)
        indices, _ = ref.top_k_lower_index_wins(scores, cfg.top_k)
        aux, counts = ref.load_balancing_loss(scores, indices, cfg)
        self.assertEqual(counts.sum().item(), 10 * cfg.top_k)  # Σ f_i = K
        self.assertAlmostEqual(aux.item(), cfg.aux_loss_coeff * cfg.top_k, places=14)

    def test_aoe_gate_variants(self):
        # The paper's weights are a softmax over the K selected norms (they sum to 1); the
        # release's are the K selected entries of a softmax over all n norms.
        x = torch.randn(7, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        for gate in ref.AOE_GATES:
            cfg = tiny_config("aoe", aoe_gate=gate)
            params = ref.init_parameters(cfg, seed=2, dtype=torch.float64)
            prefix = "layers.0.ffn."
            norms = (x @ params[prefix + "w_down"]).view(7, cfg.n_experts, cfg.d_low).norm(dim=-1)
            indices, _ = ref.top_k_lower_index_wins(norms, cfg.top_k)
            # Isolate one expert's contribution: zero every w_o but expert 0's, compare with
            # the weight computed here by hand.
            with torch.no_grad():
                for e in range(1, cfg.n_experts):
                    params[prefix + f"experts.{e}.w_o"].zero_()
            y, _ = ref.routed_ffn(x, params, prefix, cfg)
            for t in range(7):
                selected = indices[t].tolist()
                if 0 not in selected:
                    self.assertEqual(y[t].abs().max().item(), 0.0)
                    continue
                if gate == "paper":
                    w = torch.softmax(norms[t, indices[t]], dim=0)[selected.index(0)]
                else:
                    w = torch.softmax(norms[t], dim=0)[0]
                C0 = (x[t] @ params[prefix + "w_down"])[: cfg.d_low]
                e0 = prefix + "experts.0."
                expected = w * ((torch.nn.functional.silu(C0 @ params[e0 + "w_up"]) *
                                 (x[t] @ params[e0 + "w_p"])) @ params[e0 + "w_o"])
                torch.testing.assert_close(y[t], expected, rtol=1e-12, atol=1e-14)

    def test_aoe_unselected_experts_learn_only_through_aux(self):
        # AOE.md "Gradient flow": with α = 0 an expert nobody selects gets no gradient at all,
        # not even in its Ŵ_down slice; with α > 0 its slice gets gradient through P.
        for alpha in (0.0, 0.05):
            cfg = tiny_config("aoe", n_experts=6, top_k=1, aux_loss_coeff=alpha, n_layers=1)
            params = ref.init_parameters(cfg, seed=4, dtype=torch.float64)
            tokens, targets = tiny_batch(cfg, seed=6, batch=1)
            loss, _, _, records = ref.forward(params, tokens, targets, cfg)
            loss.backward()
            unused = [e for e in range(cfg.n_experts) if records[0].counts[e] == 0]
            self.assertTrue(unused, "every expert was selected; pick another seed")
            w_down_grad = params["layers.0.ffn.w_down"].grad.view(cfg.d_model, cfg.n_experts,
                                                                  cfg.d_low)
            for e in unused:
                g = params[f"layers.0.ffn.experts.{e}.w_up"].grad
                self.assertTrue(g is None or g.abs().max().item() == 0.0)
                slice_norm = w_down_grad[:, e, :].abs().max().item()
                if alpha == 0.0:
                    self.assertEqual(slice_norm, 0.0)
                else:
                    self.assertGreater(slice_norm, 0.0)

    def test_rope_is_a_rotation_that_depends_on_relative_position(self):
        hd, theta = 8, 10000.0
        gen = torch.Generator().manual_seed(0)
        q = torch.randn(1, 1, 1, hd, dtype=torch.float64, generator=gen).expand(1, 12, 1, hd)
        k = torch.randn(1, 1, 1, hd, dtype=torch.float64, generator=gen).expand(1, 12, 1, hd)
        rq, rk = ref.rope(q, theta), ref.rope(k, theta)
        torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))
        dot = lambda i, j: (rq[0, i, 0] * rk[0, j, 0]).sum().item()
        self.assertAlmostEqual(dot(5, 2), dot(9, 6), places=12)
        # The documented pairing: element 0 pairs with element hd/2, angle p·theta^0 = p.
        p = 3
        a, b = q[0, p, 0, 0].item(), q[0, p, 0, hd // 2].item()
        self.assertAlmostEqual(rq[0, p, 0, 0].item(), a * math.cos(p) - b * math.sin(p), places=12)
        self.assertAlmostEqual(rq[0, p, 0, hd // 2].item(), a * math.sin(p) + b * math.cos(p),
                               places=12)

    def test_adamw_formula(self):
        # Step 1 from zero moments: m̂ = g, v̂ = g², so θ ← θ − η·(g/(|g|+ε) + λθ).
        # Norm weights take no decay.
        hp = ref.AdamWHyperParams(eps=1e-8, weight_decay=0.1)
        params = {"w": torch.tensor([0.5, -0.25], dtype=torch.float64, requires_grad=True),
                  "final_norm.weight": torch.tensor([1.0], dtype=torch.float64,
                                                    requires_grad=True)}
        params["w"].grad = torch.tensor([2.0, -1e-3], dtype=torch.float64)
        params["final_norm.weight"].grad = torch.tensor([0.5], dtype=torch.float64)
        opt = ref.AdamW(params, hp)
        lr = 0.01
        opt.step(lr)
        for before, g, got in ((0.5, 2.0, params["w"][0]), (-0.25, -1e-3, params["w"][1])):
            self.assertAlmostEqual(got.item(), before - lr * (g / (abs(g) + 1e-8) + 0.1 * before),
                                   places=14)
        self.assertAlmostEqual(params["final_norm.weight"].item(), 1.0 - lr * 0.5 / (0.5 + 1e-8),
                               places=14)
        # Step 2 with the same gradient: bias correction makes m̂ = g, v̂ = g² again.
        w_before = params["w"].detach().clone()
        opt.step(lr)
        g = torch.tensor([2.0, -1e-3], dtype=torch.float64)
        expected = w_before - lr * (g / (g.abs() + 1e-8) + 0.1 * w_before)
        torch.testing.assert_close(params["w"].detach(), expected, rtol=1e-12, atol=1e-14)

    def test_d_wide_matches_aoe_md(self):
        # AOE.md Eq. 5, rounded as moe_options_spec.md says (the spec replaces AOE.md's
        # "nearest integer"): (768, 3072, r=256) → 3840 exactly, a multiple of 64 already;
        # (1280, 5120, r=400) → 6469.2 → 6464 (the paper's 6470 is no multiple of 64).
        self.assertEqual(ref.Config(d_model=768, d_ffn=3072, d_low=256).resolved_d_wide(), 3840)
        self.assertEqual(ref.Config(d_model=1280, d_ffn=5120, d_low=400).resolved_d_wide(), 6464)
        # An explicit d_wide is taken as it is, rounded or not.
        self.assertEqual(ref.Config(d_model=1280, d_ffn=5120, d_low=400,
                                    d_wide=6470).resolved_d_wide(), 6470)


class MoeOptionsTest(unittest.TestCase):
    """The issue-12 conventions (notes/moe_options_spec.md)."""

    def test_round_expert_width(self):
        cases = [(1336.888, 1344), (1311.9, 1280), (64.0, 64), (95.9, 64), (96.0, 128),
                 (63.9, 64), (60.44, 64), (20.4, 24), (19.9, 16), (20.0, 24), (5.0, 8),
                 (3.0, 8), (0.5, 8), (-3.0, 8)]
        for raw, expected in cases:
            self.assertEqual(ref.round_expert_width(raw), expected, raw)

    def test_resolved_d_wide_rounding(self):
        # d=256, d_ffn=1024, r=64: raw = (3·256·1024 − 64·256) / (64 + 512) = 1336.9 → 1344.
        cfg = ref.Config(d_model=256, d_ffn=1024, d_low=64)
        self.assertAlmostEqual(cfg.parameter_matched_d_wide(), 770048 / 576, places=9)
        self.assertEqual(cfg.resolved_d_wide(), 1344)
        # Matched to d_expert = d_ffn / G: G=2 → w=512, raw 654.2 → 640.
        self.assertEqual(ref.Config(d_model=256, d_ffn=1024, d_low=64,
                                    granularity=2).resolved_d_wide(), 640)
        # An explicit d_expert wins over d_ffn / G: w=256 → raw 325.8 → 320.
        self.assertEqual(ref.Config(d_model=256, d_ffn=1024, d_low=64, granularity=2,
                                    d_expert=256).resolved_d_wide(), 320)
        # Small raw: d=16, w=12, r=8: (576 − 128) / 40 = 11.2 → 8; d=32, w=12, r=16:
        # (1152 − 512) / 80 = 8 → 8; d=16, w=8, r=4: (384 − 64) / 36 = 8.9 → 8;
        # d=32, w=10, r=4: (960 − 128) / 68 = 12.2 → 16; the parity ctest shape (32, 48, r=8):
        # 60.4 → 64.
        for d, w, r, raw, expected in ((16, 12, 8, 11.2, 8), (32, 12, 16, 8.0, 8),
                                       (16, 8, 4, 8.89, 8), (32, 10, 4, 12.24, 16),
                                       (32, 48, 8, 60.44, 64)):
            cfg = ref.Config(d_model=d, d_ffn=w, d_low=r)
            self.assertAlmostEqual(cfg.parameter_matched_d_wide(), raw, places=1)
            self.assertEqual(cfg.resolved_d_wide(), expected, (d, w, r))

    def test_granularity_resolution_keeps_parameter_count(self):
        # n·G experts of width d_ffn/G, K·G selected: routed parameters unchanged.
        base = tiny_config("moe")
        fine = tiny_config("moe", granularity=2)
        self.assertEqual((fine.routed_experts(), fine.routed_top_k(),
                          fine.resolved_d_expert()), (8, 4, 3))
        self.assertEqual((base.routed_experts(), base.routed_top_k(),
                          base.resolved_d_expert()), (4, 2, 6))
        count = lambda cfg: sum(math.prod(s) for n, s in ref.parameter_shapes(cfg).items()
                                if ".experts." in n)
        self.assertEqual(count(base), count(fine))
        shapes = ref.parameter_shapes(fine)
        self.assertEqual(shapes["layers.0.ffn.router.weight"], (8, 8))
        self.assertEqual(shapes["layers.0.ffn.experts.7.w_o"], (3, 8))

    def test_parameter_names_of_the_options(self):
        cfg = tiny_config("aoe", n_shared_experts=2, d_shared=3, expert_bias_rate=0.01)
        shapes = ref.parameter_shapes(cfg)
        self.assertEqual(shapes["layers.1.ffn.shared.w_g"], (8, 6))
        self.assertEqual(shapes["layers.1.ffn.shared.w_p"], (8, 6))
        self.assertEqual(shapes["layers.1.ffn.shared.w_o"], (6, 8))
        self.assertEqual(shapes["layers.1.ffn.expert_bias"], (4,))
        params = ref.init_parameters(cfg, seed=1)
        b = params["layers.1.ffn.expert_bias"]
        self.assertEqual(b.abs().max().item(), 0.0)  # init 0
        self.assertFalse(b.requires_grad)
        self.assertFalse(ref.takes_weight_decay("layers.1.ffn.expert_bias"))
        self.assertTrue(ref.takes_weight_decay("layers.1.ffn.shared.w_o"))
        # The options off: no extra parameters at all.
        self.assertFalse(any("shared" in n or "expert_bias" in n
                             for n in ref.parameter_shapes(tiny_config("aoe"))))
        # Dense ignores the routed-expert options.
        self.assertEqual(ref.parameter_shapes(tiny_config("dense")),
                         ref.parameter_shapes(tiny_config("dense", n_shared_experts=2,
                                                          expert_bias_rate=0.01)))

    def test_sigmoid_is_router_moe_only(self):
        with self.assertRaises(AssertionError):
            tiny_config("aoe", router_score="sigmoid")

    def layer_input(self, cfg, seed=1, N=9):
        x = torch.randn(N, cfg.d_model, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(seed))
        return x

    def test_sigmoid_gate_weights_and_affinities(self):
        cfg = tiny_config("moe", router_score="sigmoid")
        params = ref.init_parameters(cfg, seed=2, dtype=torch.float64)
        x = self.layer_input(cfg)
        prefix = "layers.0.ffn."
        routing = ref.route(x, params, prefix, cfg)
        s = torch.sigmoid(x @ params[prefix + "router.weight"])
        # Selection on σ(logits) (the same order as on the logits), weights s[I] / Σ_K s[I].
        indices, _ = ref.top_k_lower_index_wins(s, cfg.top_k)
        self.assertTrue(torch.equal(routing.indices, indices))
        torch.testing.assert_close(routing.gates.sum(-1), torch.ones(9, dtype=torch.float64),
                                   rtol=0, atol=1e-15)
        selected = s.gather(1, indices)
        torch.testing.assert_close(routing.gates, selected / selected.sum(-1, keepdim=True),
                                   rtol=0, atol=0)
        # q = s / Σ_n s feeds P (not a softmax of the logits, not σ unnormalised).
        _, record = ref.routed_ffn(x, params, prefix, cfg)
        q = s / s.sum(-1, keepdim=True)
        torch.testing.assert_close(record.affinities, q)
        counts = torch.bincount(indices.reshape(-1), minlength=cfg.n_experts).double()
        expected_aux = cfg.aux_loss_coeff * cfg.n_experts * ((counts / 9) * q.mean(0)).sum()
        self.assertAlmostEqual(record.aux_loss.item(), expected_aux.item(), places=14)
        expected_ent = -(q * q.log()).sum(-1).mean()
        self.assertAlmostEqual(record.ent_conf().item(), expected_ent.item(), places=14)

    def test_bias_changes_selection_not_gate_weights(self):
        for ffn, score in (("moe", "softmax"), ("moe", "sigmoid"), ("aoe", "softmax")):
            cfg = tiny_config(ffn, router_score=score, expert_bias_rate=0.01)
            params = ref.init_parameters(cfg, seed=2, dtype=torch.float64)
            x = self.layer_input(cfg)
            prefix = "layers.0.ffn."
            bias = params[prefix + "expert_bias"]
            plain = ref.route(x, params, prefix, cfg)  # bias 0
            # A constant bias shifts every score alike: the same selection and weights, bit
            # for bit.
            with torch.no_grad():
                bias.fill_(5.0)
            shifted = ref.route(x, params, prefix, cfg)
            self.assertTrue(torch.equal(shifted.indices, plain.indices))
            self.assertTrue(torch.equal(shifted.gates, plain.gates))
            # A large bias on expert 3 makes every token select it, and moves nothing else:
            # the weights are those of the unbiased scores at the new selection.
            with torch.no_grad():
                bias.copy_(torch.tensor([0.0, 0.0, 0.0, 100.0]))
            biased = ref.route(x, params, prefix, cfg)
            self.assertTrue((biased.indices[:, 0] == 3).all())
            self.assertFalse(torch.equal(biased.indices, plain.indices))
            s = plain.logits if not (ffn == "moe" and score == "sigmoid") else \
                torch.sigmoid(plain.logits)
            selected = s.gather(1, biased.indices)
            if score == "sigmoid":
                expected = selected / selected.sum(-1, keepdim=True)
            else:
                expected = torch.softmax(selected, dim=-1)
            torch.testing.assert_close(biased.gates, expected, rtol=0, atol=0)
            # The aux loss's P uses the unbiased scores too; only f follows the selection.
            _, record = ref.routed_ffn(x, params, prefix, cfg)
            with torch.no_grad():
                bias.zero_()
            _, record0 = ref.routed_ffn(x, params, prefix, cfg)
            torch.testing.assert_close(record.affinities, record0.affinities, rtol=0, atol=0)

    def test_bias_zero_is_bit_identical_to_no_bias(self):
        # rate > 0 with b = 0 (the init): selection on s + 0 = s, the same model bit for bit.
        for ffn in ("moe", "aoe"):
            cfg0 = tiny_config(ffn)
            cfg1 = tiny_config(ffn, expert_bias_rate=0.01)
            p1 = ref.init_parameters(cfg1, seed=3, dtype=torch.float64)
            p0 = {n: t.detach().clone().requires_grad_(True) for n, t in p1.items()
                  if not ref.is_expert_bias(n)}
            tokens, targets = tiny_batch(cfg0, seed=5)
            l0 = ref.forward(p0, tokens, targets, cfg0)[0]
            l1 = ref.forward(p1, tokens, targets, cfg1)[0]
            self.assertEqual(l0.item(), l1.item())
            l0.backward()
            l1.backward()
            for n in p0:
                self.assertTrue(torch.equal(p0[n].grad, p1[n].grad), n)

    def test_bias_update_rule_by_hand(self):
        # loads [3, 1, 2, 2]: mean 2 → signs −1, +1, 0 (sign(0) = 0), 0.
        bias = torch.tensor([0.5, -0.25, 0.1, 0.0], dtype=torch.float32)
        new = ref.expert_bias_update(bias, torch.tensor([3, 1, 2, 2]), 0.001)
        self.assertEqual(new.dtype, torch.float32)
        # In double from the stored f32 values, then rounded once to f32.
        b64 = bias.double()
        expected = torch.stack([b64[0] - 0.001, b64[1] + 0.001, b64[2], b64[3]]).float()
        self.assertTrue(torch.equal(new, expected))
        self.assertEqual(new[2].item(), bias[2].item())  # untouched at the mean
        self.assertEqual(new[3].item(), 0.0)
        # A mean that is not an integer: loads [1, 2, 2] → mean 5/3: +, −, −.
        new = ref.expert_bias_update(torch.zeros(3), [1, 2, 2], 0.125)
        self.assertEqual(new.tolist(), [0.125, -0.125, -0.125])
        # The pure function does not touch its input.
        self.assertEqual(bias.tolist(), torch.tensor([0.5, -0.25, 0.1, 0.0]).tolist())
        # Rounding happens once, on the double sum: f32(0.1) + 1e-9 in double rounds back to
        # f32(0.1) (1e-9 is below half an f32 ulp of 0.1, ~3.7e-9).
        new = ref.expert_bias_update(torch.tensor([0.1, 0.0]), [0, 2], 1e-9)
        self.assertEqual(new[0].item(), torch.tensor(0.1).item())
        self.assertEqual(new[1].item(), torch.tensor(-1e-9).item())

    def test_bias_update_over_a_step(self):
        # The load is summed over the step's micro-batches; each layer has its own bias.
        cfg = tiny_config("moe", expert_bias_rate=0.25, n_layers=2)
        params = ref.init_parameters(cfg, seed=3, dtype=torch.float64)
        micro = [ref.forward(params, *tiny_batch(cfg, seed=s), cfg)[3] for s in (5, 6)]
        loads = ref.step_loads(micro)
        for l in range(2):
            self.assertEqual(loads[l].tolist(),
                             (micro[0][l].counts + micro[1][l].counts).tolist())
            self.assertEqual(loads[l].sum().item(), 2 * 2 * cfg.seq_len * cfg.top_k)
        ref.apply_expert_bias_updates(params, loads, cfg)
        for l in range(2):
            mean = loads[l].double().mean()
            expected = 0.25 * torch.sign(mean - loads[l].double())
            self.assertEqual(params[f"layers.{l}.ffn.expert_bias"].tolist(), expected.tolist())
        # AdamW leaves the bias alone, gradient or not, weight decay or not.
        opt = ref.AdamW(params)
        before = params["layers.0.ffn.expert_bias"].clone()
        loss = ref.forward(params, *tiny_batch(cfg, seed=7), cfg)[0]
        loss.backward()
        opt.step(0.1)
        self.assertTrue(torch.equal(params["layers.0.ffn.expert_bias"], before))

    def test_z_loss_by_hand(self):
        # logsumexp([0, 0]) = ln 2, logsumexp([ln 3, 0]) = ln 4 = 2 ln 2:
        # z = c · (ln²2 + 4 ln²2) / 2 = 2.5 c ln²2.
        logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]], dtype=torch.float64)
        z = ref.router_z_loss(logits, 0.01)
        self.assertAlmostEqual(z.item(), 0.01 * 2.5 * math.log(2.0) ** 2, places=15)
        # In the model: per layer on the router's raw logits (AoE: the norms), added to the
        # total like the aux loss, not part of the aux loss.
        for ffn in ("moe", "aoe"):
            for score in (("softmax", "sigmoid") if ffn == "moe" else ("softmax",)):
                cfg = tiny_config(ffn, router_score=score, z_loss_coeff=0.1)
                params = ref.init_parameters(cfg, seed=3, dtype=torch.float64)
                tokens, targets = tiny_batch(cfg, seed=5)
                total, ce, aux, records = ref.forward(params, tokens, targets, cfg)
                x = torch.randn(4, cfg.d_model, dtype=torch.float64)
                routing = ref.route(x, params, "layers.0.ffn.", cfg)
                _, record = ref.routed_ffn(x, params, "layers.0.ffn.", cfg)
                expected = 0.1 * torch.logsumexp(routing.logits, -1).pow(2).mean()
                self.assertAlmostEqual(record.z_loss.item(), expected.item(), places=14)
                if ffn == "aoe":
                    C = (x @ params["layers.0.ffn.w_down"]).view(4, cfg.n_experts, cfg.d_low)
                    torch.testing.assert_close(routing.logits, C.norm(dim=-1))
                else:
                    torch.testing.assert_close(routing.logits,
                                               x @ params["layers.0.ffn.router.weight"])
                aux_off = ref.forward(params, tokens, targets,
                                      tiny_config(ffn, router_score=score))[2]
                self.assertEqual(aux.item(), aux_off.item())
                self.assertAlmostEqual(total.item(),
                                       (ce + aux).item() + sum(r.z_loss.item() for r in records),
                                       places=13)
                self.assertAlmostEqual(ref.z_loss_total(records).item(),
                                       sum(r.z_loss.item() for r in records), places=15)

    def test_shared_experts_add_to_the_routed_output(self):
        # y = routed(x) + SwiGLU of width S·d_shared, which is the sum of the S SwiGLUs.
        for ffn in ("moe", "aoe"):
            cfg = tiny_config(ffn, n_shared_experts=2, d_shared=3)
            params = ref.init_parameters(cfg, seed=2, dtype=torch.float64)
            x = self.layer_input(cfg)
            prefix = "layers.0.ffn."
            y, _ = ref.routed_ffn(x, params, prefix, cfg)
            y_routed, _ = ref.routed_ffn(x, {n: t for n, t in params.items() if "shared" not in n},
                                         prefix, tiny_config(ffn))
            g, p, o = (params[prefix + "shared." + w] for w in ("w_g", "w_p", "w_o"))
            per_expert = sum(ref.swiglu(x, g[:, 3 * i:3 * i + 3], p[:, 3 * i:3 * i + 3],
                                        o[3 * i:3 * i + 3]) for i in range(2))
            torch.testing.assert_close(y, y_routed + per_expert, rtol=1e-12, atol=1e-14)


if __name__ == "__main__":
    unittest.main()
