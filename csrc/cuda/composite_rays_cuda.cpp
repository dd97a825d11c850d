// composite_rays and composite_rays_merged on CUDA (docs/composite_rays.md): argument
// checks, allocation, the sample-major copies the kernels read ("Layouts" below) and the
// launches (host side). The kernels are in cuda/composite_rays_device.h, their launchers in
// cuda/composite_rays.cu. The depth clamp range is reduced on the device and read there, so
// no host sync. Colours may be float16 / bfloat16 (torch.autocast("cuda"),
// csrc/cuda/autocast_cuda.cpp) with float32 densities and depths: the outputs are then
// float32 and the colour gradient is in the colours' type.
//
// composite_rays_merged: a merge kernel writes, per ray, the merged densities and depths
// (sample-major [S_a + S_b, rays], read from sample-major copies of the sets) and each
// merged sample's source row (ties: set a first, as on the CPU); the composite_rays kernels
// then run on that copy, reading colour rows of both sets in place (and writing their
// gradients in place), and the density / depth gradients are scattered back to the sets.
// Nothing of size [N, R, S, C] is concatenated or gathered. The depth clamp range and its
// gradient span both depth tensors, as the CPU kernel's do.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <torch/library.h>

#include <cstdint>
#include <utility>

#include "common/composite.h"
#include "composite_rays.h"
#include "composite_rays_merged.h"
#include "cuda/common/color_rows.h"

