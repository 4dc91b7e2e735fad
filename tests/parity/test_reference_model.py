"""Checks of the PyTorch oracle itself (reference_model.py), before anything is compared to it:
autograd gradients against f64 finite differences (torch.autograd.gradcheck) for every FFN
kind, and the conventions the parity check relies on (top-K ties, gate weights, aux loss, RoPE,
the AdamW formula). Run: /usr/bin/python3 tests/parity/test_reference_model.py
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

    def check_kind(self, ffn, **overrides):
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
        _, _, _, records = ref.forward(params, tokens, targets, cfg)
        for record in records:
            self.assertGreater(record.selection_margin().min().item(), 1e-4)
            # The selection must vary across tokens, or half the routing code is untested.
            self.assertGreater(len({tuple(r) for r in record.indices.tolist()}), 1)

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
        self.assertEqual(ref.Config(d_model=768, d_ffn=3072, d_low=256).resolved_d_wide(), 3840)
        self.assertEqual(ref.Config(d_model=1280, d_ffn=5120, d_low=400).resolved_d_wide(), 6469)


if __name__ == "__main__":
    unittest.main()
