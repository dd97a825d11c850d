// sample_triplane on the CPU: what the forward/points file and the plane-gradient file share.
#pragma once
#include <cstdint>

#include "cpu/isa.h"

namespace nofa {
namespace st_cpu {

template <typename T>
struct Geometry {
  int64_t N, M, C, H, W;
  T scale;  // 2 / box_warp
  int reduce;
  int64_t out_c() const { return reduce == 1 ? 3 * C : C; }
};

// Random points make the lookups latency-bound: start loading the data of a point a few
// iterations ahead, so several cache misses are in flight at once.
constexpr int64_t kPrefetchAhead = 8;

// Plane gradient of batch element n into out: its [3, C, H, W] block, or [3, H, W, C] if
// out_cl, with the code of instruction-set tier `tier`. Parallel inside (at::parallel_for);
// deterministic for any thread count.
template <typename T>
void backward_planes(const T* go, const T* pts, const Geometry<T>& g, int64_t n, T* out,
                     bool out_cl, isa::Isa tier);

}  // namespace st_cpu
}  // namespace nofa
