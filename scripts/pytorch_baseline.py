#!/usr/bin/python3
"""PyTorch eager speed baseline: the same model as aoetron's bench configs, trained the
straightforward way, so our tokens/s has a reference point.

    /usr/bin/python3 scripts/pytorch_baseline.py --ffn aoe --threads 2
    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 scripts/pytorch_baseline.py --ffn aoe --threads 2

Prints one JSON line: {"tokens_per_s", "step_s", "ffn", "threads", "torch_version", ...}.

The model is tests/parity/reference_model.py (the parity oracle), f32, in plain eager PyTorch:
matmul + masked softmax attention (PyTorch 1.13 has no scaled_dot_product_attention), and for
MoE/AoE each expert runs only on the tokens that chose it (nonzero → index_select → expert →
index_add), not a dense all-experts compute. Training is torch.optim.AdamW (β 0.9/0.95, weight
decay 0.1 except norm weights) with global-norm clipping at 1.0, as the bench configs do.
Synthetic tokens, generated before timing. A few warm-up steps, then the mean of timed steps.

BLAS: Debian's python3-torch does its f32 GEMMs in the system OpenBLAS. MACHINE.md reports
that OpenBLAS misdetects this CPU unless OPENBLAS_CORETYPE=SkylakeX is set before the library
loads (in one session here it detected "Cooperlake" by itself, 2048³ sgemm ~400 GFLOP/s on two
threads; with OPENBLAS_CORETYPE=Haswell, as some shells here export, ~230). The script sets
nothing: run as is, it reports what a user gets; run with the variable, the tuned figure. The
JSON gives the variable and the kernel family OpenBLAS actually chose (openblas_corename).
Must run with /usr/bin/python3 (the interpreter that has python3-torch).
"""

import argparse
import ctypes
import json
import os
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description="PyTorch eager training-throughput baseline")
    p.add_argument("--ffn", choices=["dense", "moe", "aoe"], default="aoe")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    # The bench shape (configs/bench_*_small.textproto).
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--d_model", type=int, default=256)
    p.add_argument("--n_layers", type=int, default=4)
    p.add_argument("--n_heads", type=int, default=4)
    p.add_argument("--d_ffn", type=int, default=1024)
    p.add_argument("--n_experts", type=int, default=8)
    p.add_argument("--top_k", type=int, default=2)
    p.add_argument("--d_low", type=int, default=64)
    p.add_argument("--d_wide", type=int, default=0, help="0: AOE.md Eq. 5, rounded to a multiple of 64 (1344)")
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--aux", type=float, default=0.01)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def loaded_blas():
    """The BLAS shared libraries this process mapped (what torch's GEMMs really call), and, for
    OpenBLAS, the kernel family it chose (openblas_get_corename): the direct evidence of whether
    the CPU was detected, whatever the environment says."""
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({os.path.realpath(line.split()[-1]) for line in f
                           if "blas" in line.lower() and "/" in line})
    except OSError:
        return [], None
    corename = None
    for lib in libs:
        if "openblas" in os.path.basename(lib):
            try:
                handle = ctypes.CDLL(lib)
                handle.openblas_get_corename.restype = ctypes.c_char_p
                corename = handle.openblas_get_corename().decode()
            except (OSError, AttributeError):
                pass
    return libs, corename


def main():
    args = parse_args()
    # Thread counts must be in the environment before torch (and its OpenMP and OpenBLAS)
    # load; torch.set_num_threads below covers torch's own intra-op pool.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    try:
        import torch
    except ImportError as error:
        sys.exit(f"pytorch_baseline: torch is not importable by {sys.executable} ({error}); "
                 "run with /usr/bin/python3 (Debian's python3-torch)")
    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                    "parity"))
    import reference_model as ref

    cfg = ref.Config(vocab_size=args.vocab, d_model=args.d_model, n_layers=args.n_layers,
                     n_heads=args.n_heads, seq_len=args.seq, d_ffn=args.d_ffn, ffn=args.ffn,
                     n_experts=args.n_experts, top_k=args.top_k, d_low=args.d_low,
                     d_wide=args.d_wide, aux_loss_coeff=args.aux)
    cfg.check()
    params = ref.init_parameters(cfg, args.seed, torch.float32)
    decay = [t for n, t in params.items() if ref.takes_weight_decay(n)]
    no_decay = [t for n, t in params.items() if not ref.takes_weight_decay(n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    all_params = list(params.values())

    gen = torch.Generator().manual_seed(args.seed + 1)
    total_steps = args.warmup + args.steps
    batches = [(torch.randint(0, cfg.vocab_size, (args.batch, args.seq), generator=gen),
                torch.randint(0, cfg.vocab_size, (args.batch, args.seq), generator=gen))
               for _ in range(total_steps)]

    step_times, losses = [], []
    for step, (tokens, targets) in enumerate(batches):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        total, ce, _, _ = ref.forward(params, tokens, targets, cfg)
        total.backward()
        torch.nn.utils.clip_grad_norm_(all_params, 1.0)
        optimizer.step()
        loss = ce.item()
        elapsed = time.perf_counter() - start
        losses.append(loss)
        if step >= args.warmup:
            step_times.append(elapsed)

    step_s = statistics.mean(step_times)
    blas_libs, corename = loaded_blas()
    print(json.dumps({
        "tokens_per_s": args.batch * args.seq / step_s,
        "step_s": step_s,
        "step_s_min": min(step_times),
        "ffn": args.ffn,
        "threads": args.threads,
        "torch_version": torch.__version__,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "openblas_corename": corename,
        "blas": blas_libs,
        "d_wide": cfg.resolved_d_wide() if args.ffn == "aoe" else None,
        "batch": args.batch, "seq": args.seq, "warmup_steps": args.warmup,
        "timed_steps": args.steps, "final_loss": losses[-1],
    }))


if __name__ == "__main__":
    main()
