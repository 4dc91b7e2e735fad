#!/usr/bin/env python3
"""The Megatron-Core sample rules of data/ (numpy_sum.h, dataset_split.h, blending.h,
gpt_sample_index.h) against an oracle that is not our code: numpy itself for sums, normalisation
and shuffles, and Megatron-Core's rules (megatron/core/datasets, as docs/data.md states them)
written out below in plain Python, whose floats round every operation (no FMA). Fresh random
cases every run; the seed is printed so that a failure can be replayed with --seed.

With --fma-dump, the same questions go to a second build of the same sources compiled with FMA
contraction forced on: every answer must be identical, bit for bit.

    check_megatron_rules.py MEGATRON_RULES_DUMP [--fma-dump DUMP] [--seed S]
"""
import argparse
import math
import random
import subprocess
import sys

try:
    import numpy
except ImportError:
    print("SKIP: numpy is not installed for this python3 (Debian: python3-numpy)")
    sys.exit(77)


# ---- The oracle: Megatron-Core's rules ---------------------------------------------------------

def normalize(weights):
    w = numpy.array(weights, dtype=numpy.float64)
    return (w / numpy.sum(w)).tolist()


def split_ranges(n, ratios):
    """parse_and_normalize_split, convert_split_vector_to_split_matrix, then each split's
    [round(start · n), round(end · n)); an empty bookend builds nothing (here (0, 0))."""
    shares = normalize(ratios)
    ends = [0]
    for share in shares:
        ends.append(ends[-1] + share)
    ranges = []
    for start, end in zip(ends[:-1], ends[1:]):
        if end <= start:
            ranges.append((0, 0))
        else:
            ranges.append((int(round(start * float(n))), int(round(end * float(n)))))
    return ranges


def blend_requests(n, weights, surplus=0.005):
    """Per dataset: the samples the blend uses, ceil(n·w), and those its index is built for."""
    return [(math.ceil(n * w), math.ceil(math.ceil(n * w) * (1 + surplus)))
            for w in normalize(weights)]


def blending_index(size, weights):
    """The greedy blend over the twice-normalised weights; ties go to the lowest dataset."""
    shares = normalize(normalize(weights))
    taken = [0] * len(shares)
    datasets, samples = [], []
    for i in range(size):
        at = max(float(i), 1.0)
        errors = [share * at - taken[d] for d, share in enumerate(shares)]
        best = errors.index(max(errors))
        datasets.append(best)
        samples.append(taken[best])
        taken[best] += 1
    return datasets, samples


def sample_index(seed, seq_length, num_samples, lengths):
    """GPTDataset's indices over sequences 0 .. len(lengths)−1 (add_extra_token 1)."""
    tokens_per_epoch = sum(lengths)
    epochs = 1
    if num_samples > 0:
        while epochs * tokens_per_epoch < num_samples * seq_length + 1:
            epochs += 1
    separate = False
    before_last = 0
    if epochs > 1:
        before_last = ((epochs - 1) * tokens_per_epoch - 1) // seq_length
        per_epoch = (tokens_per_epoch - 1) // seq_length
        separate = num_samples - before_last < int(0.80 * per_epoch)
    state = numpy.random.RandomState(seed)
    documents = numpy.arange(len(lengths), dtype=numpy.int32)

    def shuffled_epochs(count):
        index = numpy.tile(documents, count).astype(numpy.int32)
        state.shuffle(index)
        return index

    if separate:
        document_index = numpy.concatenate((shuffled_epochs(epochs - 1), shuffled_epochs(1)))
    else:
        document_index = shuffled_epochs(epochs)
    total = (epochs * tokens_per_epoch - 1) // seq_length
    positions, offsets = [0], [0]
    p = o = 0
    for _ in range(total):
        remaining = seq_length + 1
        while remaining > 0:
            left = lengths[document_index[p]] - o
            if left >= remaining:
                o += remaining - 1
                remaining = 0
            else:
                remaining -= left
                p += 1
                o = 0
        positions.append(p)
        offsets.append(o)
    first = before_last if separate else total
    shuffle = numpy.arange(first, dtype=numpy.uint32)
    state.shuffle(shuffle)
    if first < total:
        rest = numpy.arange(first, total, dtype=numpy.uint32)
        state.shuffle(rest)
        shuffle = numpy.concatenate((shuffle, rest))
    return (epochs, int(separate), document_index.tolist(), positions, offsets,
            shuffle.tolist())


# ---- Questions ----------------------------------------------------------------------------------

def ask(dump, *args):
    return subprocess.run([dump] + [str(a) for a in args], check=True, capture_output=True,
                          text=True).stdout.splitlines()


def ints(line):
    return [int(v) for v in line.split()]


