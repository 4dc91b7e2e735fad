#!/usr/bin/env bash
# The programs that read a trained checkpoint, on the prepared KJV corpus (skipped, exit 77, when
# scripts/prepare_corpus.sh has not built it): aoetron-eval against aoetron-train's own held-out
# loss, and aoetron-generate's determinism across runs and layouts (docs/training.md).
#
#   run_checkpoint_programs.sh MPIEXEC AOETRON_TRAIN AOETRON_EVAL AOETRON_GENERATE REPO_ROOT
#
# 1. A tiny AoE model trains 4 steps under ep2 (np 2), saving step_4 and evaluating after it.
#    Its config sets train.grad_accum_steps beside the global batch (as configs written out in
#    full do): right for 2 ranks, and the programs below must not refuse it on 1 rank.
# 2. aoetron-eval on the same layout (np 2, ep 2): the same val_loss, bit for bit (same kernels,
#    same order).
# 3. aoetron-eval in one process (the checkpoint resharded): within 1e-5 relative, the layout
#    tests' fp32 tolerance (another reduction order inside the expert exchange).
# 4. bits per byte = loss · tokens / (ln 2 · bytes), with tokens = eval_steps × micro-batch × seq.
# 5. A missing checkpoint is an error naming it (exit 1).
# 6. aoetron-generate (temperature 0.9, top-k 20, top-p 0.95, 24 tokens, seed 5): the same ids
#    twice in one process, and on ep2 (np 2) and tp2 (np 2); another seed gives other ids; a bad
#    --top_p is an error naming it.
set -uo pipefail
mpiexec=$1 train=$2 eval=$3 generate=$4 root=$5
prefix=$root/corpora/datasets/kjv_kjv8k
if [[ ! -e $prefix.manifest ]]; then
  echo "SKIP: $prefix missing (scripts/prepare_corpus.sh --kjv-only)"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
mpirun=("$mpiexec" --oversubscribe --allow-run-as-root)
fail() { echo "FAIL: $*" >&2; exit 1; }

"${mpirun[@]}" -np 2 "$train" --set model.vocab_size=8192 --set model.d_model=32 \
    --set model.n_layers=2 --set model.n_heads=2 --set model.seq_len=64 --set model.d_ffn=64 \
    --set model.ffn=aoe --set model.n_experts=4 --set model.d_low=8 --set parallel.ep=2 \
    --set data.source=indexed --set "data.datasets=$prefix" --set data.split=969,30,1 \
    --set train.steps=4 --set train.micro_batch_size=2 --set train.global_batch_size=4 \
    --set train.grad_accum_steps=1 \
    --set train.eval_interval=4 --set train.eval_steps=3 --set schedule.warmup_steps=1 \
    --set logging.progress=never --set checkpoint.interval=4 --set "checkpoint.dir=$work/ckpt" \
    --set "logging.metrics_file=$work/metrics.jsonl" --set parallel.threads=1 \
    --set logging.sample_tokens=8 --set "logging.sample_prompt=In the beginning" \
    > "$work/train.log" 2>&1 || { cat "$work/train.log"; fail "training failed"; }
grep -q "^step 4 sample: In the beginning" "$work/train.log" ||
  { cat "$work/train.log"; fail "no sample printed after the evaluation"; }
grep "sample:" "$work/train.log"

"${mpirun[@]}" -np 2 "$eval" --checkpoint "$work/ckpt" --set parallel.ep=2 > "$work/same.json" \
    2> "$work/same.err" || { cat "$work/same.err"; fail "aoetron-eval (np 2, ep 2) failed"; }
"$eval" --checkpoint "$work/ckpt/step_4" > "$work/one.json" 2> "$work/one.err" ||
  { cat "$work/one.err"; fail "aoetron-eval (one process) failed"; }
cat "$work/same.json" "$work/one.json"

