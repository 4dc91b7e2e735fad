#!/usr/bin/env python3
"""NumpyRandomState (data/numpy_random.h) against numpy's own legacy RandomState: for fresh
random seeds (printed, so a failure can be replayed with --seed), the raw 32-bit stream and a
run of shuffles from one state must be identical. Sizes cover the masked rejection's edges:
1, 2, powers of two and their neighbours, and Megatron-sized arrays.

    check_numpy_random.py NUMPY_RANDOM_DUMP [--seed S]   (exit 0; 1 on a difference)
"""
import argparse
import random
import subprocess
import sys

try:
    import numpy
except ImportError:
    print("SKIP: numpy is not installed for this python3 (Debian: python3-numpy)")
    sys.exit(77)

SIZES = [1, 2, 3, 7, 8, 9, 255, 256, 257, 1000, 65535, 65536, 65537, 200003]
WORDS = 1000


def numpy_draws(seed):
    state = numpy.random.RandomState(seed)
    # randint over the whole uint32 range returns the raw words (numpy's next_uint32).
    words = state.randint(0, 2**32, size=WORDS, dtype=numpy.uint64).tolist()
    shuffles = []
    for n in SIZES:
        values = numpy.arange(n, dtype=numpy.int64)
        state.shuffle(values)
        shuffles.append(values.tolist())
    return words, shuffles


def ours(dump, seed):
    out = subprocess.run([dump, str(seed), str(WORDS)] + [str(n) for n in SIZES],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    return [int(w) for w in out[0].split()], [[int(v) for v in line.split()] for line in out[1:]]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dump")
    parser.add_argument("--seed", type=int, action="append")
    args = parser.parse_args()
    seeds = args.seed or [0, 1234, 2**32 - 1] + [random.randrange(2**32) for _ in range(3)]
    for seed in seeds:
        want_words, want_shuffles = numpy_draws(seed)
        got_words, got_shuffles = ours(args.dump, seed)
        if got_words != want_words:
            first = next(i for i, (a, b) in enumerate(zip(got_words, want_words)) if a != b)
            print(f"seed {seed}: word {first} is {got_words[first]}, numpy {want_words[first]}")
            return 1
        for n, got, want in zip(SIZES, got_shuffles, want_shuffles):
            if got != want:
                first = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
                print(f"seed {seed}: shuffle of {n}: position {first} is {got[first]}, "
                      f"numpy {want[first]}")
                return 1
        print(f"seed {seed}: {WORDS} words and shuffles of {len(SIZES)} sizes "
              f"({sum(SIZES)} elements) identical to numpy {numpy.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
