// composite_rays_merged on the CPU: composite_rays of two depth-sorted sample sets per
// ray, merged on the fly.
//
// Per ray, a two-pointer merge (ties: set a first, i.e. a stable sort of the
// concatenation) writes the merged densities and depths into a small per-ray scratch and,
// for each merged sample, its row in the concatenation of the two sets. The per-ray math
// of composite_rays (cpu/composite_rays_cpu.h) then runs on the scratch, reading colour
// rows in place, and the backward writes colour gradients straight into the right set's
// rows and scatters density / depth gradients back. Nothing of size [N, R, S, C] is
// concatenated or gathered. Parallel over rays, no atomics, deterministic.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "composite_rays.h"
#include "composite_rays_merged.h"
#include "cpu/composite_rays_cpu.h"

namespace nofa {
namespace {

[[maybe_unused]] const bool kImplemented = implement_intervals(isa::Op::kCompositeRaysMerged);

constexpr int64_t kGrain = 16;  // rays per task

// One sample set's contiguous data: colours [rays, S, C], densities / depths [rays, S].
template <typename T>
struct Set {
  const T *col, *den, *z;
  int64_t S;
};

template <typename T>
struct Dims {
  int64_t rays, Sa, Sb, S, K, C;
  isa::Isa tier;  // fill_intervals_cpu's instruction-set tier
};

// The merged per-ray scratch: densities, depths and source rows (i < Sa: row i of set a,
// else row i - Sa of set b) in depth order.
template <typename T>
struct MergeScratch {
  std::vector<T> den, z;
  std::vector<int64_t> src;
  explicit MergeScratch(int64_t S) : den(S), z(S), src(S) {}
};

// Two-pointer merge of ray r; the sets are sorted along S (the op's precondition).
template <typename T>
void merge_ray(const Set<T>& a, const Set<T>& b, int64_t r, MergeScratch<T>& m) {
  const T *da = a.den + r * a.S, *za = a.z + r * a.S;
  const T *db = b.den + r * b.S, *zb = b.z + r * b.S;
  int64_t i = 0, j = 0, s = 0;
  while (i < a.S && j < b.S) {
    if (!(zb[j] < za[i])) {  // a tie takes set a first
      m.den[s] = da[i], m.z[s] = za[i], m.src[s++] = i++;
    } else {
      m.den[s] = db[j], m.z[s] = zb[j], m.src[s++] = a.S + j++;
    }
  }
  for (; i < a.S; ++i) m.den[s] = da[i], m.z[s] = za[i], m.src[s++] = i;
  for (; j < b.S; ++j) m.den[s] = db[j], m.z[s] = zb[j], m.src[s++] = a.S + j;
}

template <typename T>
void forward_rays(const Set<T>& a, const Set<T>& b, const Dims<T>& d, T* feat, T* depth, T* w, T lo,
                  T hi, bool white, int64_t begin, int64_t end) {
  RayScratch<T> sc(d.S, d.C);
  MergeScratch<T> m(d.S);
  const MergedRows rows{m.src.data(), d.Sa, d.C};
  for (int64_t r = begin; r < end; ++r) {
    merge_ray(a, b, r, m);
    depth[r] =
        forward_ray(m.den.data(), m.z.data(), d.K, d.C, rows, a.col + r * d.Sa * d.C,
                    b.col + r * d.Sb * d.C, w + r * d.K, feat + r * d.C, lo, hi, white, d.tier, sc);
  }
}

template <typename T>
struct Grads {
  const T *gf, *gz, *gw;  // [rays, C], [rays], [rays, K]; each may be null
  T *gcol_a, *gcol_b;     // [rays, S_a, C], [rays, S_b, C]; null when not asked
  T *gden_a, *gden_b;     // [rays, S_a], [rays, S_b]; null when not asked
  T *gdep_a, *gdep_b;     // [rays, S_a], [rays, S_b]; null when not asked
  T* bounds;              // [rays, 2] when depth gradients are asked
};

// Writes merged-order values v [S] to the rows of set a / b their samples came from.
template <typename T>
void scatter(const T* v, const int64_t* src, int64_t S, int64_t Sa, T* out_a, T* out_b) {
  for (int64_t s = 0; s < S; ++s) {
    const int64_t i = src[s];
    if (i < Sa) {
      out_a[i] = v[s];
    } else {
      out_b[i - Sa] = v[s];
    }
  }
}

template <typename T>
void backward_rays(const Set<T>& a, const Set<T>& b, const Dims<T>& d, const Grads<T>& g, T lo,
                   T hi, bool white, bool colors_grad, int64_t begin, int64_t end) {
  RayScratch<T> sc(d.S, d.C);
  MergeScratch<T> m(d.S);
  std::vector<T> gden(d.S), gdep(d.S);
  const MergedRows rows{m.src.data(), d.Sa, d.C};
  const bool depths_grad = g.gdep_a || g.gdep_b;
  for (int64_t r = begin; r < end; ++r) {
    merge_ray(a, b, r, m);
    const RayGrads<T> rg{g.gf ? g.gf + r * d.C : nullptr, g.gz ? g.gz[r] : T(0),
                         g.gw ? g.gw + r * d.K : nullptr};
    T glo, ghi;
    backward_ray(m.den.data(), m.z.data(), d.K, d.C, rows, a.col + r * d.Sa * d.C,
                 b.col + r * d.Sb * d.C, rg, lo, hi, white, d.tier, sc, gden.data(),
                 depths_grad ? gdep.data() : nullptr,
                 colors_grad ? g.gcol_a + r * d.Sa * d.C : nullptr,
                 colors_grad ? g.gcol_b + r * d.Sb * d.C : nullptr, glo, ghi);
    if (g.gden_a || g.gden_b) {
      scatter(gden.data(), m.src.data(), d.S, d.Sa, g.gden_a + r * d.Sa, g.gden_b + r * d.Sb);
    }
    if (depths_grad) {
      scatter(gdep.data(), m.src.data(), d.S, d.Sa, g.gdep_a + r * d.Sa, g.gdep_b + r * d.Sb);
      g.bounds[2 * r] = glo;
      g.bounds[2 * r + 1] = ghi;
    }
  }
}

// min / max over both sets' depths (the clamp range of the depth output).
template <typename T>
void depth_range(const Set<T>& a, const Set<T>& b, int64_t rays, T& lo, T& hi) {
  lo = hi = a.S ? a.z[0] : b.z[0];
  fold_depth_range(a.z, rays * a.S, lo, hi);
  fold_depth_range(b.z, rays * b.S, lo, hi);
}

// The six inputs made contiguous, and what both entry points derive from them.
struct Inputs {
  at::Tensor ca, da, za, cb, db, zb;
};

template <typename T>
struct Problem {
  Set<T> a, b;
  Dims<T> d;
  T lo, hi;  // the depth clamp range
};

template <typename T>
Problem<T> problem_of(const Inputs& in) {
  const int64_t Sa = in.ca.size(2), Sb = in.cb.size(2);
  Problem<T> p{{in.ca.data_ptr<T>(), in.da.data_ptr<T>(), in.za.data_ptr<T>(), Sa},
               {in.cb.data_ptr<T>(), in.db.data_ptr<T>(), in.zb.data_ptr<T>(), Sb},
               {in.ca.size(0) * in.ca.size(1), Sa, Sb, Sa + Sb, Sa + Sb - 1, in.ca.size(3),
                intervals_path<T>(isa::Op::kCompositeRaysMerged)},
               T(0),
               T(0)};
  depth_range(p.a, p.b, p.d.rays, p.lo, p.hi);
  return p;
}

Inputs contiguous_inputs(const at::Tensor& colors_a, const at::Tensor& densities_a,
                         const at::Tensor& depths_a, const at::Tensor& colors_b,
                         const at::Tensor& densities_b, const at::Tensor& depths_b) {
  return Inputs{colors_a.contiguous(), densities_a.contiguous(), depths_a.contiguous(),
                colors_b.contiguous(), densities_b.contiguous(), depths_b.contiguous()};
}

using Tensor3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using Tensor6 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

Tensor3 composite_rays_merged_cpu(const at::Tensor& colors_a, const at::Tensor& densities_a,
                                  const at::Tensor& depths_a, const at::Tensor& colors_b,
                                  const at::Tensor& densities_b, const at::Tensor& depths_b,
                                  bool white_back) {
  check_composite_rays_merged(colors_a, densities_a, depths_a, colors_b, densities_b, depths_b);
  const int64_t N = colors_a.size(0), R = colors_a.size(1), C = colors_a.size(3);
  const int64_t S = colors_a.size(2) + colors_b.size(2);
  const auto opts = colors_a.options();
  auto feat = at::empty({N, R, C}, opts);
  auto depth = at::empty({N, R, 1}, opts);
  auto weights = at::empty({N, R, S - 1, 1}, opts);
  if (N * R == 0) return {feat, depth, weights};
  const auto in =
      contiguous_inputs(colors_a, densities_a, depths_a, colors_b, densities_b, depths_b);
  AT_DISPATCH_FLOATING_TYPES(colors_a.scalar_type(), "composite_rays_merged_cpu", [&] {
    using T = scalar_t;
    const auto p = problem_of<T>(in);
    T *fp = feat.data_ptr<T>(), *op = depth.data_ptr<T>(), *wp = weights.data_ptr<T>();
    at::parallel_for(0, p.d.rays, kGrain, [&](int64_t begin, int64_t end) {
      forward_rays(p.a, p.b, p.d, fp, op, wp, p.lo, p.hi, white_back, begin, end);
    });
  });
  return {feat, depth, weights};
}

Tensor6 composite_rays_merged_backward_cpu(
    const std::optional<at::Tensor>& grad_features, const std::optional<at::Tensor>& grad_depth,
    const std::optional<at::Tensor>& grad_weights, const at::Tensor& colors_a,
    const at::Tensor& densities_a, const at::Tensor& depths_a, const at::Tensor& colors_b,
    const at::Tensor& densities_b, const at::Tensor& depths_b, bool white_back, bool colors_grad,
    bool densities_grad, bool depths_grad) {
  check_composite_rays_merged(colors_a, densities_a, depths_a, colors_b, densities_b, depths_b);
  const int64_t N = colors_a.size(0), R = colors_a.size(1), C = colors_a.size(3);
  const int64_t Sa = colors_a.size(2), Sb = colors_b.size(2);
  const auto gf = cotangent(grad_features, colors_a, {N, R, C}, "grad_features");
  const auto gz = cotangent(grad_depth, colors_a, {N, R, 1}, "grad_depth");
  const auto gw = cotangent(grad_weights, colors_a, {N, R, Sa + Sb - 1, 1}, "grad_weights");
  const auto opts = colors_a.options();
  auto alloc = [&](bool need, int64_t S, int64_t last) {
    return need ? at::empty({N, R, S, last}, opts) : at::empty({0}, opts);
  };
  auto gca = alloc(colors_grad, Sa, C), gcb = alloc(colors_grad, Sb, C);
  auto gda = alloc(densities_grad, Sa, 1), gdb = alloc(densities_grad, Sb, 1);
  auto gza = alloc(depths_grad, Sa, 1), gzb = alloc(depths_grad, Sb, 1);
  if (N * R == 0 || !(colors_grad || densities_grad || depths_grad)) {
    return {gca, gda, gza, gcb, gdb, gzb};
  }
  const auto in =
      contiguous_inputs(colors_a, densities_a, depths_a, colors_b, densities_b, depths_b);
  auto bounds = depths_grad ? at::empty({N * R, 2}, opts) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(colors_a.scalar_type(), "composite_rays_merged_backward_cpu", [&] {
    using T = scalar_t;
    const auto p = problem_of<T>(in);
    auto cot = [](const at::Tensor& t) -> const T* {
      return t.defined() ? t.data_ptr<T>() : nullptr;
    };
    // A requested output's pointer may be null only when it has no elements.
    auto out = [](const at::Tensor& t, bool need) -> T* {
      return need ? t.data_ptr<T>() : nullptr;
    };
    const Grads<T> g{cot(gf),
                     cot(gz),
                     cot(gw),
                     out(gca, colors_grad),
                     out(gcb, colors_grad),
                     out(gda, densities_grad),
                     out(gdb, densities_grad),
                     out(gza, depths_grad),
                     out(gzb, depths_grad),
                     depths_grad ? bounds.data_ptr<T>() : nullptr};
    at::parallel_for(0, p.d.rays, kGrain, [&](int64_t begin, int64_t end) {
      backward_rays(p.a, p.b, p.d, g, p.lo, p.hi, white_back, colors_grad, begin, end);
    });
    if (depths_grad) {
      T tlo, thi;
      total_bound_grads(g.bounds, p.d.rays, tlo, thi);
      add_bound_grads_cpu<T>({{g.gdep_a, p.a.z, p.d.rays * Sa}, {g.gdep_b, p.b.z, p.d.rays * Sb}},
                             p.lo, p.hi, tlo, thi);
    }
  });
  return {gca, gda, gza, gcb, gdb, gzb};
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CPU, m) {
  m.impl("composite_rays_merged", &composite_rays_merged_cpu);
  m.impl("composite_rays_merged_backward", &composite_rays_merged_backward_cpu);
}

}  // namespace nofa