python3 - "$work/metrics.jsonl" "$work/same.json" "$work/one.json" <<'PY' || fail "mismatch"
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
val = [r["val_loss"] for r in rows if r.get("step") == 4 and r.get("val_loss") is not None][-1]
# The trainer logs the largest peak resident set of any rank: more than the 4 ranks' model alone.
assert all(r.get("peak_rss_bytes", 0) > 10 * 2**20 for r in rows), [r.get("peak_rss_bytes") for r in rows]
same, one = (json.loads(open(p).read()) for p in sys.argv[2:4])
print(f"trainer val_loss {val!r}; aoetron-eval np2 ep2 {same['loss']!r}, one process {one['loss']!r}")
assert same["loss"] == val, "the same layout must give the trainer's number bit for bit"
assert abs(one["loss"] - val) <= 1e-5 * abs(val), "resharded evaluation differs"
# The JSON numbers carry 9 significant digits: recomputed ratios agree to ~5e-9 relative.
for r in (same, one):
    assert r["step"] == 4 and r["eval_steps"] == 3 and r["tokens"] == 3 * 2 * 64, r
    assert r["bytes"] > 0, r
    bpb = r["loss"] * r["tokens"] / (math.log(2) * r["bytes"])
    assert abs(r["bits_per_byte"] - bpb) <= 2e-8 * bpb, (r["bits_per_byte"], bpb)
    assert abs(r["bits_per_token"] - r["loss"] / math.log(2)) <= 2e-8 * r["bits_per_token"]
print(f"bits per byte {one['bits_per_byte']:.4f} over {one['bytes']} bytes of {one['tokens']} tokens")
PY

if "$eval" --checkpoint "$work/nowhere" > /dev/null 2> "$work/bad.err"; then
  fail "a missing checkpoint was accepted"
fi
grep -q "nowhere" "$work/bad.err" || { cat "$work/bad.err"; fail "the error does not name the path"; }
echo "OK: $(cat "$work/bad.err")"

sample=(--checkpoint "$work/ckpt" --prompt "In the beginning God" --max_new_tokens 24
        --temperature 0.9 --top_k 20 --top_p 0.95 --seed 5 --json)
"$generate" "${sample[@]}" > "$work/g1.json" 2> "$work/g.err" || { cat "$work/g.err"; fail "generate"; }
"$generate" "${sample[@]}" > "$work/g2.json" 2> "$work/g.err" || { cat "$work/g.err"; fail "generate"; }
for layout in parallel.ep=2 parallel.tp=2; do
  "${mpirun[@]}" -np 2 "$generate" "${sample[@]}" --set "$layout" > "$work/g_$layout.json" \
      2> "$work/g.err" || { cat "$work/g.err"; fail "generate with $layout"; }
done
"$generate" "${sample[@]}" --seed 6 > "$work/g_seed6.json" 2> "$work/g.err" ||
  { cat "$work/g.err"; fail "generate seed 6"; }
cat "$work/g1.json"
python3 - "$work" <<'PY' || fail "generation is not deterministic"
import json, sys
d = sys.argv[1]
load = lambda name: json.loads(open(f"{d}/{name}").read())
first = load("g1.json")
assert len(first["ids"]) == 24 and len(first["prompt_ids"]) >= 1, first
assert first["text"].startswith("In the beginning God"), first["text"]
for other in ("g2.json", "g_parallel.ep=2.json", "g_parallel.tp=2.json"):
    assert load(other)["ids"] == first["ids"], (other, load(other)["ids"], first["ids"])
assert load("g_seed6.json")["ids"] != first["ids"], "another seed gave the same sample"
print("generate: the same 24 ids twice, on ep2 and on tp2; seed 6 differs")
PY
if "$generate" "${sample[@]}" --top_p 0 > /dev/null 2> "$work/bad.err"; then
  fail "--top_p 0 was accepted"
fi
grep -q -- "--top_p" "$work/bad.err" || { cat "$work/bad.err"; fail "the error does not name --top_p"; }
echo "OK: $(cat "$work/bad.err")"
