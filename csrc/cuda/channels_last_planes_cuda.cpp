// channels_last_planes on CUDA: a layout change only, done by ATen's copy kernel (the CUDA
// kernels read planes in either layout through contiguous(), so no hand-written kernel
// is needed here).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "checks.h"

namespace nofa {
namespace {

at::Tensor channels_last_planes_cuda(const at::Tensor& planes, bool channels_last) {
  check_dim(planes, 5, "planes", "[N, 3, C, H, W]");
  check_float(planes, "planes");
  const auto s = planes.sizes();
  auto out =
      channels_last
          ? at::empty({s[0], s[1], s[3], s[4], s[2]}, planes.options()).permute({0, 1, 4, 2, 3})
          : at::empty(s, planes.options());
  out.copy_(planes);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CUDA, m) { m.impl("channels_last_planes", &channels_last_planes_cuda); }

}  // namespace nofa
