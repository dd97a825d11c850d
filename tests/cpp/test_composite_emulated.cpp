// The composite_rays / composite_rays_merged CUDA kernels (csrc/cuda/composite_rays_device.h)
// run on the CPU: the kernels' own source, compiled by the host compiler with stand-ins for
// the CUDA built-ins. sample_dot_kernel (the only one whose threads communicate) runs warp by
// warp, each warp as 32 std::threads alive at once, __shfl_xor_sync an exchange through
// memory with CUDA's `width` rule that also checks all 32 lanes take part with the same
// arguments; the other kernels (no shared memory, barriers or shuffles) run their threads one
// after another. The grid is the launchers' (blocks of kThreads = 256).
// The host side (csrc/cuda/composite_rays_cuda.cpp, the glue of both ops, and the
// launchers in composite_rays.cu) is replayed with plain loops: the sample-major [S, rays]
// copies, aminmax depth bounds, which pointers are null, the bound-gradient sums, scatters.
// Checked against the per-ray math of csrc/common/composite.h at stride 1 on the [rays, S]
// layout (what the CPU backend runs) plus plain loops for the channel sums: forward outputs
// and every gradient, float and double, and float32 with half-precision colours (host
// stand-ins for __nv_bfloat16 and __half: round-to-nearest-even conversions), S = 2 .. 48, C = 0,
// 1, 3, 32, 33, 96, ray counts that are not a multiple of the block, empty, saturated and NaN-depth
// rays, tied depths on the clamp bounds, white background on / off, each cotangent alone, the depth
// gradient and (colors_grad off: no colour rows for the kernel, an empty result) the colour
// gradient not asked for; composite_rays_merged's merge and scatter kernels with ties between the
// sets and empty / one-sample sets. Every output starts as NaN, so an element no thread writes
// fails. A deadlock (a lane missing a shuffle) fails after 120 s (tests/cpp/block_emu.h's
// watchdog). Build by hand: g++ -std=c++20 -O2 -pthread -I csrc
// tests/cpp/test_composite_emulated.cpp && ./a.out
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "../../tests/cpp/check.h"

// ---- stand-ins for the CUDA built-ins the kernels use ------------------------------------
#include "../../tests/cpp/cuda_emu.h"
#include "../../tests/cpp/block_emu.h"

namespace emu {
constexpr int kBlock = 256, kWarps = kBlock / kWarpSize;
static_assert(kWarps <= kMaxWarps, "the block needs more warps than cuda_emu.h holds");
}  // namespace emu

// Host stand-ins for the half-precision colour types (__nv_bfloat16, __half) and their
// conversions.
#include "../../tests/cpp/half_emu.h"

#include "cuda/composite_rays_device.h"

