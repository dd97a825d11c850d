// The block's dynamic shared memory (a kernel's `extern __shared__` array) for the CPU-thread
// runs of CUDA kernel sources (tests/cpp/test_*_emulated.cpp): one static array of `capacity`
// bytes (room for the largest launch) and `guard` bytes past it. Before each block,
// tests/cpp/block_emu.h's BlockRunner fills the launch's dynamic size with all-ones bytes
// (NaN as float and as double: a read of a value no thread of this block wrote shows as NaN)
// and the rest of the array with the guard byte; after the block, every byte past the
// launch's size must still be the guard byte (else a write past the launch's size).
// A guard byte of 0xff makes a read past the launch's size NaN as well; another value also
// catches a stray write of an all-ones value there.
//
// Define the array once per test program, at namespace scope, under the name and element
// type of the kernels' extern declaration:
//   NOFA_EMU_DYNAMIC_SHARED(unsigned char, smem_raw, 232448, 4096, 0xff)
#pragma once
#include <cstddef>
#include <cstring>

namespace emu {
struct DynamicShared {
  unsigned char* base = nullptr;  // null: the program's kernels use no dynamic shared memory
  size_t capacity = 0, guard = 0;
  unsigned char guard_byte = 0xff;

  // The state a block starts in, for a launch of `bytes` (<= capacity).
  void fill(size_t bytes) const {
    std::memset(base, 0xff, bytes);
    std::memset(base + bytes, guard_byte, capacity + guard - bytes);
  }
  // Whether nothing past the launch's `bytes` changed since fill(bytes).
  bool intact(size_t bytes) const {
    for (size_t k = bytes; k < capacity + guard; ++k) {
      if (base[k] != guard_byte) return false;
    }
    return true;
  }
};
inline DynamicShared dynamic_shared;
}  // namespace emu

#define NOFA_EMU_DYNAMIC_SHARED(type, name, capacity_bytes, guard_bytes, guard_value)   \
  namespace nofa {                                                                      \
  namespace {                                                                           \
  alignas(16) type name[(capacity_bytes) + (guard_bytes)];                              \
  [[maybe_unused]] const bool name##_registered =                                       \
      (emu::dynamic_shared = {reinterpret_cast<unsigned char*>(name), (capacity_bytes), \
                              (guard_bytes), (guard_value)},                            \
       true);                                                                           \
  }                                                                                     \
  }
