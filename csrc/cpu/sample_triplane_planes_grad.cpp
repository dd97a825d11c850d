// sample_triplane on the CPU: the plane-gradient pass of the backward.
//
// A texel's gradient is a sum over the taps that touch it, added in point order. The rows of
// each plane are split into bands and one task owns one band, so no two tasks write the same
// memory (no atomics, bitwise the same result for any thread count), and a band is small
// enough to stay in L2 while its points are scattered into it. The points are bucketed per
// band once (a stable counting sort of their tap records), so a task reads only its own
// points, and adds the whole C-vector of a tap at once (contiguous in the band).
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <memory>
#include <type_traits>
#include <vector>

#include "common/triplane.h"
#include "cpu/sample_triplane_cpu.h"
#include "cpu/transpose16.h"

namespace nofa {
namespace st_cpu {
namespace {

// The steps are inlined into copies compiled for each instruction-set tier (see step).
#define NOFA_INLINE NOFA_ISA_INLINE

constexpr int32_t kNoTap = INT32_MIN;       // y0 of a record whose four taps are all outside
constexpr int64_t kChunk = 4096;            // points per bucketing chunk
constexpr int64_t kBandBytes = 512 << 10;   // target size of one band of gradient
constexpr int64_t kParallelWork = 1 << 16;  // values touched below which one thread does all

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Top-left tap and fractions of one (point, plane), from the arithmetic of bilinear_taps.
template <typename T>
struct TapRec {
  int32_t x0, y0;
  T tx, ty;
};

// One batch element's bucketing: B bands of 2^shift rows per plane, K chunks of points.
template <typename T>
struct PlaneGradJob {
  Geometry<T> g;
  int64_t n, B, shift, K;
  const T* go;
  const T* pts;
  TapRec<T>* recs;  // [3, M]
  int64_t* offs;    // [3, B, K] counts, then start offsets (+1 total)
  int32_t* list;    // point indices, grouped by (plane, band), in point order within a group
  T* out;           // this batch element's [3, C, H, W] or [3, H, W, C] gradient
  bool out_cl;
  isa::Isa tier;  // the tier that runs (16 x 16 float transposes in band_to_nchw)

