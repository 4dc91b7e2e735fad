// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected, initial value and final xor ~0): the
// checksum of every stored piece of a checkpoint. The same function as iSCSI's and ext4's
// metadata checksums, so any crc32c implementation (e.g. Python's `crc32c` package, or the
// reference in tests/checkpoint/checkpoint_format.py) recomputes it.
//
// Uses the SSE4.2 crc32 instruction when the build targets it (8 bytes per instruction; measured
// in docs/checkpoint.md, far above disk rates), a table otherwise. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace aoetron::checkpoint {

// The CRC-32C of `size` bytes at `data`.
uint32_t Crc32c(const void* data, size_t size);

// The CRC-32C of the concatenation A·B, given crc = Crc32c(A): Crc32cExtend(Crc32c(A), B, n)
// == Crc32c(A·B).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t size);

}  // namespace aoetron::checkpoint
