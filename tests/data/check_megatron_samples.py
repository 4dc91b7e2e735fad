#!/usr/bin/env python3
"""End to end: the samples data::BlendedGptDataset reads (blended_samples_dump) against
Megatron-Core's rules applied to the same files by the oracle of check_megatron_rules.py — the
split of each dataset, the samples a blend asks of each, each dataset's document, sample and
shuffle indices, the blending index, and the tokens of every sample. The datasets are plain
Megatron .bin/.idx pairs written here byte by byte (random lengths, some empty sequences, random
tokens), fresh every run; the seed is printed for --seed.

    check_megatron_samples.py BLENDED_SAMPLES_DUMP [--seed S]
"""
import argparse
import importlib.util
import math
import os
import random
import struct
import subprocess
import sys
import tempfile

try:
    import numpy
except ImportError:
    print("SKIP: numpy is not installed for this python3 (Debian: python3-numpy)")
    sys.exit(77)

_spec = importlib.util.spec_from_file_location(
    "rules", os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_megatron_rules.py"))
rules = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rules)


def write_megatron_dataset(prefix, sequences):
    """Megatron's MMIDIDX layout: header, version 1, dtype code 8 (uint16), counts, int32
    lengths, int64 byte pointers, int64 document indices 0..S (one sequence per document)."""
    with open(prefix + ".bin", "wb") as out:
        for tokens in sequences:
            out.write(numpy.array(tokens, dtype=numpy.uint16).tobytes())
    lengths = numpy.array([len(s) for s in sequences], dtype=numpy.int32)
    pointers = numpy.concatenate(([0], numpy.cumsum(lengths[:-1], dtype=numpy.int64) * 2))
    with open(prefix + ".idx", "wb") as out:
        out.write(b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + struct.pack("<B", 8))
        out.write(struct.pack("<Q", len(sequences)) + struct.pack("<Q", len(sequences) + 1))
        out.write(lengths.tobytes() + pointers.astype(numpy.int64).tobytes())
        out.write(numpy.arange(len(sequences) + 1, dtype=numpy.int64).tobytes())


def dataset_samples(sequences, ratios, split, seq_length, num_samples, seed):
    """Megatron-Core's GPTDataset over one dataset's split: sample j's tokens, lazily."""
    begin, end = rules.split_ranges(len(sequences), ratios)[split]
    lengths = [len(s) for s in sequences[begin:end]]
    _, _, documents, positions, offsets, shuffle = rules.sample_index(
        seed, seq_length, num_samples, lengths)

    def sample(j):
        s = shuffle[j]
        p, o = positions[s], offsets[s]
        tokens = []
        while True:
            sequence = sequences[begin + documents[p]]
            if p == positions[s + 1]:
                return tokens + list(sequence[o:offsets[s + 1] + 1])
            tokens += list(sequence[o:])
            p, o = p + 1, 0
    return sample, len(shuffle)


def megatron_samples(datasets, weights, ratios, split, seq_length, num_samples, seed, count):
    if len(datasets) == 1:
        sample, size = dataset_samples(datasets[0], ratios, split, seq_length, num_samples, seed)
        return num_samples or size, [sample(i % size) for i in range(count)]
    requests = rules.blend_requests(num_samples, weights)
    readers = [dataset_samples(d, ratios, split, seq_length, build, seed)[0]
               for d, (_, build) in zip(datasets, requests)]
    size = sum(target for target, _ in requests)
    which, sample_ids = rules.blending_index(min(size, count), weights)
    return size, [readers[which[i]](sample_ids[i]) for i in range(min(size, count))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dump")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in range(8):
            n_datasets = 1 if case < 2 else rng.randint(2, 4)
            datasets, prefixes = [], []
            for d in range(n_datasets):
                sequences = [[rng.randrange(65000) for _ in range(
                    rng.choice([0, rng.randint(1, 50), rng.randint(50, 400)]))]
                    for _ in range(rng.randint(20, 120))]
                sequences[0] = sequences[0] or [1, 2, 3]
                prefix = os.path.join(tmp, f"case{case}_d{d}")
                write_megatron_dataset(prefix, sequences)
                datasets.append(sequences)
                prefixes.append(prefix)
            weights = [rng.choice([rng.randint(1, 100), round(rng.uniform(0.05, 1), 2)])
                       for _ in datasets]
            ratios = rng.choice([[969, 30, 1], [949, 50, 1], [90, 10, 0], [1, 1, 1]])
            split = rng.choice(["train", "valid"]) if ratios[1] else "train"
            seq_length = rng.choice([8, 32, 100])
            num_samples = rng.choice([rng.randint(1, 300), rng.randint(300, 3000)])
            data_seed = rng.randrange(2**32)
            count = 400
            split_number = {"train": 0, "valid": 1}[split]
            if any(sum(map(len, d[slice(*rules.split_ranges(len(d), ratios)[split_number])])) == 0
                   for d in datasets):
                continue  # an empty split: both sides refuse it (the unit tests check the error)
            want_size, want = megatron_samples(datasets, weights, ratios, split_number,
                                               seq_length, num_samples, data_seed, count)
            command = [args.dump, os.path.join(tmp, "cache"), split, seq_length, num_samples,
                       data_seed, ",".join(map(str, ratios)), min(count, want_size)]
            for w, p in zip(weights, prefixes):
                command += [repr(w), p]
            out = subprocess.run([str(c) for c in command], capture_output=True, text=True)
            if out.returncode != 0:
                print(f"FAIL case {case}: {out.stderr.strip()} (replay with --seed {seed})")
                return 1
            lines = out.stdout.splitlines()
            got_size = int(lines[0])
            got = [[int(t) for t in line.split()] for line in lines[1:]]
            description = (f"case {case}: {n_datasets} dataset(s), weights {weights}, split "
                           f"{ratios} {split}, L {seq_length}, N {num_samples}, seed {data_seed}")
            if got_size != want_size:
                print(f"FAIL {description}: {got_size} samples, Megatron-Core {want_size}")
                return 1
            for i, (a, b) in enumerate(zip(got, want)):
                if a != b:
                    print(f"FAIL {description}: sample {i} differs (replay with --seed {seed})")
                    return 1
            if len(got) != min(count, want_size):
                print(f"FAIL {description}: {len(got)} samples printed")
                return 1
            checked += len(got)
    print(f"seed {seed}: {checked} blended samples token for token as Megatron-Core's rules "
          f"read them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
