// sample_triplane on the CPU: forward and backward (the plane-gradient pass is in
// sample_triplane_planes_grad.cpp).
//
// With many points, or planes already stored channels-last, planes are read as [N, 3, H, W, C]
// (a copy only when they are not stored so) so that the C values of a tap are contiguous; with
// few points (fewer than ~1 per 32 texels) a copy would cost more than it saves, and the
// kernels read the [N, 3, C, H, W] layout directly. Both layouts are one template
// (CL = channels-last). The backward is split in two passes so that no two threads ever write
// the same memory (no atomics, no per-thread copies of the planes, deterministic): point
// gradients are parallel over points, plane gradients over bands of texel rows.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

#include "common/triplane.h"
#include "cpu/isa.h"
#include "cpu/sample_triplane_cpu.h"
#include "sample_triplane.h"

namespace nofa {
namespace {

using st_cpu::Geometry;
using st_cpu::kPrefetchAhead;

// Element strides of a tap (texel) and of a channel within one plane.
template <bool CL, typename T>
inline int64_t tap_stride(const Geometry<T>& g) {
  return CL ? g.C : 1;
}
template <bool CL, typename T>
inline int64_t chan_stride(const Geometry<T>& g) {
  return CL ? 1 : g.H * g.W;
}

template <typename T>
inline void prefetch_point(const T* planes_cl, const T* pts, const Geometry<T>& g, int64_t i) {
  const int64_t n = i / g.M, HW = g.H * g.W;
  const T x = pts[i * 3 + 0] * g.scale, y = pts[i * 3 + 1] * g.scale, z = pts[i * 3 + 2] * g.scale;
  for (int p = 0; p < 3; ++p) {
    T u, v;
    plane_uv(p, x, y, z, u, v);
    BilinearTaps<T> t;
    bilinear_taps(u, v, g.H, g.W, t);
    const T* base = planes_cl + (n * 3 + p) * HW * g.C;
    for (int k = 0; k < 4; ++k) {
      if (t.off[k] < 0) continue;
      const char* a = reinterpret_cast<const char*>(base + t.off[k] * g.C);
      for (int64_t b = 0; b < g.C * static_cast<int64_t>(sizeof(T)); b += 64)
        __builtin_prefetch(a + b);
    }
  }
}

// The point loops are inlined into a copy per instruction-set tier (isa::run): the channel
// loops vectorise to that tier's width.
template <bool CL, typename T>
NOFA_ISA_INLINE void forward_points(const T* planes_cl, const T* pts, T* out, const Geometry<T>& g,
                                    int64_t begin, int64_t end) {
  const int64_t HW = g.H * g.W, oc = g.out_c(), ts = tap_stride<CL>(g), cs = chan_stride<CL>(g);
  for (int64_t i = begin; i < end; ++i) {
    if (CL && i + kPrefetchAhead < end) prefetch_point(planes_cl, pts, g, i + kPrefetchAhead);
    const int64_t n = i / g.M;
    const T x = pts[i * 3 + 0] * g.scale, y = pts[i * 3 + 1] * g.scale,
            z = pts[i * 3 + 2] * g.scale;
    T* o = out + i * oc;
    std::fill(o, o + oc, T(0));
    for (int p = 0; p < 3; ++p) {
      T u, v;
      plane_uv(p, x, y, z, u, v);
      BilinearTaps<T> t;
      bilinear_taps(u, v, g.H, g.W, t);
      const T* base = planes_cl + (n * 3 + p) * HW * g.C;
      T* op = g.reduce == 1 ? o + p * g.C : o;
      for (int k = 0; k < 4; ++k) {
        if (t.off[k] < 0) continue;
        const T* src = base + t.off[k] * ts;
        const T w = t.w[k];
        for (int64_t c = 0; c < g.C; ++c) op[c] += w * src[c * cs];
      }
    }
    if (g.reduce == 0) {
      for (int64_t c = 0; c < g.C; ++c) o[c] /= T(3);
    }
  }
}

template <bool CL, typename T>
NOFA_ISA_INLINE void backward_points(const T* go, const T* planes_cl, const T* pts, T* gpts,
                                     const Geometry<T>& g, int64_t begin, int64_t end) {
  const int64_t HW = g.H * g.W, oc = g.out_c(), ts = tap_stride<CL>(g), cs = chan_stride<CL>(g);
  const T s = g.reduce == 1 ? T(1) : T(1) / T(3);  // d(mean) / d(plane sample)
  for (int64_t i = begin; i < end; ++i) {
    if (CL && i + kPrefetchAhead < end) prefetch_point(planes_cl, pts, g, i + kPrefetchAhead);
    const int64_t n = i / g.M;
    const T x = pts[i * 3 + 0] * g.scale, y = pts[i * 3 + 1] * g.scale,
            z = pts[i * 3 + 2] * g.scale;
    T acc[3] = {T(0), T(0), T(0)};
    for (int p = 0; p < 3; ++p) {
      T u, v;
      plane_uv(p, x, y, z, u, v);
      BilinearTaps<T> t;
      bilinear_taps(u, v, g.H, g.W, t);
      const T* base = planes_cl + (n * 3 + p) * HW * g.C;
      const T* gr = go + i * oc + (g.reduce == 1 ? p * g.C : 0);
      T dots[4];
      for (int k = 0; k < 4; ++k) {
        dots[k] = T(0);
        if (t.off[k] < 0) continue;
        const T* src = base + t.off[k] * ts;
        T dot = T(0);
#pragma omp simd reduction(+ : dot)
        for (int64_t c = 0; c < g.C; ++c) dot += gr[c] * src[c * cs];
        dots[k] = dot * s;
      }
      add_plane_point_grad(p, t, dots, acc);
    }
    for (int a = 0; a < 3; ++a) gpts[i * 3 + a] = acc[a] * g.scale;
  }
}

using isa::Isa;
using isa::Op;
[[maybe_unused]] const bool kImplemented =
    isa::implement(Op::kSampleTriplaneForward, {Isa::kAvx2, Isa::kAvx512}) &&
    isa::implement(Op::kSampleTriplaneBackward, {Isa::kAvx2, Isa::kAvx512});

template <typename T>
Geometry<T> geometry(const at::Tensor& planes, const at::Tensor& points, double box_warp,
                     int reduce) {
  return Geometry<T>{planes.size(0), points.size(1), planes.size(2),
                     planes.size(3), planes.size(4), static_cast<T>(2.0 / box_warp),
                     reduce};
}

at::Tensor channels_last(const at::Tensor& planes) {
  return planes.permute({0, 1, 3, 4, 2}).contiguous();
}

at::Tensor sample_triplane_cpu(const at::Tensor& planes, const at::Tensor& points, double box_warp,
                               c10::string_view reduce_s) {
  check_sample_triplane(planes, points, box_warp);
  const int reduce = parse_reduce(std::string(reduce_s));
  const int64_t N = planes.size(0), M = points.size(1), C = planes.size(2);
  auto out = at::empty({N, M, reduce == 1 ? 3 * C : C}, planes.options());
  if (out.numel() == 0) return out;
  const bool cl = use_channels_last(planes, M);
  const auto pl = cl ? channels_last(planes) : planes.contiguous();
  const auto pts = points.contiguous();
  const Isa tier = isa::path_for(Op::kSampleTriplaneForward);
  isa::record(Op::kSampleTriplaneForward, tier);
  AT_DISPATCH_FLOATING_TYPES(planes.scalar_type(), "sample_triplane_cpu", [&] {
    const auto g = geometry<scalar_t>(planes, points, box_warp, reduce);
    const scalar_t* pp = pl.data_ptr<scalar_t>();
    const scalar_t* xp = pts.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, N * M, 256, [&](int64_t b, int64_t e) {
      isa::run(tier, [&]() NOFA_ISA_LAMBDA {
        cl ? forward_points<true>(pp, xp, op, g, b, e) : forward_points<false>(pp, xp, op, g, b, e);
      });
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> sample_triplane_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& planes, const at::Tensor& points, double box_warp,
    c10::string_view reduce_s, bool planes_grad, bool points_grad) {
  check_sample_triplane(planes, points, box_warp);
  const int reduce = parse_reduce(std::string(reduce_s));
  const int64_t N = planes.size(0), M = points.size(1), C = planes.size(2);
  const int64_t H = planes.size(3), W = planes.size(4);
  TORCH_CHECK(grad_out.dim() == 3 && grad_out.size(0) == N && grad_out.size(1) == M &&
                  grad_out.size(2) == (reduce == 1 ? 3 * C : C),
              "nofa: grad_out has shape ", shape_str(grad_out), ", expected [N, M, out_channels]");
  const bool cl = use_channels_last(planes, M);
  // The plane gradient has the strides at::empty_like(planes) gives (so do the fake and the
  // CUDA glue): channels-last-strided planes get a channels-last gradient, written in place.
  auto gplanes = planes_grad ? at::empty_like(planes) : at::empty({0}, planes.options());
  auto gpoints =
      points_grad ? at::zeros({N, M, 3}, points.options()) : at::empty({0}, points.options());
  if (planes_grad && N * M * C * H * W == 0) gplanes.zero_();
  if (N * M * C * H * W > 0 && (planes_grad || points_grad)) {
    TORCH_CHECK(M <= INT32_MAX,
                "nofa: sample_triplane_backward supports at most 2^31 - 1 points per batch "
                "element, got M = ",
                M);
    const auto go = grad_out.contiguous().to(planes.scalar_type());
    const auto pts = points.contiguous();
    const auto pl = points_grad ? (cl ? channels_last(planes) : planes.contiguous()) : at::Tensor();
    const bool out_cl =
        planes_grad && !gplanes.is_contiguous() && is_channels_last_strided(gplanes);
    // Any other dense layout empty_like can give: compute contiguous, then copy.
    const auto gwork = !planes_grad || out_cl || gplanes.is_contiguous()
                           ? gplanes
                           : at::empty(planes.sizes(), planes.options());
    const Isa tier = isa::path_for(Op::kSampleTriplaneBackward);
    isa::record(Op::kSampleTriplaneBackward, tier);
    AT_DISPATCH_FLOATING_TYPES(planes.scalar_type(), "sample_triplane_backward_cpu", [&] {
      const auto g = geometry<scalar_t>(planes, points, box_warp, reduce);
      const scalar_t* gop = go.data_ptr<scalar_t>();
      const scalar_t* xp = pts.data_ptr<scalar_t>();
      if (points_grad) {
        const scalar_t* pp = pl.data_ptr<scalar_t>();
        scalar_t* gp = gpoints.data_ptr<scalar_t>();
        at::parallel_for(0, N * M, 256, [&](int64_t b, int64_t e) {
          isa::run(tier, [&]() NOFA_ISA_LAMBDA {
            cl ? backward_points<true>(gop, pp, xp, gp, g, b, e)
               : backward_points<false>(gop, pp, xp, gp, g, b, e);
          });
        });
      }
      if (planes_grad) {
        scalar_t* gl = gwork.data_ptr<scalar_t>();
        for (int64_t n = 0; n < N; ++n)
          st_cpu::backward_planes(gop, xp, g, n, gl + n * 3 * C * H * W, out_cl, tier);
      }
    });
    if (planes_grad && !gwork.is_same(gplanes)) gplanes.copy_(gwork);
  }
  return {gplanes, gpoints};
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CPU, m) {
  m.impl("sample_triplane", &sample_triplane_cpu);
  m.impl("sample_triplane_backward", &sample_triplane_backward_cpu);
}

}  // namespace nofa