namespace nofa {

// ---- The launchers (cuda/composite_rays.cu): raw pointers, no torch headers there, so the
// .cu compiles in seconds. All tensors are contiguous; "rays" is N * R, K = S - 1.
//
// Layouts (docs/composite_rays.md, "CUDA"): the per-ray arrays are sample-major, so that
// the one-thread-per-ray scans (thread r walks column r) coalesce: densities, depths,
// grad_densities, grad_depths and the colour dot products are [S, rays] (sample s of ray
// r at [s * rays + r]); weights and grad_weights are [K, rays]. Colours, features and
// grad_features keep their [rays, S, C] / [rays, C] rows (their kernels run one thread
// per channel). The host transposes with ATen.
//
// Types: T is the accumulation and per-ray type (float or double); P the colours' (and
// their gradient's) type: T itself, or __half / __nv_bfloat16 with T = float (autocast).
// lo / hi point to the depth clamp range (min / max of depths) on the device.
template <typename T, typename P>
void launch_composite_rays_forward(const ColorRows<const P>& colors, const T* densities_t,
                                   const T* depths_t, const T* lo, const T* hi, T* features,
                                   T* depth, T* weights_t, int64_t rays, int64_t S, int64_t C,
                                   bool white_back, cudaStream_t stream);

// grad_features [rays, C] / grad_depth [rays] / grad_weights_t [K, rays] may each be null (no
// cotangent). grad_features_sum [rays] = 2 * sum_c grad_features[r, c], needed (non-null)
// with white_back and grad_features, else ignored.
// Scratch: e_t [S * rays] (used when grad_features is given) and w [K * kScratch * rays]
// (kScratch from common/composite.h, field f of interval k of ray r at
// [(f * K + k) * rays + r]).
// grad_densities_t [S, rays] is always written; grad_depths_t [S, rays] and bounds ([2, rays]:
// per-ray dL/d lo, then dL/d hi) may be null; grad_colors is skipped when both its a and b
// are null.
template <typename T, typename P>
void launch_composite_rays_backward(const T* grad_features, const T* grad_features_sum,
                                    const T* grad_depth, const T* grad_weights_t,
                                    const ColorRows<const P>& colors, const T* densities_t,
                                    const T* depths_t, const T* lo, const T* hi, T* scratch_e_t,
                                    T* scratch_w, const ColorRows<P>& grad_colors,
                                    T* grad_densities_t, T* grad_depths_t, T* bounds, int64_t rays,
                                    int64_t S, int64_t C, bool white_back, cudaStream_t stream);

// grad_depths[i] += share of the clamp bounds' gradients for every depths[i] equal to *lo /
// *hi: totals [2] = (dL/d lo, dL/d hi) summed over rays, counts [2] = how many elements
// equal lo / hi; nothing is added where a total is 0 (common/composite.h bound_share).
template <typename T>
void launch_composite_bound_grads(const T* depths, T* grad_depths, int64_t n, const T* lo,
                                  const T* hi, const T* totals, const int64_t* counts,
                                  cudaStream_t stream);

// composite_rays_merged: per ray, the merged densities / depths of two sorted sets and the
// source row of each merged sample (src [rays, Sa + Sb], as in ColorRows). Sample-major like
// the compositing kernels: inputs [Sa, rays] / [Sb, rays], outputs [Sa + Sb, rays].
template <typename T>
void launch_merge_sets(const T* densities_a_t, const T* depths_a_t, const T* densities_b_t,
                       const T* depths_b_t, int64_t rays, int64_t Sa, int64_t Sb, T* densities_t,
                       T* depths_t, int32_t* src, cudaStream_t stream);

// values [rays, Sa + Sb] in merged order -> out_a [rays, Sa], out_b [rays, Sb].
template <typename T>
void launch_scatter_sets(const T* values, const int32_t* src, int64_t rays, int64_t Sa, int64_t Sb,
                         T* out_a, T* out_b, cudaStream_t stream);

namespace {

// ---- Host helpers shared by composite_rays and composite_rays_merged: the sample-major
// copies the kernels read ("Layouts" above) and the dispatch over the colour type (float32 /
// float64, or float16 / bfloat16 colours with float32 everything else under autocast).

// A [N, R, S, 1] (or [N, R, K, 1]) tensor as a contiguous sample-major [S, rays] copy: ATen's
// transposing copy, so that the per-ray kernels' accesses coalesce.
at::Tensor sample_major(const at::Tensor& t, int64_t rays, int64_t S) {
  return t.reshape({rays, S}).t().contiguous();
}

// A sample-major [S, rays] tensor back to a contiguous [rays, S] one.
at::Tensor ray_major(const at::Tensor& t) { return t.t().contiguous(); }

// A tensor's data as P (e.g. at::Half storage as __half), or null when empty / undefined.
template <typename P>
P* data_as(const at::Tensor& t) {
  return t.defined() && t.numel() > 0 ? static_cast<P*>(t.data_ptr()) : nullptr;
}

// Calls f.template operator()<T, P>(): T the accumulation type, P the colours' type.
template <typename F>
void dispatch_colour_types(at::ScalarType colours, const char* name, F&& f) {
  switch (colours) {
    case at::kFloat:
      return f.template operator()<float, float>();
    case at::kDouble:
      return f.template operator()<double, double>();
    case at::kHalf:
      return f.template operator()<float, __half>();
    case at::kBFloat16:
      return f.template operator()<float, __nv_bfloat16>();
    default:
      TORCH_CHECK(false, "nofa: ", name,
                  ": colors must be float32, float64, float16 or bfloat16, got ", colours);
  }
}

// ---- composite_rays -------------------------------------------------------------------

std::tuple<at::Tensor, at::Tensor, at::Tensor> composite_rays_cuda(const at::Tensor& colors,
                                                                   const at::Tensor& densities,
                                                                   const at::Tensor& depths,
                                                                   bool white_back) {
  check_composite_rays(colors, densities, depths, /*half_colors=*/true);
  const c10::cuda::CUDAGuard guard(colors.device());
  const int64_t N = colors.size(0), R = colors.size(1), S = colors.size(2), C = colors.size(3);
  const int64_t rays = N * R, K = S - 1;
  // The outputs have the densities' dtype (float32 with half colours).
  const auto opts = densities.options();
  auto feat = at::empty({N, R, C}, opts);
  auto depth = at::empty({N, R, 1}, opts);
  if (rays == 0) return {feat, depth, at::empty({N, R, K, 1}, opts)};
  const auto col = colors.contiguous();
  const auto den_t = sample_major(densities, rays, S), z_t = sample_major(depths, rays, S);
  const auto range = at::aminmax(z_t);
  auto weights_t = at::empty({K, rays}, opts);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch_colour_types(colors.scalar_type(), "composite_rays_cuda", [&]<typename T, typename P>() {
    const ColorRows<const P> rows{data_as<const P>(col), nullptr, nullptr, S, 0, C};
    launch_composite_rays_forward<T, P>(
        rows, den_t.data_ptr<T>(), z_t.data_ptr<T>(), std::get<0>(range).data_ptr<T>(),
        std::get<1>(range).data_ptr<T>(), data_as<T>(feat), depth.data_ptr<T>(),
        weights_t.data_ptr<T>(), rays, S, C, white_back, stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {feat, depth, ray_major(weights_t).view({N, R, K, 1})};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> composite_rays_backward_cuda(
    const std::optional<at::Tensor>& grad_features, const std::optional<at::Tensor>& grad_depth,
    const std::optional<at::Tensor>& grad_weights, const at::Tensor& colors,
    const at::Tensor& densities, const at::Tensor& depths, bool white_back, bool colors_grad,
    bool densities_grad, bool depths_grad) {
  check_composite_rays(colors, densities, depths, /*half_colors=*/true);
  const c10::cuda::CUDAGuard guard(colors.device());
  const int64_t N = colors.size(0), R = colors.size(1), S = colors.size(2), C = colors.size(3);
  const int64_t rays = N * R, K = S - 1;
  // Cotangents in the outputs' dtype (the densities'); the colour gradient in the colours'.
  const auto gf = cotangent(grad_features, densities, {N, R, C}, "grad_features");
  const auto gz = cotangent(grad_depth, densities, {N, R, 1}, "grad_depth");
  const auto gw = cotangent(grad_weights, densities, {N, R, K, 1}, "grad_weights");
  const auto opts = densities.options(), copts = colors.options();
  // Without a features cotangent the colour gradient is zero and no kernel writes it.
  auto gcol = !colors_grad   ? at::empty({0}, copts)
              : gf.defined() ? at::empty({N, R, S, C}, copts)
                             : at::zeros({N, R, S, C}, copts);
  if (rays == 0 || !(colors_grad || densities_grad || depths_grad)) {
    return {gcol, densities_grad ? at::empty({N, R, S, 1}, opts) : at::empty({0}, opts),
            depths_grad ? at::empty({N, R, S, 1}, opts) : at::empty({0}, opts)};
  }
  const auto col = colors.contiguous();
  const auto den_t = sample_major(densities, rays, S), z_t = sample_major(depths, rays, S);
  const auto gw_t = gw.defined() ? sample_major(gw, rays, K) : at::Tensor();
  // 2 * sum_c grad_features[r, c]: the white background's share of every weight cotangent.
  const auto gf_sum = gf.defined() && white_back ? gf.view({rays, C}).sum(1).mul_(2) : at::Tensor();
  const auto range = at::aminmax(z_t);
  // The ray kernel always writes density gradients; they are dropped when not asked for.
  auto gden_t = at::empty({S, rays}, opts);
  auto gdep_t = depths_grad ? at::empty({S, rays}, opts) : at::Tensor();
  auto scratch_e_t = gf.defined() ? at::empty({S, rays}, opts) : at::Tensor();
  auto scratch_w = at::empty({K * kScratch * rays}, opts);
  auto bounds = depths_grad ? at::empty({2, rays}, opts) : at::Tensor();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch_colour_types(
      colors.scalar_type(), "composite_rays_backward_cuda", [&]<typename T, typename P>() {
        const ColorRows<const P> rows{data_as<const P>(col), nullptr, nullptr, S, 0, C};
        const ColorRows<P> grad_rows{
            colors_grad && gf.defined() ? data_as<P>(gcol) : nullptr, nullptr, nullptr, S, 0, C};
        launch_composite_rays_backward<T, P>(
            data_as<T>(gf), data_as<T>(gf_sum), data_as<T>(gz), data_as<T>(gw_t), rows,
            den_t.data_ptr<T>(), z_t.data_ptr<T>(), std::get<0>(range).data_ptr<T>(),
            std::get<1>(range).data_ptr<T>(), data_as<T>(scratch_e_t), scratch_w.data_ptr<T>(),
            grad_rows, gden_t.data_ptr<T>(), data_as<T>(gdep_t), data_as<T>(bounds), rays, S, C,
            white_back, stream);
      });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (depths_grad) {
    // The clamp bounds' gradients, on the sample-major copies (elementwise: any layout).
    const auto& lo = std::get<0>(range);
    const auto& hi = std::get<1>(range);
    const auto totals = bounds.sum(1).contiguous();
    const auto counts = at::stack({z_t.eq(lo).sum(), z_t.eq(hi).sum()}).contiguous();
    AT_DISPATCH_FLOATING_TYPES(densities.scalar_type(), "composite_rays_bound_grads_cuda", [&] {
      using T = scalar_t;
      launch_composite_bound_grads<T>(z_t.data_ptr<T>(), gdep_t.data_ptr<T>(), z_t.numel(),
                                      lo.data_ptr<T>(), hi.data_ptr<T>(), totals.data_ptr<T>(),
                                      counts.data_ptr<int64_t>(), stream);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {gcol, densities_grad ? ray_major(gden_t).view({N, R, S, 1}) : at::empty({0}, opts),
          depths_grad ? ray_major(gdep_t).view({N, R, S, 1}) : at::empty({0}, opts)};
}

// ---- composite_rays_merged ------------------------------------------------------------

template <typename T>
T* ptr_or_null(const at::Tensor& t) {
  return t.defined() && t.numel() > 0 ? t.data_ptr<T>() : nullptr;
}

// min / max over both depth tensors (NaN if either holds a NaN, as torch.min / max).
std::pair<at::Tensor, at::Tensor> depth_range(const at::Tensor& za, const at::Tensor& zb) {
  if (za.numel() == 0) {
    auto r = at::aminmax(zb);
    return {std::get<0>(r), std::get<1>(r)};
  }
  if (zb.numel() == 0) {
    auto r = at::aminmax(za);
    return {std::get<0>(r), std::get<1>(r)};
  }
  auto ra = at::aminmax(za);
  auto rb = at::aminmax(zb);
  return {at::minimum(std::get<0>(ra), std::get<0>(rb)),
          at::maximum(std::get<1>(ra), std::get<1>(rb))};
}

struct Merged {
  at::Tensor den_t, z_t;  // sample-major [S, rays]
  at::Tensor src;         // int32 [rays, S]
};

// densities / depths of the sets: [N, R, S_a, 1] / [N, R, S_b, 1], any layout.
Merged merge(const at::Tensor& da, const at::Tensor& za, const at::Tensor& db, const at::Tensor& zb,
             int64_t rays, int64_t Sa, int64_t Sb) {
  const int64_t S = Sa + Sb;
  Merged m{at::empty({S, rays}, da.options()), at::empty({S, rays}, da.options()),
           at::empty({rays, S}, da.options().dtype(at::kInt))};
  const auto da_t = sample_major(da, rays, Sa), za_t = sample_major(za, rays, Sa);
  const auto db_t = sample_major(db, rays, Sb), zb_t = sample_major(zb, rays, Sb);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(da.scalar_type(), "composite_rays_merged_merge_cuda", [&] {
    using T = scalar_t;
    launch_merge_sets<T>(ptr_or_null<T>(da_t), ptr_or_null<T>(za_t), ptr_or_null<T>(db_t),
                         ptr_or_null<T>(zb_t), rays, Sa, Sb, m.den_t.data_ptr<T>(),
                         m.z_t.data_ptr<T>(), m.src.data_ptr<int32_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return m;
}

using Tensor3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using Tensor6 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

Tensor3 composite_rays_merged_cuda(const at::Tensor& colors_a, const at::Tensor& densities_a,
                                   const at::Tensor& depths_a, const at::Tensor& colors_b,
                                   const at::Tensor& densities_b, const at::Tensor& depths_b,
                                   bool white_back) {
  check_composite_rays_merged(colors_a, densities_a, depths_a, colors_b, densities_b, depths_b,
                              /*half_colors=*/true);
  const c10::cuda::CUDAGuard guard(colors_a.device());
  const int64_t N = colors_a.size(0), R = colors_a.size(1), C = colors_a.size(3);
  const int64_t Sa = colors_a.size(2), Sb = colors_b.size(2), S = Sa + Sb, rays = N * R, K = S - 1;
  // The outputs have the densities' dtype (float32 with half colours).
  const auto opts = densities_a.options();
  auto feat = at::empty({N, R, C}, opts);
  auto depth = at::empty({N, R, 1}, opts);
  if (rays == 0) return {feat, depth, at::empty({N, R, K, 1}, opts)};
  const auto ca = colors_a.contiguous(), cb = colors_b.contiguous();
  const auto range = depth_range(depths_a, depths_b);
  const auto m = merge(densities_a, depths_a, densities_b, depths_b, rays, Sa, Sb);
  auto weights_t = at::empty({K, rays}, opts);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch_colour_types(
      colors_a.scalar_type(), "composite_rays_merged_cuda", [&]<typename T, typename P>() {
        const ColorRows<const P> rows{
            data_as<const P>(ca), data_as<const P>(cb), m.src.data_ptr<int32_t>(), Sa, Sb, C};
        launch_composite_rays_forward<T, P>(
            rows, m.den_t.data_ptr<T>(), m.z_t.data_ptr<T>(), range.first.data_ptr<T>(),
            range.second.data_ptr<T>(), data_as<T>(feat), depth.data_ptr<T>(),
            weights_t.data_ptr<T>(), rays, S, C, white_back, stream);
      });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {feat, depth, ray_major(weights_t).view({N, R, K, 1})};
}

Tensor6 composite_rays_merged_backward_cuda(
    const std::optional<at::Tensor>& grad_features, const std::optional<at::Tensor>& grad_depth,
    const std::optional<at::Tensor>& grad_weights, const at::Tensor& colors_a,
    const at::Tensor& densities_a, const at::Tensor& depths_a, const at::Tensor& colors_b,
    const at::Tensor& densities_b, const at::Tensor& depths_b, bool white_back, bool colors_grad,
    bool densities_grad, bool depths_grad) {
  check_composite_rays_merged(colors_a, densities_a, depths_a, colors_b, densities_b, depths_b,
                              /*half_colors=*/true);
  const c10::cuda::CUDAGuard guard(colors_a.device());
  const int64_t N = colors_a.size(0), R = colors_a.size(1), C = colors_a.size(3);
  const int64_t Sa = colors_a.size(2), Sb = colors_b.size(2), S = Sa + Sb, rays = N * R, K = S - 1;
  // cotangent() checks shape and device (a CPU cotangent must not reach a kernel); the
  // cotangents are in the outputs' dtype (the densities'), the colour gradients in the colours'.
  const auto gf = cotangent(grad_features, densities_a, {N, R, C}, "grad_features");
  const auto gz = cotangent(grad_depth, densities_a, {N, R, 1}, "grad_depth");
  const auto gw = cotangent(grad_weights, densities_a, {N, R, K, 1}, "grad_weights");
  const auto opts = densities_a.options(), copts = colors_a.options();
  // Without a features cotangent the colour gradients are zero and no kernel writes them.
  auto colour_grad = [&](int64_t Sx) {
    return !colors_grad   ? at::empty({0}, copts)
           : gf.defined() ? at::empty({N, R, Sx, C}, copts)
                          : at::zeros({N, R, Sx, C}, copts);
  };
  auto alloc = [&](bool need, int64_t Sx) {
    return need ? at::empty({N, R, Sx, 1}, opts) : at::empty({0}, opts);
  };
  auto gca = colour_grad(Sa), gcb = colour_grad(Sb);
  auto gda = alloc(densities_grad, Sa), gdb = alloc(densities_grad, Sb);
  auto gza = alloc(depths_grad, Sa), gzb = alloc(depths_grad, Sb);
  if (rays == 0 || !(colors_grad || densities_grad || depths_grad))
    return {gca, gda, gza, gcb, gdb, gzb};
  const auto ca = colors_a.contiguous(), za = depths_a.contiguous();
  const auto cb = colors_b.contiguous(), zb = depths_b.contiguous();
  const auto range = depth_range(za, zb);
  const auto m = merge(densities_a, za, densities_b, zb, rays, Sa, Sb);
  const auto gw_t = gw.defined() ? sample_major(gw, rays, K) : at::Tensor();
  // 2 * sum_c grad_features[r, c]: the white background's share of every weight cotangent.
  const auto gf_sum = gf.defined() && white_back ? gf.view({rays, C}).sum(1).mul_(2) : at::Tensor();
  // The ray kernel always writes merged density gradients (scattered only when asked for).
  auto gden_t = at::empty({S, rays}, opts);
  auto gdep_t = depths_grad ? at::empty({S, rays}, opts) : at::Tensor();
  auto scratch_e_t = gf.defined() ? at::empty({S, rays}, opts) : at::Tensor();
  auto scratch_w = at::empty({K * kScratch * rays}, opts);
  auto bounds = depths_grad ? at::empty({2, rays}, opts) : at::Tensor();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const int32_t* src = m.src.data_ptr<int32_t>();
  dispatch_colour_types(
      colors_a.scalar_type(), "composite_rays_merged_backward_cuda", [&]<typename T, typename P>() {
        const ColorRows<const P> rows{data_as<const P>(ca), data_as<const P>(cb), src, Sa, Sb, C};
        const bool write_colours = colors_grad && gf.defined();
        const ColorRows<P> grad_rows{write_colours ? data_as<P>(gca) : nullptr,
                                     write_colours ? data_as<P>(gcb) : nullptr,
                                     src,
                                     Sa,
                                     Sb,
                                     C};
        launch_composite_rays_backward<T, P>(
            data_as<T>(gf), data_as<T>(gf_sum), data_as<T>(gz), data_as<T>(gw_t), rows,
            m.den_t.data_ptr<T>(), m.z_t.data_ptr<T>(), range.first.data_ptr<T>(),
            range.second.data_ptr<T>(), data_as<T>(scratch_e_t), scratch_w.data_ptr<T>(), grad_rows,
            gden_t.data_ptr<T>(), data_as<T>(gdep_t), data_as<T>(bounds), rays, S, C, white_back,
            stream);
      });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  // Merged-order gradients back to [rays, S] rows, then to the sets' rows.
  AT_DISPATCH_FLOATING_TYPES(densities_a.scalar_type(), "composite_rays_merged_scatter_cuda", [&] {
    using T = scalar_t;
    if (densities_grad) {
      const auto gden = ray_major(gden_t);
      launch_scatter_sets<T>(gden.data_ptr<T>(), src, rays, Sa, Sb, ptr_or_null<T>(gda),
                             ptr_or_null<T>(gdb), stream);
    }
    if (depths_grad) {
      const auto gdep = ray_major(gdep_t);
      launch_scatter_sets<T>(gdep.data_ptr<T>(), src, rays, Sa, Sb, ptr_or_null<T>(gza),
                             ptr_or_null<T>(gzb), stream);
    }
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (depths_grad) {
    // The clamp range spans both sets: each bound's gradient is shared between the
    // elements of both depth tensors equal to it (common/composite.h bound_share).
    const auto& lo = range.first;
    const auto& hi = range.second;
    const auto totals = bounds.sum(1).contiguous();
    const auto counts =
        at::stack({za.eq(lo).sum() + zb.eq(lo).sum(), za.eq(hi).sum() + zb.eq(hi).sum()})
            .contiguous();
    AT_DISPATCH_FLOATING_TYPES(
        densities_a.scalar_type(), "composite_rays_merged_bound_grads_cuda", [&] {
          using T = scalar_t;
          launch_composite_bound_grads<T>(ptr_or_null<T>(za), ptr_or_null<T>(gza), za.numel(),
                                          lo.data_ptr<T>(), hi.data_ptr<T>(), totals.data_ptr<T>(),
                                          counts.data_ptr<int64_t>(), stream);
          launch_composite_bound_grads<T>(ptr_or_null<T>(zb), ptr_or_null<T>(gzb), zb.numel(),
                                          lo.data_ptr<T>(), hi.data_ptr<T>(), totals.data_ptr<T>(),
                                          counts.data_ptr<int64_t>(), stream);
        });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {gca, gda, gza, gcb, gdb, gzb};
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CUDA, m) {
  m.impl("composite_rays", &composite_rays_cuda);
  m.impl("composite_rays_backward", &composite_rays_backward_cuda);
  m.impl("composite_rays_merged", &composite_rays_merged_cuda);
  m.impl("composite_rays_merged_backward", &composite_rays_merged_backward_cuda);
}

}  // namespace nofa
