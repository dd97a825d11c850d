// Host stand-ins for the CUDA built-ins that the CPU-thread runs of CUDA kernel sources share
// (tests/cpp/test_*_emulated.cpp): thread and block indices, and __shfl_xor_sync as an
// exchange through memory between the 32 std::threads of a warp, with CUDA's `width` rule and
// a check that all 32 lanes take part with the same arguments (a mismatch counts in
// bad_shuffles). The runner sets thread_idx / block_idx in each std::thread, block_dim /
// grid_dim, and points warp_barrier[w] at a std::barrier of the 32 threads of warp w (the
// launches of tests/cpp/block_emu.h do). Also the 16-byte vector types float4 / double2 and
// emu::Buffer, device memory as the allocator aligns it.
// Block-level built-ins (__syncthreads, shared memory, atomics): tests/cpp/block_emu.h.
#pragma once
#include <atomic>
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace emu {
struct Dim3 {
  unsigned int x = 0, y = 0, z = 0;
};
constexpr int kWarpSize = 32, kMaxWarps = 8;  // blocks of up to 256 threads
inline thread_local Dim3 thread_idx, block_idx;
inline Dim3 block_dim, grid_dim;
inline std::barrier<>* warp_barrier[kMaxWarps] = {};
inline double exchange[kMaxWarps][kWarpSize];  // float and double values both fit exactly
inline unsigned int shfl_mask[kMaxWarps][kWarpSize];
inline int shfl_lane_mask[kMaxWarps][kWarpSize], shfl_width[kMaxWarps][kWarpSize];
inline std::atomic<int> bad_shuffles{0};

// __shfl_xor_sync(mask, v, lane_mask, width): lane l reads lane l ^ lane_mask; a source in a
// later group of `width` lanes returns the caller's own value (CUDA's rule for width < 32).
template <typename T>
T shfl_xor(unsigned int mask, T v, int lane_mask, int width) {
  const int t = static_cast<int>(thread_idx.x), w = t / kWarpSize, lane = t % kWarpSize;
  exchange[w][lane] = static_cast<double>(v);
  shfl_mask[w][lane] = mask;
  shfl_lane_mask[w][lane] = lane_mask;
  shfl_width[w][lane] = width;
  warp_barrier[w]->arrive_and_wait();
  // The full mask promises all 32 lanes take part, with the same lane mask and width.
  if (mask != 0xffffffffu || width < 1 || width > kWarpSize || (width & (width - 1)) != 0 ||
      shfl_mask[w][0] != mask || shfl_lane_mask[w][0] != lane_mask || shfl_width[w][0] != width) {
    bad_shuffles.fetch_add(1);
  }
  const int src = lane ^ lane_mask;
  const T r = src / width > lane / width ? v : static_cast<T>(exchange[w][src]);
  warp_barrier[w]->arrive_and_wait();
  return r;
}

// A device buffer of n values: data() 16-byte aligned (what the CUDA caching allocator
// returns), or 4 bytes past that when `misalign` is set (a tensor view at an odd offset, which
// the launchers' 16-byte kernels must not take).
template <typename T>
struct Buffer {
  std::vector<T> store;
  T* ptr = nullptr;
  size_t n = 0;
  Buffer(size_t size, T fill, bool misalign = false)
      : store(size + 32 / sizeof(T) + 1, fill), n(size) {
    uintptr_t a = reinterpret_cast<uintptr_t>(store.data());
    a = (a + 15) / 16 * 16 + (misalign ? 4 : 0);
    ptr = reinterpret_cast<T*>(a);
  }
  T* data() { return ptr; }
  T& operator[](size_t i) { return ptr[i]; }
};
}  // namespace emu

#define threadIdx emu::thread_idx
#define blockIdx emu::block_idx
#define blockDim emu::block_dim
#define gridDim emu::grid_dim
#define __global__
#define __device__
#define __forceinline__ inline
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) double2 {
  double x, y;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
template <typename T>
inline T __shfl_xor_sync(unsigned int mask, T v, int lane_mask, int width = emu::kWarpSize) {
  return emu::shfl_xor(mask, v, lane_mask, width);
}
