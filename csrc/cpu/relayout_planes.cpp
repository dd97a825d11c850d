// relayout_planes on the CPU: a blocked transposition of every (batch, plane) [C, H*W]
// matrix. ATen's strided copy does the same job several times slower (its inner loop walks
// one side of the transposition with a stride of C or H*W elements); here each block of
// texels x channels stays in L1 while both sides stream.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "checks.h"

namespace nofa {
namespace {

constexpr int64_t kBlock = 64;  // texels per block: kBlock x C values in L1

template <typename T>
void to_channels_last(const T* src, T* dst, int64_t planes, int64_t C, int64_t HW) {
  const int64_t blocks = (HW + kBlock - 1) / kBlock;
  at::parallel_for(0, planes * blocks, 16, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int64_t pl = task / blocks, t0 = (task % blocks) * kBlock, t1 = std::min(HW, t0 + kBlock);
      const T* s = src + pl * C * HW;
      T* d = dst + pl * C * HW;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t t = t0; t < t1; ++t) d[t * C + c] = s[c * HW + t];
    }
  });
}

template <typename T>
void to_contiguous(const T* src, T* dst, int64_t planes, int64_t C, int64_t HW) {
  const int64_t blocks = (HW + kBlock - 1) / kBlock;
  at::parallel_for(0, planes * blocks, 16, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int64_t pl = task / blocks, t0 = (task % blocks) * kBlock, t1 = std::min(HW, t0 + kBlock);
      const T* s = src + pl * C * HW;
      T* d = dst + pl * C * HW;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t t = t0; t < t1; ++t) d[c * HW + t] = s[t * C + c];
    }
  });
}

at::Tensor relayout_planes_cpu(const at::Tensor& planes, bool channels_last) {
  check_dim(planes, 5, "planes", "[N, 3, C, H, W]");
  check_float(planes, "planes");
  const int64_t N = planes.size(0), P = planes.size(1), C = planes.size(2), H = planes.size(3), W = planes.size(4);
  auto out = channels_last ? at::empty({N, P, H, W, C}, planes.options()).permute({0, 1, 4, 2, 3})
                           : at::empty({N, P, C, H, W}, planes.options());
  if (out.numel() == 0) return out;
  const bool src_nchw = planes.is_contiguous(), src_cl = planes.permute({0, 1, 3, 4, 2}).is_contiguous();
  if (channels_last ? !src_nchw : !src_cl) {  // no transposition to do (or an unusual layout)
    out.copy_(planes);
    return out;
  }
  AT_DISPATCH_FLOATING_TYPES(planes.scalar_type(), "relayout_planes_cpu", [&] {
    const scalar_t* s = planes.data_ptr<scalar_t>();
    scalar_t* d = out.data_ptr<scalar_t>();
    channels_last ? to_channels_last(s, d, N * P, C, H * W) : to_contiguous(s, d, N * P, C, H * W);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CPU, m) { m.impl("relayout_planes", &relayout_planes_cpu); }

}  // namespace nofa
