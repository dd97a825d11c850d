// channels_last_planes on the CPU: a tiled transposition of every (batch, plane) [C, H*W]
// matrix. ATen's strided copy does the same job several times slower (its inner loop walks
// one side of the transposition with a stride of C or H*W elements); here 16 x 16 tiles go
// through registers while both sides stream.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>

#include "checks.h"
#include "cpu/isa.h"
#include "cpu/transpose16.h"

namespace nofa {
namespace {

constexpr int64_t kBlock = 64;  // band of the longer side per task: kBlock x C values in L1

using isa::Isa;
using isa::Op;
[[maybe_unused]] const bool kImplemented =
    isa::implement(Op::kChannelsLastPlanes, {Isa::kAvx2, Isa::kAvx512});

// d[j * ds + i] = s[i * ss + j] for i < rows, j < cols; full 16 x 16 float blocks through
// registers on the vector tiers.
template <typename T>
void transpose_tile(const T* s, int64_t ss, T* d, int64_t ds, int64_t rows, int64_t cols,
                    Isa tier) {
#if NOFA_ISA_X86
  if constexpr (std::is_same_v<T, float>) {
    if (tier != Isa::kScalar && rows == 16 && cols == 16) {
      tier == Isa::kAvx512 ? transpose16x16(s, ss, d, ds) : transpose16x16_avx2(s, ss, d, ds);
      return;
    }
  }
#endif
  for (int64_t j = 0; j < cols; ++j)
    for (int64_t i = 0; i < rows; ++i) d[j * ds + i] = s[i * ss + j];
}

// Each (batch, plane) [A, B] matrix -> [B, A] (A = C, B = H * W to go channels-last, and
// the other way round), in 16 x 16 tiles, parallel over (plane, band of the longer side).
template <typename T>
void transpose_planes(const T* src, T* dst, int64_t planes, int64_t A, int64_t B, Isa tier) {
  const bool along_b = B >= A;
  const int64_t L = along_b ? B : A, blocks = (L + kBlock - 1) / kBlock;
  at::parallel_for(0, planes * blocks, 16, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int64_t pl = task / blocks, l0 = (task % blocks) * kBlock,
                    l1 = std::min(L, l0 + kBlock);
      const T* s = src + pl * A * B;
      T* d = dst + pl * A * B;
      const int64_t a_lo = along_b ? 0 : l0, a_hi = along_b ? A : l1;
      const int64_t b_lo = along_b ? l0 : 0, b_hi = along_b ? l1 : B;
      for (int64_t a0 = a_lo; a0 < a_hi; a0 += 16)
        for (int64_t j0 = b_lo; j0 < b_hi; j0 += 16)
          transpose_tile(s + a0 * B + j0, B, d + j0 * A + a0, A, std::min<int64_t>(16, a_hi - a0),
                         std::min<int64_t>(16, b_hi - j0), tier);
    }
  });
}

at::Tensor channels_last_planes_cpu(const at::Tensor& planes, bool channels_last) {
  check_dim(planes, 5, "planes", "[N, 3, C, H, W]");
  check_float(planes, "planes");
  const int64_t N = planes.size(0), P = planes.size(1), C = planes.size(2), H = planes.size(3),
                W = planes.size(4);
  auto out = channels_last ? at::empty({N, P, H, W, C}, planes.options()).permute({0, 1, 4, 2, 3})
                           : at::empty({N, P, C, H, W}, planes.options());
  if (out.numel() == 0) return out;
  const bool src_nchw = planes.is_contiguous(),
             src_cl = planes.permute({0, 1, 3, 4, 2}).is_contiguous();
  if (channels_last ? !src_nchw : !src_cl) {  // no transposition to do (or an unusual layout)
    out.copy_(planes);
    return out;
  }
  const Isa tier =
      planes.scalar_type() == at::kFloat ? isa::path_for(Op::kChannelsLastPlanes) : Isa::kScalar;
  isa::record(Op::kChannelsLastPlanes, tier);
  AT_DISPATCH_FLOATING_TYPES(planes.scalar_type(), "channels_last_planes_cpu", [&] {
    const scalar_t* s = planes.data_ptr<scalar_t>();
    scalar_t* d = out.data_ptr<scalar_t>();
    channels_last ? transpose_planes(s, d, N * P, C, H * W, tier)
                  : transpose_planes(s, d, N * P, H * W, C, tier);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CPU, m) { m.impl("channels_last_planes", &channels_last_planes_cpu); }

}  // namespace nofa