namespace {

using nofa::ColorRows;
static_assert(nofa::kThreads == emu::kBlock, "the emulated block size must be the launchers'");

// A CUDA launch <<<blocks_for(n), kThreads>>> (cuda/composite_rays.cu), two ways
// (tests/cpp/block_emu.h):
//  - run_warps: the warps of the grid one after another, each as kWarpSize std::threads of a
//    persistent pool, all alive at once, meeting at a barrier at the end of the warp. For
//    sample_dot_kernel, whose lanes exchange values through __shfl_xor_sync (no shared
//    memory, no __syncthreads, so the warps of a block are independent).
//  - run_threads: the grid's threads one after another on the calling thread. For the
//    kernels whose threads never communicate (no shared memory, barriers or shuffles): any
//    order of their threads is a schedule a GPU may run; NaN-filled outputs catch an element
//    no thread writes.
unsigned int blocks_for(int64_t n) {
  return static_cast<unsigned int>((n + emu::kBlock - 1) / emu::kBlock);
}

emu::BlockRunner* runner = nullptr;

void run_warps(int64_t n, std::function<void()> kernel) {
  if (n > 0) runner->launch_warps(blocks_for(n), emu::kBlock, std::move(kernel));
}
void run_threads(int64_t n, const std::function<void()>& kernel) {
  if (n > 0) runner->launch_serial(blocks_for(n), emu::kBlock, kernel);
}

template <typename T>
T nan_v() {
  return std::numeric_limits<T>::quiet_NaN();
}

// A colour value of type P from a T.
template <typename P, typename T>
P to_colour(T v) {
  if constexpr (std::is_same_v<P, T>) {
    return v;
  } else {
    return nofa::from_float<P>(static_cast<float>(v));
  }
}

// One problem of composite_rays (set a alone) or composite_rays_merged (sets a and b).
// Row-major like the op's tensors: colours [rays, S, C] (type P), densities / depths [rays, S].
template <typename T, typename P = T>
struct Problem {
  int64_t rays = 0, Sa = 0, Sb = 0, C = 0;
  bool merged = false, white = false;
  std::vector<P> ca, cb;
  std::vector<T> da, za, db, zb;
  bool has_gf = true, has_gz = true, has_gw = true, want_gdep = true;
  bool want_gcol = true;      // colors_grad: without it the glue passes no colour-gradient rows
  std::vector<T> gf, gz, gw;  // [rays, C], [rays], [rays, K]
  int64_t S() const { return Sa + Sb; }
};

// What the op returns, row-major: features [rays, C], depth [rays], weights [rays, K];
// gradients of colours / densities / depths of set a and set b (b empty for composite_rays).
template <typename T>
struct Result {
  std::vector<T> feat, depth, weights, gca, gda, gza, gcb, gdb, gzb;
};

// [rays, S] row-major -> [S, rays] (host: sample_major) and back (ray_major).
template <typename T>
std::vector<T> transpose(const std::vector<T>& v, int64_t rows, int64_t cols) {
  std::vector<T> t(v.size());
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) t[j * rows + i] = v[i * cols + j];
  }
  return t;
}

