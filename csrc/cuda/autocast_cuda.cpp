// torch.autocast("cuda") for the tri-plane ops (docs/sample_triplane.md, "Half precision"):
// float32 CUDA planes are cast to the autocast dtype (float16 or bfloat16), which the
// CUDA kernels read in that type with float32 points, taps and accumulation; points and
// decoder tensors are used in float32 (half-precision ones are upcast). The casts are
// recorded by autograd (the Autocast keys run before Autograd), so gradients reach
// float32 planes. No CPU registration: on the CPU everything stays float32.
// composite_rays / composite_rays_merged (docs/composite_rays.md, "Half precision"): the
// colours are cast like the planes, densities and depths used in float32; the kernels
// accumulate in float32 and return float32 outputs. deform_points and the backward ops: see
// the end of this file and autocast_float32.h.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <tuple>

#include "autocast_float32.h"

namespace nofa {
namespace {

at::Tensor autocast_planes(const at::Tensor& t) {
  if (t.is_cuda() && t.scalar_type() == at::kFloat)
    return t.to(at::autocast::get_autocast_dtype(at::kCUDA));
  return t;
}

at::Tensor autocast_float(const at::Tensor& t) {
  if (t.is_cuda() && (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16))
    return t.to(at::kFloat);
  return t;
}

at::Tensor sample_triplane_autocast(const at::Tensor& planes, const at::Tensor& points,
                                    double box_warp, c10::string_view reduce) {
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("nofa::sample_triplane", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double, c10::string_view)>();
  return op.call(autocast_planes(planes), autocast_float(points), box_warp, reduce);
}

std::tuple<at::Tensor, at::Tensor> decode_triplane_autocast(
    const at::Tensor& planes, const at::Tensor& points, double box_warp,
    const at::Tensor& fc0_weight, const at::Tensor& fc0_bias, const at::Tensor& fc1_weight,
    const at::Tensor& fc1_bias) {
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("nofa::decode_triplane", "")
                             .typed<std::tuple<at::Tensor, at::Tensor>(
                                 const at::Tensor&, const at::Tensor&, double, const at::Tensor&,
                                 const at::Tensor&, const at::Tensor&, const at::Tensor&)>();
  return op.call(autocast_planes(planes), autocast_float(points), box_warp,
                 autocast_float(fc0_weight), autocast_float(fc0_bias), autocast_float(fc1_weight),
                 autocast_float(fc1_bias));
}

using Tensor3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

Tensor3 composite_rays_autocast(const at::Tensor& colors, const at::Tensor& densities,
                                const at::Tensor& depths, bool white_back) {
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("nofa::composite_rays", "")
          .typed<Tensor3(const at::Tensor&, const at::Tensor&, const at::Tensor&, bool)>();
  return op.call(autocast_planes(colors), autocast_float(densities), autocast_float(depths),
                 white_back);
}

Tensor3 composite_rays_merged_autocast(const at::Tensor& colors_a, const at::Tensor& densities_a,
                                       const at::Tensor& depths_a, const at::Tensor& colors_b,
                                       const at::Tensor& densities_b, const at::Tensor& depths_b,
                                       bool white_back) {
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("nofa::composite_rays_merged", "")
          .typed<Tensor3(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                         const at::Tensor&, const at::Tensor&, bool)>();
  return op.call(autocast_planes(colors_a), autocast_float(densities_a), autocast_float(depths_a),
                 autocast_planes(colors_b), autocast_float(densities_b), autocast_float(depths_b),
                 white_back);
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, AutocastCUDA, m) {
  m.impl("sample_triplane", &sample_triplane_autocast);
  m.impl("decode_triplane", &decode_triplane_autocast);
  m.impl("composite_rays", &composite_rays_autocast);
  m.impl("composite_rays_merged", &composite_rays_merged_autocast);
  // deform_points has float32 / float64 CUDA kernels only, and its glue's own ATen calls (the
  // per-batch first-layer bias, the chunked weight-gradient products) must not be autocast.
  constexpr auto K = c10::DispatchKey::AutocastCUDA;
  m.impl("deform_points", autocast_float32<K, true>());
  m.impl("deform_points_backward", autocast_float32<K, true>());
  // A backward run inside an autocast region: its glue's ATen calls (decode_triplane's chunked
  // products, the transposes) keep the inputs' dtypes; the kernels take half inputs as they are.
  for (const char* name :
       {"sample_triplane_backward", "decode_triplane_backward", "composite_rays_backward",
        "composite_rays_merged_backward", "channels_last_planes"}) {
    m.impl(name, autocast_float32<K, false>());
  }
}

}  // namespace nofa