def random_weights(rng):
    kind = rng.randrange(4)
    n = rng.choice([1, 2, 3, 5, 7, 8, 9, 16, 17, 100, 129, 300])
    if kind == 0:
        return [rng.randint(1, 100) for _ in range(n)]
    if kind == 1:
        return [max(round(rng.uniform(0.01, 1.0), rng.randint(1, 3)), 0.001) for _ in range(n)]
    if kind == 2:
        return [rng.uniform(1e-3, 1e3) for _ in range(n)]
    return [rng.random() + 1e-9 for _ in range(n)]


def check(dumps, rng):
    failures = []
    counts = {"sums": 0, "splits": 0, "requests": 0, "blends": 0, "indices": 0}
    separate_seen = set()

    def same(what, want, got):
        if want != got:
            failures.append(f"{what}: want {want!r:.300}, got {got!r:.300}")

    for _ in range(60):
        values = random_weights(rng)
        text = [repr(v) for v in values]
        for dump in dumps:
            same(f"sum of {len(values)} values", float(numpy.sum(numpy.array(values))),
                 float(ask(dump, "sum", *text)[0]))
            same(f"normalize of {len(values)} values", normalize(values),
                 [float(v) for v in ask(dump, "normalize", *text)[0].split()])
        counts["sums"] += 1
    # Splits: the hand-checked cases of docs/data.md, then random ratios and counts.
    cases = [(1189, [949, 50, 1]), (1000, [969, 30, 1]), (10, [1, 1, 1]), (7, [1, 0, 0]),
             (100, [0, 1, 0])]
    cases += [(rng.randint(1, 100000), [rng.choice([0, rng.randint(1, 1000)]) or 1,
                                       rng.randint(0, 100), rng.randint(0, 10)])
              for _ in range(150)]
    for n, ratios in cases:
        want = split_ranges(n, ratios)
        for dump in dumps:
            same(f"split {ratios} of {n}", want,
                 [tuple(ints(line)) for line in ask(dump, "split", n, *ratios)])
        counts["splits"] += 1
    for _ in range(60):
        weights = random_weights(rng)[:20]
        n = rng.choice([1, 7, 1000, rng.randint(1, 10**7)])
        want = blend_requests(n, weights)
        for dump in dumps:
            same(f"requests {weights} of {n}", want,
                 [tuple(ints(line)) for line in ask(dump, "requests", n, *map(repr, weights))])
        counts["requests"] += 1
    # Blends: the weights whose ties an FMA would break differently, then random ones.
    blends = [[50, 30, 20], [0.1, 0.2, 0.7], [1, 2, 3, 4, 5], [1, 1], [3, 1]]
    blends += [random_weights(rng)[:8] for _ in range(10)]
    for weights in blends:
        size = 5000
        want = blending_index(size, weights)
        for dump in dumps:
            got = ask(dump, "blend", size, *map(repr, weights))
            same(f"blend {weights}", want, (ints(got[0]), ints(got[1])))
        counts["blends"] += 1
    for _ in range(40):
        lengths = [rng.choice([0, rng.randint(1, 40), rng.randint(1, 400)])
                   for _ in range(rng.randint(1, 60))]
        if sum(lengths) == 0:
            lengths[0] = 5
        seq_length = rng.choice([1, 7, 32, 128])
        per_epoch = max(1, (sum(lengths) - 1) // seq_length)
        num_samples = rng.choice([0, rng.randint(1, per_epoch),
                                  rng.randint(per_epoch, 6 * per_epoch)])
        seed = rng.randrange(2**32)
        try:
            want = sample_index(seed, seq_length, num_samples, lengths)
        except IndexError:
            continue  # fewer tokens than one sample: both sides refuse, checked by the unit tests
        if sum(lengths) <= seq_length and num_samples == 0:
            continue
        separate_seen.add(want[1])
        for dump in dumps:
            got = ask(dump, "index", seed, seq_length, num_samples, *lengths)
            got = (ints(got[0])[0], ints(got[0])[1], ints(got[1]), ints(got[2]), ints(got[3]),
                   ints(got[4]))
            same(f"index seed {seed} L {seq_length} N {num_samples} lengths {lengths}", want, got)
        counts["indices"] += 1
    if separate_seen != {0, 1}:
        failures.append(f"the random sample indices did not cover both a separate last epoch and "
                        f"none (seen {sorted(separate_seen)}); rerun")
    return failures, counts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dump")
    parser.add_argument("--fma-dump")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    dumps = [args.dump] + ([args.fma_dump] if args.fma_dump else [])
    if args.fma_dump and "fma" not in open("/proc/cpuinfo").read().split():
        print("note: this CPU has no FMA; the FMA build is not run")
        dumps = [args.dump]
    failures, counts = check(dumps, random.Random(seed))
    for failure in failures[:10]:
        print("FAIL:", failure)
    if failures:
        print(f"{len(failures)} difference(s); replay with --seed {seed}")
        return 1
    print(f"seed {seed}: identical to numpy {numpy.__version__} and the Megatron-Core rules: "
          + ", ".join(f"{v} {k}" for k, v in counts.items())
          + f" ({len(dumps)} build(s): plain" + (", FMA contraction forced on)" if len(dumps) > 1
                                                  else ")"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