// at::aminmax: NaN when any element is NaN.
template <typename T>
void aminmax(const std::vector<T>& a, const std::vector<T>& b, T& lo, T& hi) {
  lo = std::numeric_limits<T>::infinity();
  hi = -lo;
  bool nan = false;
  for (const auto* v : {&a, &b}) {
    for (T x : *v) {
      if (x != x) nan = true;
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
  }
  if (nan) lo = hi = nan_v<T>();
}

template <typename T>
T* ptr(std::vector<T>& v) {
  return v.empty() ? nullptr : v.data();
}
template <typename T>
const T* ptr(const std::vector<T>& v) {
  return v.empty() ? nullptr : v.data();
}

// The kernels, launched as csrc/cuda/composite_rays.cu does, on the host code's layouts
// (composite_rays_cuda.cpp with plain loops for ATen).
template <typename T, typename P>
Result<T> run_kernels(const Problem<T, P>& p) {
  const int64_t rays = p.rays, Sa = p.Sa, Sb = p.Sb, S = p.S(), K = S - 1, C = p.C;
  const T nan = nan_v<T>();
  Result<T> out;
  T lo, hi;
  aminmax(p.za, p.zb, lo, hi);
  // Sample-major densities / depths [S, rays] (merged: the merge kernel's output) and the
  // source rows of the merged samples (int32 [rays, S]).
  std::vector<T> den_t(S * rays, nan), z_t(S * rays, nan);
  std::vector<int32_t> src;
  if (p.merged) {
    const auto da_t = transpose(p.da, rays, Sa), za_t = transpose(p.za, rays, Sa);
    const auto db_t = transpose(p.db, rays, Sb), zb_t = transpose(p.zb, rays, Sb);
    src.assign(rays * S, -1);
    run_threads(rays, [&] {
      nofa::merge_kernel<T>(ptr(da_t), ptr(za_t), ptr(db_t), ptr(zb_t), rays, Sa, Sb, den_t.data(),
                            z_t.data(), src.data());
    });
  } else {
    den_t = transpose(p.da, rays, S);
    z_t = transpose(p.za, rays, S);
  }
  const ColorRows<const P> rows{ptr(p.ca),
                                p.merged ? ptr(p.cb) : nullptr,
                                p.merged ? src.data() : nullptr,
                                p.merged ? Sa : S,
                                p.merged ? Sb : 0,
                                C};
  // Forward (launch_composite_rays_forward).
  out.feat.assign(rays * C, nan);
  out.depth.assign(rays, nan);
  std::vector<T> weights_t(K * rays, nan);
  run_threads(rays, [&] {
    nofa::weights_kernel<T>(den_t.data(), z_t.data(), &lo, &hi, out.depth.data(), weights_t.data(),
                            rays, S);
  });
  run_threads(rays * C, [&] {
    nofa::features_kernel<T, P>(rows, weights_t.data(), out.feat.data(), rays, S, C, p.white);
  });
  out.weights = transpose(weights_t, K, rays);

  // Backward (composite_rays_backward_cuda + launch_composite_rays_backward).
  const bool gf_defined = p.has_gf;
  std::vector<T> gf_sum;
  if (gf_defined && p.white) {
    gf_sum.assign(rays, T(0));
    for (int64_t r = 0; r < rays; ++r) {
      for (int64_t c = 0; c < C; ++c) gf_sum[r] += p.gf[r * C + c];
      gf_sum[r] *= T(2);
    }
  }
  const std::vector<T> gw_t = p.has_gw ? transpose(p.gw, rays, K) : std::vector<T>();
  std::vector<T> gden_t(S * rays, nan), gdep_t(p.want_gdep ? S * rays : 0, nan);
  std::vector<T> e_t(gf_defined ? S * rays : 0, nan), scratch(K * nofa::kScratch * rays, nan);
  std::vector<T> bounds(p.want_gdep ? 2 * rays : 0, nan);
  // Colour gradients: written by the kernel when grad_features is given, else zeros; an
  // empty tensor and no rows for the kernel when colors_grad is off.
  const bool write_colours = gf_defined && p.want_gcol;
  std::vector<P> gca(p.want_gcol ? rays * Sa * C : 0, to_colour<P>(gf_defined ? nan : T(0)));
  std::vector<P> gcb(p.want_gcol ? rays * Sb * C : 0, to_colour<P>(gf_defined ? nan : T(0)));
  const ColorRows<P> grad_rows{write_colours ? ptr(gca) : nullptr,
                               write_colours && p.merged ? ptr(gcb) : nullptr,
                               rows.src,
                               rows.Sa,
                               rows.Sb,
                               C};
  const T* gf = C > 0 && gf_defined ? p.gf.data() : nullptr;
  if (gf) {
    const int L = nofa::dot_lanes(C);
    run_warps(rays * S * L,
              [&] { nofa::sample_dot_kernel<T, P>(gf, rows, e_t.data(), rays, S, C, L); });
  }
  run_threads(rays, [&] {
    nofa::ray_backward_kernel<T>(gf && p.white ? ptr(gf_sum) : nullptr,
                                 p.has_gz ? p.gz.data() : nullptr, ptr(gw_t), den_t.data(),
                                 z_t.data(), &lo, &hi, gf ? e_t.data() : nullptr, scratch.data(),
                                 gden_t.data(), ptr(gdep_t), ptr(bounds), rays, S);
  });
  if ((grad_rows.a || grad_rows.b) && gf) {
    run_threads(rays * S * C,
                [&] { nofa::color_grad_kernel<T, P>(gf, scratch.data(), grad_rows, rays, S, C); });
  }
  for (auto [from, to] : {std::make_pair(&gca, &out.gca), std::make_pair(&gcb, &out.gcb)}) {
    for (P v : *from) to->push_back(static_cast<T>(nofa::to_float(v)));
  }
  // Merged-order [S, rays] gradients to [rays, S] rows, then (merged) to the sets' rows.
  const std::vector<T> gden = transpose(gden_t, S, rays);
  const std::vector<T> gdep = p.want_gdep ? transpose(gdep_t, S, rays) : std::vector<T>();
  if (p.merged) {
    out.gda.assign(rays * Sa, nan);
    out.gdb.assign(rays * Sb, nan);
    run_threads(rays * S, [&] {
      nofa::scatter_kernel<T>(gden.data(), src.data(), rays, Sa, Sb, ptr(out.gda), ptr(out.gdb));
    });
    if (p.want_gdep) {
      out.gza.assign(rays * Sa, nan);
      out.gzb.assign(rays * Sb, nan);
      run_threads(rays * S, [&] {
        nofa::scatter_kernel<T>(gdep.data(), src.data(), rays, Sa, Sb, ptr(out.gza), ptr(out.gzb));
      });
    }
  } else {
    out.gda = gden;
    out.gza = gdep;
  }
  if (p.want_gdep) {
    // totals = bounds.sum(1), counts = elements equal to lo / hi over both depth tensors;
    // composite_rays adds the shares on z_t / gdep_t (any layout), merged on the sets' rows.
    T totals[2] = {T(0), T(0)};
    for (int64_t r = 0; r < rays; ++r) {
      totals[0] += bounds[r];
      totals[1] += bounds[rays + r];
    }
    int64_t counts[2] = {0, 0};
    for (const auto* v : {&p.za, &p.zb}) {
      for (T x : *v) {
        counts[0] += x == lo;
        counts[1] += x == hi;
      }
    }
    if (p.merged) {
      run_threads(rays * Sa, [&] {
        nofa::bound_grads_kernel<T>(ptr(p.za), ptr(out.gza), rays * Sa, &lo, &hi, totals, counts);
      });
      run_threads(rays * Sb, [&] {
        nofa::bound_grads_kernel<T>(ptr(p.zb), ptr(out.gzb), rays * Sb, &lo, &hi, totals, counts);
      });
    } else {
      run_threads(S * rays, [&] {
        nofa::bound_grads_kernel<T>(z_t.data(), gdep_t.data(), S * rays, &lo, &hi, totals, counts);
      });
      out.gza = transpose(gdep_t, S, rays);
    }
  }
  return out;
}

// The reference: per ray on the [rays, S] layout, common/composite.h at stride 1 (the CPU
// backend's math), the merge as a stable sort of the concatenated sets (ties: set a first),
// channel sums as plain loops in the order of their definitions.
template <typename T, typename P>
Result<T> run_reference(const Problem<T, P>& p) {
  const int64_t rays = p.rays, Sa = p.Sa, Sb = p.Sb, S = p.S(), K = S - 1, C = p.C;
  const nofa::UnitStride one;
  Result<T> out;
  T lo, hi;
  aminmax(p.za, p.zb, lo, hi);
  out.feat.assign(rays * C, T(0));
  out.depth.assign(rays, T(0));
  out.weights.assign(rays * K, T(0));
  out.gca.assign(p.want_gcol ? rays * Sa * C : 0, T(0));
  out.gcb.assign(p.want_gcol ? rays * Sb * C : 0, T(0));
  out.gda.assign(rays * Sa, T(0));
  out.gdb.assign(rays * Sb, T(0));
  out.gza.assign(p.want_gdep ? rays * Sa : 0, T(0));
  out.gzb.assign(p.want_gdep ? rays * Sb : 0, T(0));
  T totals[2] = {T(0), T(0)};
  std::vector<T> d(S), z(S), w(K), e(S), buf(K * nofa::kScratch), gd(S), gz(S);
  std::vector<const P*> col(S);
  std::vector<T*> gcol(S), gdr(S), gzr(S);
  std::vector<int64_t> order(S);
  for (int64_t r = 0; r < rays; ++r) {
    // Sample s of the ray: set a's i < Sa, else set b's i - Sa, in stable depth order.
    for (int64_t i = 0; i < S; ++i) order[i] = i;
    auto zof = [&](int64_t i) { return i < Sa ? p.za[r * Sa + i] : p.zb[r * Sb + i - Sa]; };
    if (p.merged) {
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t i, int64_t j) { return zof(i) < zof(j); });
    }
    for (int64_t s = 0; s < S; ++s) {
      const int64_t i = order[s];
      const bool a = i < Sa;
      const int64_t row = a ? r * Sa + i : r * Sb + i - Sa;
      d[s] = a ? p.da[row] : p.db[row];
      z[s] = a ? p.za[row] : p.zb[row];
      col[s] = (a ? p.ca.data() : p.cb.data()) + row * C;
      gcol[s] = p.want_gcol ? (a ? out.gca.data() : out.gcb.data()) + row * C : nullptr;
      gdr[s] = (a ? out.gda.data() : out.gdb.data()) + row;
      gzr[s] = p.want_gdep ? (a ? out.gza.data() : out.gzb.data()) + row : nullptr;
    }
    T wsum, zsum;
    nofa::ray_weights(z.data(), K, nofa::AlphaFromInputs<T>{d.data(), z.data(), 1}, w.data(), one,
                      wsum, zsum);
    out.depth[r] = nofa::ray_depth(zsum, wsum, lo, hi);
    for (int64_t k = 0; k < K; ++k) out.weights[r * K + k] = w[k];
    auto colour = [&](int64_t s, int64_t c) { return static_cast<T>(nofa::to_float(col[s][c])); };
    auto u = [&](int64_t s) { return ((s > 0 ? w[s - 1] : T(0)) + (s < K ? w[s] : T(0))) / T(2); };
    for (int64_t c = 0; c < C; ++c) {
      T acc = T(0);
      for (int64_t s = 0; s < S; ++s) acc += u(s) * colour(s, c);
      if (p.white) acc = acc + T(1) - wsum;
      out.feat[r * C + c] = acc * T(2) - T(1);
    }
    const bool gf = p.has_gf && C > 0;
    T gsum = T(0);
    for (int64_t s = 0; s < S && gf; ++s) {
      e[s] = T(0);
      for (int64_t c = 0; c < C; ++c) e[s] += T(2) * p.gf[r * C + c] * colour(s, c);
    }
    for (int64_t c = 0; c < C && gf; ++c) gsum += T(2) * p.gf[r * C + c];
    const nofa::RayCotangents<T> ct{gf ? e.data() : nullptr,
                                    p.has_gw ? p.gw.data() + r * K : nullptr,
                                    gf && p.white ? -gsum : T(0),
                                    p.has_gz ? p.gz[r] : T(0),
                                    lo,
                                    hi};
    T glo, ghi;
    nofa::fill_intervals(d.data(), z.data(), K, buf.data(), one);
    nofa::ray_backward(z.data(), K, ct, buf.data(), one, gd.data(),
                       p.want_gdep ? gz.data() : nullptr, glo, ghi);
    totals[0] += glo;
    totals[1] += ghi;
    for (int64_t s = 0; s < S; ++s) {
      *gdr[s] = gd[s];
      if (p.want_gdep) *gzr[s] = gz[s];
      for (int64_t c = 0; c < C && gf && p.want_gcol; ++c) {
        // Rounded to the colours' type, as the kernel stores it.
        const T g = u(s) * (T(2) * p.gf[r * C + c]);
        gcol[s][c] = static_cast<T>(nofa::to_float(to_colour<P>(g)));
      }
    }
  }
  if (p.want_gdep) {
    int64_t counts[2] = {0, 0};
    for (const auto* v : {&p.za, &p.zb}) {
      for (T x : *v) {
        counts[0] += x == lo;
        counts[1] += x == hi;
      }
    }
    for (auto [zs, gs] : {std::make_pair(&p.za, &out.gza), std::make_pair(&p.zb, &out.gzb)}) {
      for (size_t i = 0; i < zs->size(); ++i) {
        if ((*zs)[i] == lo) (*gs)[i] += nofa::bound_share(totals[0], counts[0]);
        if ((*zs)[i] == hi) (*gs)[i] += nofa::bound_share(totals[1], counts[1]);
      }
    }
  }
  return out;
}

