// decode_triplane on the CPU: tri-plane lookup (mean) + EG3D's OSG decoder, fused per tile
// of points so that the [M, hidden] activations only ever live in a cache-sized tile buffer.
//
// Per tile: gather the mean tri-plane features by hand (channels-last copy of the planes
// when the points are many, as sample_triplane does), then the two dense layers as small
// GEMMs and the activations with ATen's vectorised CPU kernels on the tile (same functions
// as the reference, so the results agree to rounding). The backward recomputes each tile,
// accumulates the decoder's weight gradients into one buffer per chunk of tiles (chunks
// fixed before the parallel loop and summed in order: deterministic), writes the feature
// gradient [N, M, C], and hands that to the sample_triplane backward for planes and points.
// In float32, at the EG3D decoder's shapes, the AVX2 / AVX-512 paths of cpu/decode_triplane_tile.h
// replace the per-tile ATen calls (which one: cpu/isa.h, docs/cpu_isa.md).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "common/triplane.h"
#include "cpu/decode_triplane_tile.h"
#include "cpu/isa.h"
#include "decode_triplane.h"

namespace nofa {
namespace {

constexpr int64_t kTile = 512;         // points per tile: f, h and x together stay in L2
constexpr int64_t kPrefetchAhead = 8;  // points ahead whose texels are requested early

template <typename T>
struct Lookup {
  const T* planes;  // [N, 3, C, H, W] or channels-last [N, 3, H, W, C]
  const T* pts;     // [N * M, 3]
  int64_t M, C, H, W;
  T scale;  // 2 / box_warp
};

template <typename T>
inline void prefetch_point(const Lookup<T>& g, int64_t i) {
  const int64_t n = i / g.M, HW = g.H * g.W;
  const T* q = g.pts + i * 3;
  for (int p = 0; p < 3; ++p) {
    T u, v;
    plane_uv(p, q[0] * g.scale, q[1] * g.scale, q[2] * g.scale, u, v);
    BilinearTaps<T> t;
    bilinear_taps(u, v, g.H, g.W, t);
    const T* base = g.planes + (n * 3 + p) * HW * g.C;
    for (int k = 0; k < 4; ++k) {
      if (t.off[k] < 0) continue;
      const char* a = reinterpret_cast<const char*>(base + t.off[k] * g.C);
      for (int64_t b = 0; b < g.C * static_cast<int64_t>(sizeof(T)); b += 64)
        __builtin_prefetch(a + b);
    }
  }
}

// Mean tri-plane features of points [i0, i1) into f [(i1 - i0), C].
template <bool CL, typename T>
void gather_mean(const Lookup<T>& g, int64_t i0, int64_t i1, T* f) {
  const int64_t HW = g.H * g.W, ts = CL ? g.C : 1, cs = CL ? 1 : HW;
  for (int64_t i = i0; i < i1; ++i) {
    if (CL && i + kPrefetchAhead < i1) prefetch_point(g, i + kPrefetchAhead);
    const int64_t n = i / g.M;
    const T* q = g.pts + i * 3;
    const T x = q[0] * g.scale, y = q[1] * g.scale, z = q[2] * g.scale;
    T* o = f + (i - i0) * g.C;
    std::fill(o, o + g.C, T(0));
    for (int p = 0; p < 3; ++p) {
      T u, v;
      plane_uv(p, x, y, z, u, v);
      BilinearTaps<T> t;
      bilinear_taps(u, v, g.H, g.W, t);
      const T* base = g.planes + (n * 3 + p) * HW * g.C;
      for (int k = 0; k < 4; ++k) {
        if (t.off[k] < 0) continue;
        const T* src = base + t.off[k] * ts;
        const T w = t.w[k];
        for (int64_t c = 0; c < g.C; ++c) o[c] += w * src[c * cs];
      }
    }
    for (int64_t c = 0; c < g.C; ++c) o[c] /= T(3);
  }
}

// Everything one call needs: the lookup, the decoder and the layout choice.
struct Setup {
  at::Tensor planes_l, pts, w0, b0, w1, b1;
  int64_t N, M, C, H, W, Hd, O;
  bool cl;
  double scale;
};

Setup make_setup(const at::Tensor& planes, const at::Tensor& points, double box_warp,
                 const at::Tensor& w0, const at::Tensor& b0, const at::Tensor& w1,
                 const at::Tensor& b1) {
  Setup s;
  s.N = planes.size(0);
  s.M = points.size(1);
  s.C = planes.size(2);
  s.H = planes.size(3);
  s.W = planes.size(4);
  s.Hd = w0.size(0);
  s.O = w1.size(0);
  // Planes a caller already holds channels-last (a permuted view) are read in place.
  s.cl = use_channels_last(planes, s.M);
  s.planes_l = s.cl ? planes.permute({0, 1, 3, 4, 2}).contiguous() : planes.contiguous();
  s.pts = points.contiguous();
  // Worker threads of at::parallel_for do not inherit the autograd exclusion of this
  // kernel, so the ATen calls on the tile must only ever see tensors without grad.
  s.w0 = w0.detach().contiguous();
  s.b0 = b0.detach().contiguous();
  s.w1 = w1.detach().contiguous();
  s.b1 = b1.detach().contiguous();
  s.scale = 2.0 / box_warp;
  return s;
}

using isa::Op;

// Both tiers of vector code are compiled on x86-64 (cpu/decode_triplane_tile.h).
[[maybe_unused]] const bool kImplemented = [] {
  for (const Op op : {Op::kDecodeTriplaneForward, Op::kDecodeTriplaneBackward}) {
    if (fastdec::kernels_avx2()) isa::implement(op, {isa::Isa::kAvx2});
    if (fastdec::kernels_avx512()) isa::implement(op, {isa::Isa::kAvx512});
  }
  return true;
}();

// The vector path this call takes (float32, channels-last taps, the decoder shapes the
// vector code covers, the tier isa::path_for allows), or null: the generic tile path.
// Records the path that runs.
const fastdec::Kernels* vector_path(const Setup& s, const at::Tensor& planes, Op op) {
  const isa::Isa tier = isa::path_for(op);
  const fastdec::Kernels* k =
      planes.scalar_type() == at::kFloat && s.cl && fastdec::shape_ok(s.C, s.Hd, s.O)
          ? fastdec::kernels_for(tier)
          : nullptr;
  isa::record(op, k ? k->isa : isa::Isa::kScalar);
  return k;
}

std::unique_ptr<fastdec::Weights> fast_weights(const Setup& s) {
  const auto w0 = s.w0.contiguous(), b0 = s.b0.contiguous(), w1 = s.w1.contiguous(),
             b1 = s.b1.contiguous();
  return std::make_unique<fastdec::Weights>(w0.data_ptr<float>(), b0.data_ptr<float>(),
                                            w1.data_ptr<float>(), b1.data_ptr<float>(), s.O);
}

fastdec::Source fast_source(const Setup& s) {
  return fastdec::Source{s.planes_l.data_ptr<float>(), s.pts.data_ptr<float>(), s.M, s.H, s.W,
                         static_cast<float>(s.scale)};
}

template <typename T>
Lookup<T> lookup(const Setup& s) {
  return Lookup<T>{s.planes_l.data_ptr<T>(), s.pts.data_ptr<T>(), s.M, s.C, s.H, s.W,
                   static_cast<T>(s.scale)};
}

template <typename T>
void gather(const Setup& s, const Lookup<T>& g, int64_t i0, int64_t i1, const at::Tensor& f) {
  s.cl ? gather_mean<true>(g, i0, i1, f.data_ptr<T>())
       : gather_mean<false>(g, i0, i1, f.data_ptr<T>());
}

std::tuple<at::Tensor, at::Tensor> decode_triplane_cpu(const at::Tensor& planes,
                                                       const at::Tensor& points, double box_warp,
                                                       const at::Tensor& fc0_weight,
                                                       const at::Tensor& fc0_bias,
                                                       const at::Tensor& fc1_weight,
                                                       const at::Tensor& fc1_bias) {
  check_decode_triplane(planes, points, box_warp, fc0_weight, fc0_bias, fc1_weight, fc1_bias);
  const int64_t N = planes.size(0), M = points.size(1), F = fc1_weight.size(0) - 1;
  auto density = at::empty({N, M, 1}, planes.options());
  auto features = at::empty({N, M, F}, planes.options());
  if (N * M == 0) return {density, features};
  const Setup s = make_setup(planes, points, box_warp, fc0_weight, fc0_bias, fc1_weight, fc1_bias);
  const int64_t P = N * M, tiles = (P + kTile - 1) / kTile;
  if (const fastdec::Kernels* k = vector_path(s, planes, Op::kDecodeTriplaneForward)) {
    const auto w = fast_weights(s);
    const auto src = fast_source(s);
    float* dp = density.data_ptr<float>();
    float* fp = features.data_ptr<float>();
    // Tiles dealt round-robin: a static split into one contiguous range per thread leaves
    // one thread idle when the other's rays cross more of the head (cache misses).
    const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), tiles));
    at::parallel_for(0, workers, 1, [&](int64_t wb, int64_t we) {
      for (int64_t wk = wb; wk < we; ++wk) {
        for (int64_t tile = wk; tile < tiles; tile += workers) {
          const int64_t b = tile * kTile, e = std::min(P, b + kTile);
          k->forward(*w, src, b, e, dp, fp);
        }
      }
    });
    return {density, features};
  }
  auto dens2 = density.view({P, 1}), feat2 = features.view({P, F});
  // The output layer as two GEMMs writing straight into the outputs: the feature rows of a
  // tile are contiguous there, so the activations after them run vectorised in place.
  const auto w0t = s.w0.t(), w1d = s.w1.narrow(0, 0, 1).t(), w1f = s.w1.narrow(0, 1, F).t();
  const auto b1d = s.b1.narrow(0, 0, 1), b1f = s.b1.narrow(0, 1, F);
  AT_DISPATCH_FLOATING_TYPES(planes.scalar_type(), "decode_triplane_cpu", [&] {
    const auto g = lookup<scalar_t>(s);
    at::parallel_for(0, tiles, 1, [&](int64_t tb, int64_t te) {
      const auto fbuf = at::empty({kTile, s.C}, planes.options());
      const auto hbuf = at::empty({kTile, s.Hd}, planes.options());
      for (int64_t tile = tb; tile < te; ++tile) {
        const int64_t i0 = tile * kTile, n = std::min(kTile, P - i0);
        auto f = fbuf.narrow(0, 0, n), h = hbuf.narrow(0, 0, n);
        gather<scalar_t>(s, g, i0, i0 + n, f);
        at::addmm_out(h, s.b0, f, w0t);
        at::softplus_out(h, h, 1, 20);
        auto d = dens2.narrow(0, i0, n), fo = feat2.narrow(0, i0, n);
        at::addmm_out(d, b1d, h, w1d);
        at::addmm_out(fo, b1f, h, w1f);
        fo.sigmoid_().mul_(1 + 2 * 0.001).sub_(0.001);
      }
    });
  });
  return {density, features};
}