  // Bands (at most two) that a record's tap rows fall in.
  int bands_of(int32_t y0, int64_t b[2]) const {
    if (y0 == kNoTap) return 0;
    int k = 0;
    if (y0 >= 0) b[k++] = y0 >> shift;
    if (y0 + 1 < g.H && (k == 0 || (y0 + 1) >> shift != b[0])) b[k++] = (y0 + 1) >> shift;
    return k;
  }
  int64_t off_index(int p, int64_t band, int64_t k) const { return (p * B + band) * K + k; }
};

// Tap records of chunk k, plane by plane (a loop the compiler vectorises), and the number
// of records each band gets from the chunk.
template <typename T>
NOFA_INLINE void record_chunk(const PlaneGradJob<T>& j, int64_t k) {
  const auto& g = j.g;
  const int64_t m0 = k * kChunk, m1 = std::min(g.M, m0 + kChunk);
  const T* q = j.pts + j.n * g.M * 3;
  const T W = static_cast<T>(g.W), H = static_cast<T>(g.H);
  for (int p = 0; p < 3; ++p) {
    int au, av;
    plane_axes(p, au, av);
    TapRec<T>* r = j.recs + p * g.M;
    for (int64_t m = m0; m < m1; ++m) {
      const T u = q[m * 3 + au] * g.scale, v = q[m * 3 + av] * g.scale;
      const T ix = ((u + T(1)) * W - T(1)) / T(2), iy = ((v + T(1)) * H - T(1)) / T(2);
      // Outside [-1, size) no tap is inside (NaN too); 0 keeps the int conversion defined.
      const bool in = ix >= T(-1) && ix < W && iy >= T(-1) && iy < H;
      const T fx = std::floor(in ? ix : T(0)), fy = std::floor(in ? iy : T(0));
      r[m].x0 = static_cast<int32_t>(fx);
      r[m].y0 = in ? static_cast<int32_t>(fy) : kNoTap;
      r[m].tx = ix - fx;
      r[m].ty = iy - fy;
    }
    for (int64_t m = m0; m < m1; ++m) {
      int64_t b[2];
      const int nb = j.bands_of(r[m].y0, b);
      for (int e = 0; e < nb; ++e) ++j.offs[j.off_index(p, b[e], k)];
    }
  }
}

// Append chunk k's point indices to their bands' lists (offs holds the write positions).
template <typename T>
NOFA_INLINE void fill_chunk(const PlaneGradJob<T>& j, int64_t k) {
  const int64_t m0 = k * kChunk, m1 = std::min(j.g.M, m0 + kChunk);
  for (int p = 0; p < 3; ++p) {
    const TapRec<T>* r = j.recs + p * j.g.M;
    for (int64_t m = m0; m < m1; ++m) {
      int64_t b[2];
      const int nb = j.bands_of(r[m].y0, b);
      for (int e = 0; e < nb; ++e)
        j.list[j.offs[j.off_index(p, b[e], k)]++] = static_cast<int32_t>(m);
    }
  }
}

// Band [r0, r1) of a plane, [rows, W, C], into that plane's [C, H, W] gradient.
template <typename T>
NOFA_INLINE void band_to_nchw(const T* band, T* out, int64_t r0, int64_t r1, const Geometry<T>& g,
                              isa::Isa tier) {
  constexpr int64_t kX = 16;
  const int64_t C = g.C, W = g.W, HW = g.H * g.W;
  for (int64_t y = r0; y < r1; ++y) {
    const T* src = band + (y - r0) * W * C;
    for (int64_t x0 = 0; x0 < W; x0 += kX) {
      const int64_t xn = std::min(kX, W - x0);
      int64_t c0 = 0;
#if NOFA_ISA_X86
      if constexpr (std::is_same_v<T, float>) {
        if (tier != isa::Isa::kScalar && xn == kX) {
          for (; c0 + 16 <= C; c0 += 16) {
            T* d = out + c0 * HW + y * W + x0;
            tier == isa::Isa::kAvx512 ? transpose16x16(src + x0 * C + c0, C, d, HW)
                                      : transpose16x16_avx2(src + x0 * C + c0, C, d, HW);
          }
        }
      }
#endif
      for (int64_t c = c0; c < C; ++c) {
        T* __restrict d = out + c * HW + y * W + x0;
        const T* __restrict s = src + x0 * C + c;
        for (int64_t x = 0; x < xn; ++x) d[x] = s[x * C];
      }
    }
  }
}

// Task t = (plane, band): zero the band, scatter its points' taps, write it out.
template <typename T>
NOFA_INLINE void band_task(const PlaneGradJob<T>& j, int64_t t, T* scratch) {
  const auto& g = j.g;
  const int p = static_cast<int>(t / j.B);
  const int64_t r0 = (t % j.B) << j.shift, r1 = std::min(g.H, r0 + (int64_t{1} << j.shift));
  const int64_t C = g.C, WC = g.W * C, oc = g.out_c();
  T* band = j.out_cl ? j.out + (p * g.H + r0) * WC : scratch;
  std::fill(band, band + (r1 - r0) * WC, T(0));
  const T s = g.reduce == 1 ? T(1) : T(1) / T(3);
  const T* go = j.go + j.n * g.M * oc + (g.reduce == 1 ? p * C : 0);
  const TapRec<T>* recs = j.recs + p * g.M;
  const int64_t e1 = j.offs[j.off_index(p, t % j.B + 1, 0)];
  for (int64_t e = j.offs[j.off_index(p, t % j.B, 0)]; e < e1; ++e) {
    // The rows of grad_out a band needs are scattered: fetch a few points ahead.
    if (e + kPrefetchAhead < e1) {
      const int64_t mf = j.list[e + kPrefetchAhead];
      __builtin_prefetch(recs + mf);
      const char* a = reinterpret_cast<const char*>(go + mf * oc);
      for (int64_t b = 0; b < C * static_cast<int64_t>(sizeof(T)); b += 64)
        __builtin_prefetch(a + b);
    }
    const int64_t m = j.list[e];
    const TapRec<T> r = recs[m];
    const T* __restrict src = go + m * oc;
    const T wx[2] = {T(1) - r.tx, r.tx}, wy[2] = {T(1) - r.ty, r.ty};
    for (int dy = 0; dy < 2; ++dy) {
      const int64_t y = static_cast<int64_t>(r.y0) + dy;
      if (y < r0 || y >= r1) continue;
      for (int dx = 0; dx < 2; ++dx) {
        const int64_t x = static_cast<int64_t>(r.x0) + dx;
        if (x < 0 || x >= g.W) continue;
        const T w = wx[dx] * wy[dy] * s;
        T* __restrict dst = band + (y - r0) * WC + x * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) dst[c] += w * src[c];
      }
    }
  }
  if (!j.out_cl) band_to_nchw(band, j.out + p * C * g.H * g.W, r0, r1, g, j.tier);
}

// The three steps of the pass, compiled for the tier chosen by the caller (isa::run):
// 0 = records of chunk i, 1 = lists of chunk i, 2 = band task i.
template <typename T>
NOFA_INLINE void run_step(const PlaneGradJob<T>& j, int step, int64_t i, T* scratch) {
  if (step == 0) {
    record_chunk(j, i);
  } else if (step == 1) {
    fill_chunk(j, i);
  } else {
    band_task(j, i, scratch);
  }
}

template <typename T>
void step(const PlaneGradJob<T>& j, isa::Isa tier, int s, int64_t i, T* scratch) {
  isa::run(tier, [&]() NOFA_ISA_LAMBDA { run_step(j, s, i, scratch); });
}

}  // namespace

template <typename T>
void backward_planes(const T* go, const T* pts, const Geometry<T>& g, int64_t n, T* out,
                     bool out_cl, isa::Isa tier) {
  const int64_t threads = at::get_num_threads();
  const int64_t plane_bytes = g.H * g.W * g.C * static_cast<int64_t>(sizeof(T));
  const int64_t want =
      std::min(g.H, std::max(ceil_div(4 * threads, 3), ceil_div(plane_bytes, kBandBytes)));
  int64_t shift = 0;  // bands of a power of two rows: a shift finds a row's band
  while ((int64_t{2} << shift) <= ceil_div(g.H, want)) ++shift;
  const int64_t rows = int64_t{1} << shift, B = ceil_div(g.H, rows), K = ceil_div(g.M, kChunk);
  std::unique_ptr<TapRec<T>[]> recs(new TapRec<T>[3 * g.M]);
  std::vector<int64_t> offs(3 * B * K + 1, 0);
  PlaneGradJob<T> j{g,          n,           B,       shift, K,      go,  pts,
                    recs.get(), offs.data(), nullptr, out,   out_cl, tier};
  at::parallel_for(0, K, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) step<T>(j, tier, 0, k, nullptr);
  });
  int64_t total = 0;
  for (auto& o : offs) {
    const int64_t c = o;
    o = total;
    total += c;
  }
  std::vector<int64_t> starts(offs);  // the fill pass advances offs to the group ends
  std::unique_ptr<int32_t[]> list(new int32_t[std::max<int64_t>(total, 1)]);
  j.list = list.get();
  at::parallel_for(0, K, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) step<T>(j, tier, 1, k, nullptr);
  });
  j.offs = starts.data();
  // Longest tasks first (cost: taps to add + texels to clear and write), taken dynamically.
  std::vector<int64_t> order(3 * B), cost(3 * B);
  for (int64_t t = 0; t < 3 * B; ++t) {
    order[t] = t;
    cost[t] =
        4 * (starts[j.off_index(t / B, t % B + 1, 0)] - starts[j.off_index(t / B, t % B, 0)]) +
        rows * g.W;
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return cost[a] > cost[b]; });
  std::atomic<int64_t> next{0};
  // Small problems run on the calling thread: waking the pool would cost more than the work.
  const int64_t workers = 3 * (g.M + g.H * g.W) * g.C >= kParallelWork ? threads : 1;
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    std::unique_ptr<T[]> scratch(out_cl ? nullptr : new T[rows * g.W * g.C]);
    for (int64_t k = next++; k < 3 * B; k = next++) step(j, tier, 2, order[k], scratch.get());
  });
}

template void backward_planes<float>(const float*, const float*, const Geometry<float>&, int64_t,
                                     float*, bool, isa::Isa);
template void backward_planes<double>(const double*, const double*, const Geometry<double>&,
                                      int64_t, double*, bool, isa::Isa);

}  // namespace st_cpu
}  // namespace nofa