// Element i passes when both are NaN, both the same infinity, or |got - want| <= tol *
// (|want| + the tensor's largest finite |want|) (the channel sums are added in another order);
// with `ulp` set, |got - want| <= tol * |want| + atol instead (one rounding step of a half type).
template <typename T>
bool close(const char* name, const char* what, const std::vector<T>& got,
           const std::vector<T>& want, double tol, bool ulp = false, double atol = 0.0) {
  if (got.size() != want.size()) {
    std::fprintf(stderr, "%s: %s has %zu elements, expected %zu\n", name, what, got.size(),
                 want.size());
    return false;
  }
  double scale = 0.0;
  for (T v : want) {
    if (std::isfinite(v)) scale = std::max(scale, std::fabs(static_cast<double>(v)));
  }
  if (ulp) scale = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double a = got[i], b = want[i];
    const bool ok = (std::isnan(a) && std::isnan(b)) || a == b ||
                    (std::isfinite(a) && std::isfinite(b) &&
                     std::fabs(a - b) <= tol * (std::fabs(b) + scale) + atol);
    if (!ok) {
      std::fprintf(stderr, "%s: %s[%zu] = %.10g, expected %.10g\n", name, what, i, a, b);
      return false;
    }
  }
  return true;
}

template <typename T, typename P>
void check_case(const char* name, const Problem<T, P>& p) {
  const int before = emu::bad_shuffles.load();
  const Result<T> got = run_kernels(p), want = run_reference(p);
  const double tol = std::is_same_v<T, float> ? 2e-6 : 1e-14;
  CHECK(close(name, "features", got.feat, want.feat, tol));
  CHECK(close(name, "depth", got.depth, want.depth, tol));
  CHECK(close(name, "weights", got.weights, want.weights, tol));
  // A colour gradient stored in half precision may round the other way: one ulp of P
  // (2^-7 / 2^-10 of the value; float16's subnormal step 2^-24 near zero).
  const bool half = !std::is_same_v<P, T>;
  const double ctol = !half ? tol : std::is_same_v<P, emu::Bf16> ? 1.0 / 128 : 1.0 / 1024;
  const double catol = half && !std::is_same_v<P, emu::Bf16> ? 0x1p-24 : 0.0;
  CHECK(close(name, "grad colors a", got.gca, want.gca, ctol, half, catol));
  CHECK(close(name, "grad densities a", got.gda, want.gda, tol));
  CHECK(close(name, "grad depths a", got.gza, want.gza, tol));
  if (p.merged) {
    CHECK(close(name, "grad colors b", got.gcb, want.gcb, ctol, half, catol));
    CHECK(close(name, "grad densities b", got.gdb, want.gdb, tol));
    CHECK(close(name, "grad depths b", got.gzb, want.gzb, tol));
  }
  CHECK(emu::bad_shuffles.load() == before);
}