// Backward of the vector paths: per tile, the vector code recomputes the forward and fills the
// gradient of the mean features; the weight gradients are two GEMMs over the tile's rows
// (K = tile size: what GEMM libraries are good at), accumulated per chunk like the generic path.
void fast_backward(const fastdec::Kernels& k, const Setup& s, const at::Tensor& gd,
                   const at::Tensor& gf, const at::Tensor& feat, at::Tensor& gfeat2,
                   at::Tensor& acc, int64_t chunks, int64_t per, int64_t tiles, bool weights_grad) {
  using fastdec::kC;
  using fastdec::kHd;
  using fastdec::kOP;
  const auto w = fast_weights(s);
  const auto src = fast_source(s);
  const int64_t P = s.N * s.M, F = s.O - 1, C = s.C, Hd = s.Hd, O = s.O;
  const auto opts = acc.options();
  const float* gdp = gd.data_ptr<float>();
  const float* gfp = gf.data_ptr<float>();
  float* gfeatp = gfeat2.data_ptr<float>();
  at::parallel_for(0, chunks, 1, [&](int64_t cb, int64_t ce) {
    const auto fm = at::empty({kTile, kC}, opts), hb = at::empty({kTile, kHd}, opts);
    const auto gzb = at::empty({kTile, kHd}, opts), gob = at::empty({kTile, kOP}, opts);
    for (int64_t chunk = cb; chunk < ce; ++chunk) {
      const auto row = acc[chunk];
      auto gw0 = row.narrow(0, 0, Hd * C).view({Hd, C});
      auto gb0 = row.narrow(0, Hd * C, Hd);
      auto gw1 = row.narrow(0, Hd * C + Hd, O * Hd).view({O, Hd});
      auto gb1 = row.narrow(0, Hd * C + Hd + O * Hd, O);
      // fc1's gradient in the padded output order (F feature rows, then the density row).
      auto gw1p = at::zeros({O, kHd}, opts), gb1p = at::zeros({kOP}, opts);
      const fastdec::BackwardTile t{fm.data_ptr<float>(),
                                    hb.data_ptr<float>(),
                                    gzb.data_ptr<float>(),
                                    gob.data_ptr<float>(),
                                    gfeatp,
                                    gb0.data_ptr<float>(),
                                    gb1p.data_ptr<float>(),
                                    feat.defined() ? feat.data_ptr<float>() : nullptr};
      for (int64_t tile = chunk * per; tile < std::min(tiles, (chunk + 1) * per); ++tile) {
        const int64_t i0 = tile * kTile, n = std::min(kTile, P - i0);
        k.backward(*w, src, i0, i0 + n, gdp, gfp, t);
        if (!weights_grad) continue;  // the bias sums above are cheap; the GEMMs are skipped
        gw0.addmm_(gzb.narrow(0, 0, n).t(), fm.narrow(0, 0, n));
        gw1p.addmm_(gob.narrow(0, 0, n).narrow(1, 0, O).t(), hb.narrow(0, 0, n));
      }
      if (!weights_grad) continue;
      gw1.narrow(0, 0, 1).copy_(gw1p.narrow(0, F, 1));
      gw1.narrow(0, 1, F).copy_(gw1p.narrow(0, 0, F));
      gb1.narrow(0, 0, 1).copy_(gb1p.narrow(0, F, 1));
      gb1.narrow(0, 1, F).copy_(gb1p.narrow(0, 0, F));
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
decode_triplane_backward_cpu(const at::Tensor& grad_density, const at::Tensor& grad_features,
                             const c10::optional<at::Tensor>& features, const at::Tensor& planes,
                             const at::Tensor& points, double box_warp,
                             const at::Tensor& fc0_weight, const at::Tensor& fc0_bias,
                             const at::Tensor& fc1_weight, const at::Tensor& fc1_bias,
                             bool planes_grad, bool points_grad, bool weights_grad) {
  check_decode_triplane(planes, points, box_warp, fc0_weight, fc0_bias, fc1_weight, fc1_bias);
  const int64_t N = planes.size(0), M = points.size(1), C = planes.size(2),
                F = fc1_weight.size(0) - 1;
  TORCH_CHECK(grad_density.dim() == 3 && grad_density.size(0) == N && grad_density.size(1) == M &&
                  grad_density.size(2) == 1,
              "nofa: grad_density must have shape [", N, ", ", M, ", 1], got ",
              shape_str(grad_density));
  TORCH_CHECK(grad_features.dim() == 3 && grad_features.size(0) == N &&
                  grad_features.size(1) == M && grad_features.size(2) == F,
              "nofa: grad_features must have shape [", N, ", ", M, ", ", F, "], got ",
              shape_str(grad_features));
  const auto opts = planes.options();
  const Setup s = make_setup(planes, points, box_warp, fc0_weight, fc0_bias, fc1_weight, fc1_bias);
  const int64_t P = N * M, tiles = (P + kTile - 1) / kTile;
  const int64_t chunks = std::min<int64_t>(tiles, 2 * static_cast<int64_t>(at::get_num_threads()));
  // Per chunk: [gW0 | gb0 | gW1 | gb1] flattened, summed in chunk order afterwards.
  const int64_t nw = s.Hd * C + s.Hd + s.O * s.Hd + s.O;
  auto acc = at::zeros({std::max<int64_t>(chunks, 1), nw}, opts);
  auto gfeat = at::empty({N, M, C}, opts);
  if (P > 0) {
    const auto gd = grad_density.detach().reshape({P, 1}).to(planes.scalar_type()).contiguous();
    const auto gf = grad_features.detach().reshape({P, F}).to(planes.scalar_type()).contiguous();
    auto gfeat2 = gfeat.view({P, C});
    const auto w0t = s.w0.t(), w1d = s.w1.narrow(0, 0, 1), w1f = s.w1.narrow(0, 1, F);
    const auto b1f = s.b1.narrow(0, 1, F);
    const int64_t per = (tiles + chunks - 1) / chunks;
    if (const fastdec::Kernels* k = vector_path(s, planes, Op::kDecodeTriplaneBackward)) {
      // The forward's features give the output layer's sigmoid without recomputing it.
      at::Tensor feat;
      if (features.has_value() && features->defined()) {
        TORCH_CHECK(features->dim() == 3 && features->size(0) == N && features->size(1) == M &&
                        features->size(2) == F,
                    "nofa: features must have shape [", N, ", ", M, ", ", F, "], got ",
                    shape_str(*features));
        feat = features->detach().reshape({P, F}).to(planes.scalar_type()).contiguous();
      }
      fast_backward(*k, s, gd, gf, feat, gfeat2, acc, chunks, per, tiles, weights_grad);
    } else {
      AT_DISPATCH_FLOATING_TYPES(planes.scalar_type(), "decode_triplane_backward_cpu", [&] {
        const auto g = lookup<scalar_t>(s);
        at::parallel_for(0, chunks, 1, [&](int64_t cb, int64_t ce) {
          const auto fbuf = at::empty({kTile, C}, opts), zbuf = at::empty({kTile, s.Hd}, opts);
          const auto hbuf = at::empty({kTile, s.Hd}, opts), sbuf = at::empty({kTile, F}, opts);
          const auto gxbuf = at::empty({kTile, F}, opts), ghbuf = at::empty({kTile, s.Hd}, opts);
          for (int64_t chunk = cb; chunk < ce; ++chunk) {
            const auto row = acc[chunk];
            auto gw0 = row.narrow(0, 0, s.Hd * C).view({s.Hd, C});
            auto gb0 = row.narrow(0, s.Hd * C, s.Hd);
            auto gw1 = row.narrow(0, s.Hd * C + s.Hd, s.O * s.Hd).view({s.O, s.Hd});
            auto gb1 = row.narrow(0, s.Hd * C + s.Hd + s.O * s.Hd, s.O);
            for (int64_t tile = chunk * per; tile < std::min(tiles, (chunk + 1) * per); ++tile) {
              const int64_t i0 = tile * kTile, n = std::min(kTile, P - i0);
              auto f = fbuf.narrow(0, 0, n), z = zbuf.narrow(0, 0, n), h = hbuf.narrow(0, 0, n);
              auto sf = sbuf.narrow(0, 0, n), gxf = gxbuf.narrow(0, 0, n),
                   gh = ghbuf.narrow(0, 0, n);
              const auto gdt = gd.narrow(0, i0, n);
              gather<scalar_t>(s, g, i0, i0 + n, f);
              at::addmm_out(z, s.b0, f, w0t);
              at::softplus_out(h, z, 1, 20);
              // Only the feature logits matter here: density's gradient passes straight through,
              // and d features / d logit = 1.002 * sigmoid'(logit).
              at::addmm_out(sf, b1f, h, w1f.t());
              sf.sigmoid_();
              at::mul_out(gxf, gf.narrow(0, i0, n), 1 + 2 * 0.001);
              at::sigmoid_backward_out(gxf, gxf, sf);
              if (weights_grad) {
                gw1.narrow(0, 0, 1).addmm_(gdt.t(), h);
                gw1.narrow(0, 1, F).addmm_(gxf.t(), h);
                gb1.narrow(0, 0, 1).add_(gdt.sum(0));
                gb1.narrow(0, 1, F).add_(gxf.sum(0));
              }
              at::mm_out(gh, gxf, w1f);
              gh.addmm_(gdt, w1d);
              at::softplus_backward_out(gh, gh, z, 1, 20);  // now d loss / d z
              if (weights_grad) {
                gw0.addmm_(gh.t(), f);
                gb0.add_(gh.sum(0));
              }
              auto gfo = gfeat2.narrow(0, i0, n);
              at::mm_out(gfo, gh, s.w0);
            }
          }
        });
      });
    }
  }
  auto total = acc[0].clone();
  for (int64_t k = 1; k < acc.size(0); ++k) total.add_(acc[k]);
  const int64_t Hd = s.Hd, O = s.O;
  auto gw0 = total.narrow(0, 0, Hd * C).view({Hd, C});
  auto gb0 = total.narrow(0, Hd * C, Hd);
  auto gw1 = total.narrow(0, Hd * C + Hd, O * Hd).view({O, Hd});
  auto gb1 = total.narrow(0, Hd * C + Hd + O * Hd, O);
  static const auto st_backward = c10::Dispatcher::singleton()
                                      .findSchemaOrThrow("nofa::sample_triplane_backward", "")
                                      .typed<std::tuple<at::Tensor, at::Tensor>(
                                          const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                          double, c10::string_view, bool, bool)>();
  auto [gplanes, gpoints] =
      st_backward.call(gfeat, planes, points, box_warp, "mean", planes_grad, points_grad);
  if (!weights_grad) {  // not asked for: empty, as the plane and point gradients
    const auto none = at::empty({0}, opts);
    return {gplanes, gpoints, none, none.clone(), none.clone(), none.clone()};
  }
  return {gplanes, gpoints, gw0.clone(), gb0.clone(), gw1.clone(), gb1.clone()};
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CPU, m) {
  m.impl("decode_triplane", &decode_triplane_cpu);
  m.impl("decode_triplane_backward", &decode_triplane_backward_cpu);
}

}  // namespace nofa