enum RayKind { kMixed, kEmpty, kSaturated };

// Random rays: every 7th ray empty (densities far below 0: alpha == 0) and every 5th
// saturated (alpha == 1 from the first interval) in kMixed; sorted depths in [1, ~7], the
// first ray of each set starting at exactly 1 and two rays ending at the same largest depth
// (ties on the clamp bounds); NaN depths in the rays listed.
template <typename T, typename P = T>
Problem<T, P> make_problem(int64_t rays, int64_t Sa, int64_t Sb, int64_t C, bool merged, bool white,
                           unsigned seed, RayKind kind = kMixed,
                           std::vector<int64_t> nan_rays = {}) {
  Problem<T, P> p;
  p.rays = rays;
  p.Sa = Sa;
  p.Sb = Sb;
  p.C = C;
  p.merged = merged;
  p.white = white;
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(0.0, 1.0);
  auto set = [&](int64_t Sx, std::vector<P>& col, std::vector<T>& den, std::vector<T>& z) {
    col.resize(rays * Sx * C);
    for (auto& v : col) v = to_colour<P>(static_cast<T>(ud(rng)));
    den.resize(rays * Sx);
    z.resize(rays * Sx);
    for (int64_t r = 0; r < rays; ++r) {
      const bool empty = kind == kEmpty || (kind == kMixed && r % 7 == 3);
      const bool full = kind == kSaturated || (kind == kMixed && r % 5 == 2);
      double depth = r == 0 ? 1.0 : 1.0 + 0.5 * ud(rng);
      for (int64_t s = 0; s < Sx; ++s) {
        den[r * Sx + s] = static_cast<T>(empty  ? -60.0 + nd(rng)
                                         : full ? 80.0 + 10.0 * nd(rng)
                                                : 2.0 * nd(rng));
        z[r * Sx + s] = static_cast<T>(depth);
        depth += 0.02 + 0.2 * ud(rng);
      }
    }
    if (Sx > 0 && rays > 2) {
      // Two rays end on the same largest depth.
      T far = T(0);
      for (int64_t r = 0; r < rays; ++r) far = std::max(far, z[r * Sx + Sx - 1]);
      z[1 * Sx + Sx - 1] = far;
      if (z[2 * Sx + Sx - 1] < far) z[2 * Sx + Sx - 1] = far;
    }
  };
  set(Sa, p.ca, p.da, p.za);
  set(Sb, p.cb, p.db, p.zb);
  if (merged && Sa > 0 && Sb > 0) {
    // Ties between the sets: ray 4 of set b repeats set a's depths where it can.
    for (int64_t s = 0; s < Sb && rays > 4; ++s) {
      p.zb[4 * Sb + s] = s < Sa ? p.za[4 * Sa + s] : p.zb[4 * Sb + s - 1] + T(0.125);
    }
  }
  for (int64_t r : nan_rays) {
    auto& z = Sa > 1 ? p.za : p.zb;
    const int64_t Sx = Sa > 1 ? Sa : Sb;
    z[r * Sx + Sx / 2] = nan_v<T>();
  }
  const int64_t K = p.S() - 1;
  p.gf.resize(rays * C);
  for (auto& v : p.gf) v = static_cast<T>(nd(rng));
  p.gz.resize(rays);
  for (auto& v : p.gz) v = static_cast<T>(nd(rng));
  p.gw.resize(rays * K);
  for (auto& v : p.gw) v = static_cast<T>(nd(rng));
  return p;
}

// Each cotangent alone, then all of them without the depth gradient, then without the
// colour gradient.
template <typename T, typename P>
void check_cotangents(const char* name, Problem<T, P> p) {
  char label[160];
  const struct {
    bool gf, gz, gw, gdep, gcol;
    const char* what;
  } subsets[] = {{true, false, false, true, true, "grad_features only"},
                 {false, true, false, true, true, "grad_depth only"},
                 {false, false, true, true, true, "grad_weights only"},
                 {true, true, true, false, true, "no depth gradient"},
                 {true, true, true, true, false, "no colour gradient"}};
  for (const auto& s : subsets) {
    p.has_gf = s.gf;
    p.has_gz = s.gz;
    p.has_gw = s.gw;
    p.want_gdep = s.gdep;
    p.want_gcol = s.gcol;
    std::snprintf(label, sizeof(label), "%s, %s", name, s.what);
    check_case(label, p);
  }
}

template <typename T>
void run_all(const char* type) {
  char name[160];
  // composite_rays: 300 rays (one whole block and a partial one for the per-ray kernels).
  const struct {
    int64_t rays, S, C;
  } shapes[] = {{300, 2, 3}, {300, 5, 0}, {300, 9, 1}, {9, 17, 32},
                {11, 6, 33}, {5, 48, 96}, {2, 40, 3},  {300, 3, 3}};
  unsigned seed = 1;
  for (const auto& sh : shapes) {
    for (bool white : {false, true}) {
      std::snprintf(name, sizeof(name), "%s composite_rays rays=%lld S=%lld C=%lld white=%d", type,
                    static_cast<long long>(sh.rays), static_cast<long long>(sh.S),
                    static_cast<long long>(sh.C), white);
      check_case(name, make_problem<T>(sh.rays, sh.S, 0, sh.C, false, white, seed++));
    }
  }
  check_cotangents("composite_rays cotangents", make_problem<T>(90, 7, 0, 5, false, true, 40));
  check_case("composite_rays all empty", make_problem<T>(41, 6, 0, 3, false, false, 41, kEmpty));
  check_case("composite_rays all empty, white",
             make_problem<T>(41, 6, 0, 3, false, true, 42, kEmpty));
  check_case("composite_rays all saturated",
             make_problem<T>(41, 6, 0, 3, false, true, 43, kSaturated));
  check_case("composite_rays NaN depths",
             make_problem<T>(60, 8, 0, 4, false, true, 44, kMixed, {5, 37}));
  // composite_rays_merged: ties between the sets, one-sample and empty sets.
  const struct {
    int64_t rays, Sa, Sb, C;
  } msh[] = {{300, 4, 3, 3}, {13, 9, 12, 33}, {100, 1, 1, 2},
             {100, 0, 5, 3}, {100, 6, 0, 1},  {100, 3, 2, 0}};
  for (const auto& sh : msh) {
    for (bool white : {false, true}) {
      std::snprintf(name, sizeof(name),
                    "%s composite_rays_merged rays=%lld Sa=%lld Sb=%lld C=%lld white=%d", type,
                    static_cast<long long>(sh.rays), static_cast<long long>(sh.Sa),
                    static_cast<long long>(sh.Sb), static_cast<long long>(sh.C), white);
      check_case(name, make_problem<T>(sh.rays, sh.Sa, sh.Sb, sh.C, true, white, seed++));
    }
  }
  check_cotangents("composite_rays_merged cotangents",
                   make_problem<T>(80, 4, 5, 6, true, true, 50));
}

// Half-precision colours with float32 everything else (autocast): read with to_float, the
// colour gradient stored with from_float. A few shapes of both ops.
template <typename P>
void run_half(const char* type) {
  char name[160];
  auto label = [&](const char* what) {
    std::snprintf(name, sizeof(name), "%s %s", type, what);
    return name;
  };
  check_case(label("composite_rays rays=300 S=5 C=3 white"),
             make_problem<float, P>(300, 5, 0, 3, false, true, 60));
  check_case(label("composite_rays rays=11 S=6 C=33"),
             make_problem<float, P>(11, 6, 0, 33, false, false, 61));
  check_case(label("composite_rays_merged rays=13 Sa=9 Sb=12 C=33 white"),
             make_problem<float, P>(13, 9, 12, 33, true, true, 62));
  check_cotangents(label("composite_rays_merged cotangents"),
                   make_problem<float, P>(80, 4, 5, 6, true, false, 63));
}

}  // namespace

int main() {
  const auto t0 = std::chrono::steady_clock::now();
  {
    // A lane that never reaches a shuffle leaves its warp waiting (or a thread never returns):
    // the runner's watchdog ends the program after 120 s instead of hanging.
    emu::BlockRunner br;
    runner = &br;
    run_all<float>("float");
    run_all<double>("double");
    run_half<emu::Bf16>("bfloat16 colours");
#if defined(NOFA_EMU_FLOAT16)
    run_half<emu::Half>("float16 colours");
#else
    std::printf("float16 colours skipped: the compiler has no _Float16\n");
#endif
    runner = nullptr;
  }
  std::printf("%.2f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  TEST_MAIN_END();
}
