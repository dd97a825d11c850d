// The sample_triplane CUDA kernels (csrc/cuda/sample_triplane_device.h) run on the CPU: the
// kernels' own source, compiled by the host compiler with stand-ins for the CUDA built-ins
// (tests/cpp/cuda_emu.h, block_emu.h: each block as 256 std::threads alive at once,
// __shfl_xor_sync an exchange through memory that checks all 32 lanes take part with the same
// arguments, atomicAdd std::atomic_ref), for float4 (a 16-byte aligned struct) and for the
// half plane types (tests/cpp/half_emu.h). The host side (csrc/cuda/sample_triplane_cuda.cpp
// and the launchers in sample_triplane.cu) is replayed with plain loops: the channels-last
// plane copy, the grids (blocks of kThreads = 256; a warp per point for the point gradient),
// which kernel runs for which dtype / C / pointer alignment (float32 with C % 4 == 0 and
// 16-byte aligned buffers: the vec4 kernels; the test asserts which ran), null pointers for
// gradients not asked for. Checked element by element against a double-precision sampler
// written from the definitions (tests/cpp/triplane_ref.h): forward ("mean" and "concat"),
// plane gradient and point gradient, float and double, float16 / bfloat16 planes
// (forward_half_kernel: within one rounding of the half type), C = 1, 3, 4, 5, 8, 32, 33,
// planes 1x1, 2x3, 16x16, N = 1, 2, point counts that are not a multiple of a block,
// points on texel centres and edges, on the box border and the range limits, outside the
// box, NaN / +-inf coordinates. Outputs start as NaN, so an element no thread writes fails.
// Build by hand: g++ -std=c++20 -O1 -pthread -I csrc tests/cpp/test_sample_triplane_emulated.cpp &&
// ./a.out
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "../../tests/cpp/check.h"

// ---- stand-ins for the CUDA built-ins the kernels use ------------------------------------
#include "../../tests/cpp/cuda_emu.h"
#include "../../tests/cpp/block_emu.h"
#include "../../tests/cpp/half_emu.h"

#include "cuda/sample_triplane_device.h"
#include "../../tests/cpp/triplane_ref.h"

namespace {

static_assert(nofa::kThreads <= emu::kMaxBlock, "the launchers' block must fit the emulated one");

emu::BlockRunner* runner = nullptr;

void launch(unsigned int grid, std::function<void()> kernel) {
  runner->launch(grid, nofa::kThreads, std::move(kernel));
}

template <typename T>
T nan_v() {
  return std::numeric_limits<T>::quiet_NaN();
}

using emu::Buffer;

struct Problem {
  int64_t N, M, C, H, W;
  double scale;
  std::vector<float> planes;  // [N, 3, C, H, W]
  std::vector<float> points;  // [N, M, 3], unscaled
  std::vector<float> grad;    // [N, M, 3C]: the cotangent (its first C per point for "mean")
};

Problem make_problem(int64_t N, int64_t M, int64_t C, int64_t H, int64_t W, double scale,
                     unsigned seed) {
  Problem p{N, M, C, H, W, scale, {}, {}, {}};
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  p.planes.resize(N * 3 * C * H * W);
  for (auto& v : p.planes) v = nd(rng);
  p.grad.resize(N * M * 3 * C);
  for (auto& v : p.grad) v = nd(rng);
  p.points = ref::make_points(N, M, H, W, scale, rng);
  return p;
}

struct Result {
  std::vector<double> out, gplanes, gpoints;  // gplanes [N, 3, C, H, W]
  bool vec4_forward = false, vec4_planes = false;
};

// The op as the glue runs it: planes of type P (T, or a half type for forward_half_kernel),
// points and cotangents of type T.
template <typename T, typename P>
// vector_atomics: the plane gradient's vec4 kernel as sm_90 and later compile it (float4
// atomics); otherwise as earlier architectures (and this host pass) do.
Result run_kernels(const Problem& pr, int reduce, bool planes_grad, bool points_grad, bool misalign,
                   bool vector_atomics = false) {
  const int64_t N = pr.N, M = pr.M, C = pr.C, H = pr.H, W = pr.W, HW = H * W;
  const int64_t oc = reduce == 1 ? 3 * C : C;
  constexpr bool half = !std::is_same_v<P, T>;
  // planes.permute(0, 1, 3, 4, 2).contiguous()
  Buffer<P> pcl(N * 3 * HW * C, P{}, misalign);
  emu::to_channels_last(pr.planes, N * 3, C, HW, pcl.data());
  Buffer<T> pts(N * M * 3, T(0), false);
  for (size_t k = 0; k < pr.points.size(); ++k) pts[k] = static_cast<T>(pr.points[k]);
  const T scale = static_cast<T>(pr.scale);
  Result r;
  // Forward.
  Buffer<P> out(N * M * oc, P{}, misalign);
  for (size_t k = 0; k < out.n; ++k) {
    if constexpr (half) {
      out[k] = nofa::from_float<P>(nan_v<float>());
    } else {
      out[k] = nan_v<T>();
    }
  }
  const int64_t n = N * M * C;
  if constexpr (half) {
    launch(nofa::blocks_for(n), [&] {
      nofa::forward_half_kernel<P>(pcl.data(), pts.data(), out.data(), N, M, C, H, W, scale,
                                   reduce);
    });
  } else if (std::is_same_v<T, float> && nofa::vec4_ok(pcl.data(), out.data(), C)) {
    r.vec4_forward = true;
    if constexpr (std::is_same_v<T, float>) {
      launch(nofa::blocks_for(n / 4), [&] {
        nofa::forward_vec4_kernel(pcl.data(), pts.data(), out.data(), N, M, C, H, W, scale, reduce);
      });
    }
  } else {
    launch(nofa::blocks_for(n), [&] {
      nofa::forward_kernel<T>(pcl.data(), pts.data(), out.data(), N, M, C, H, W, scale, reduce);
    });
  }
  r.out.resize(out.n);
  for (size_t k = 0; k < out.n; ++k) r.out[k] = static_cast<double>(nofa::to_float(out[k]));
  if constexpr (!half) {
    // Backward (the glue: grad_out.contiguous(); planes passed only for the point gradient).
    Buffer<T> go(N * M * oc, T(0), misalign);
    for (int64_t i = 0; i < N * M; ++i) {
      for (int64_t c = 0; c < oc; ++c) go[i * oc + c] = static_cast<T>(pr.grad[i * 3 * C + c]);
    }
    Buffer<T> gpl(planes_grad ? N * 3 * HW * C : 0, T(0), misalign);
    Buffer<T> gpts(points_grad ? N * M * 3 : 0, nan_v<T>(), false);
    if (planes_grad) {
      if (std::is_same_v<T, float> && nofa::vec4_ok(go.data(), gpl.data(), C)) {
        r.vec4_planes = true;
        if constexpr (std::is_same_v<T, float>) {
          launch(nofa::blocks_for(n / 4), [&] {
            if (vector_atomics) {
              nofa::backward_planes_vec4<true>(go.data(), pts.data(), gpl.data(), N, M, C, H, W,
                                               scale, reduce);
            } else {
              nofa::backward_planes_vec4_kernel(go.data(), pts.data(), gpl.data(), N, M, C, H, W,
                                                scale, reduce);
            }
          });
        }
      } else {
        launch(nofa::blocks_for(n), [&] {
          nofa::backward_planes_kernel<T>(go.data(), pts.data(), gpl.data(), N, M, C, H, W, scale,
                                          reduce);
        });
      }
      // gplanes.copy_(gplanes_cl.permute(0, 1, 4, 2, 3))
      r.gplanes.resize(gpl.n);
      for (int64_t np = 0; np < N * 3; ++np) {
        for (int64_t c = 0; c < C; ++c) {
          for (int64_t t = 0; t < HW; ++t)
            r.gplanes[(np * C + c) * HW + t] = gpl[(np * HW + t) * C + c];
        }
      }
    }
    if (points_grad) {
      launch(nofa::blocks_for(N * M * nofa::kWarp), [&] {
        nofa::backward_points_kernel<T>(go.data(), pcl.data(), pts.data(), gpts.data(), N, M, C, H,
                                        W, scale, reduce);
      });
      r.gpoints.assign(gpts.data(), gpts.data() + gpts.n);
    }
  }
  return r;
}

// The reference from the plane values the kernel reads (rounded to P for half planes).
template <typename P>
Result run_reference(const Problem& pr, int reduce) {
  const int64_t N = pr.N, M = pr.M, C = pr.C, oc = reduce == 1 ? 3 * C : C;
  const ref::Planes pl{N, C, pr.H, pr.W, emu::rounded_to<P>(pr.planes)};
  Result r;
  r.out.assign(N * M * oc, 0.0);
  r.gplanes.assign(pl.v.size(), 0.0);
  r.gpoints.assign(N * M * 3, 0.0);
  for (int64_t i = 0; i < N * M; ++i) {
    const int64_t n = i / M;
    double xyz[3];
    for (int a = 0; a < 3; ++a) xyz[a] = static_cast<double>(pr.points[i * 3 + a]) * pr.scale;
    double gxyz[3] = {0.0, 0.0, 0.0};
    for (int p = 0; p < 3; ++p) {
      const std::vector<double> s = ref::sample_plane(pl, n, p, xyz);
      std::vector<double> g(C);
      for (int64_t c = 0; c < C; ++c) {
        if (reduce == 1) {
          r.out[i * oc + p * C + c] = s[c];
          g[c] = pr.grad[i * 3 * C + p * C + c];
        } else {
          r.out[i * oc + c] += s[c] / 3.0;
          g[c] = pr.grad[i * 3 * C + c] / 3.0;
        }
      }
      ref::sample_plane_backward(pl, n, p, xyz, g.data(), &r.gplanes, gxyz);
    }
    for (int a = 0; a < 3; ++a) r.gpoints[i * 3 + a] = gxyz[a] * pr.scale;
  }
  return r;
}

template <typename T>
void check_case(const Problem& pr, int reduce, bool planes_grad, bool points_grad, bool misalign) {
  const std::string name = std::string(std::is_same_v<T, float> ? "float" : "double") +
                           " N=" + std::to_string(pr.N) + " M=" + std::to_string(pr.M) +
                           " C=" + std::to_string(pr.C) + " " + std::to_string(pr.H) + "x" +
                           std::to_string(pr.W) + (reduce == 1 ? " concat" : " mean") +
                           (misalign ? " misaligned" : "");
  const int shuffles = emu::bad_shuffles.load();
  const Result got = run_kernels<T, T>(pr, reduce, planes_grad, points_grad, misalign);
  const Result want = run_reference<T>(pr, reduce);
  const double tol = ref::tolerance<T>(pr.H, pr.W);
  CHECK(ref::close(name + " out", got.out, want.out, tol));
  if (planes_grad) CHECK(ref::close(name + " grad planes", got.gplanes, want.gplanes, tol));
  if (points_grad) CHECK(ref::close(name + " grad points", got.gpoints, want.gpoints, 4 * tol));
  // The glue's kernel choice: 16-byte kernels for float32, C % 4 == 0, aligned buffers.
  const bool vec4 = std::is_same_v<T, float> && pr.C % 4 == 0 && !misalign;
  CHECK(got.vec4_forward == vec4);
  CHECK(got.vec4_planes == (vec4 && planes_grad));
  if (vec4 && planes_grad) {
    // The sm_90 variant of the vec4 plane gradient (16-byte atomics).
    const Result sm90 = run_kernels<T, T>(pr, reduce, true, false, misalign, true);
    CHECK(sm90.vec4_planes);
    CHECK(ref::close(name + " grad planes (float4 atomics)", sm90.gplanes, want.gplanes, tol));
  }
  CHECK(emu::bad_shuffles.load() == shuffles);
}

// Half-precision planes: forward_half_kernel, the result within one rounding of P (plus the
// float accumulation) of the reference on the P-rounded planes.
template <typename P>
void check_half(const char* type, const Problem& pr, int reduce) {
  const Result got = run_kernels<float, P>(pr, reduce, false, false, false);
  const Result want = run_reference<P>(pr, reduce);
  const double ulp =
      std::is_same_v<P, emu::Bf16> ? 1.0 / 256 : 1.0 / 2048;  // half an ulp, relative
  const double tol = ref::tolerance<float>(pr.H, pr.W);
  double ss = 0.0;
  for (double w : want.out) ss += w * w;
  const double rms = want.out.empty() ? 0.0 : std::sqrt(ss / want.out.size());
  CHECK(!got.vec4_forward);
  bool ok = got.out.size() == want.out.size();
  int bad = 0;
  for (size_t k = 0; ok && k < got.out.size(); ++k) {
    const double w = want.out[k];
    if (!(std::fabs(got.out[k] - w) <=
          ulp * std::fabs(w) * (1 + tol) + tol * (std::fabs(w) + rms) + 6e-8)) {
      if (bad++ < 3)
        std::fprintf(stderr, "%s C=%lld [%zu]: %.9g, expected %.9g\n", type, (long long)pr.C, k,
                     got.out[k], w);
    }
  }
  CHECK(ok && bad == 0);
}

}  // namespace

int main() {
  emu::BlockRunner br;
  runner = &br;
  const int64_t sizes[3][2] = {{1, 1}, {2, 3}, {16, 16}};
  unsigned seed = 1;
  // Every C with every plane size in float32 (the vec4 kernels where C % 4 == 0), all three
  // gradients, alternating reductions and batch sizes; 43 or 2 x 21 points (the point
  // kernel: a warp per point, 8 per block: partial last blocks).
  for (int64_t C : {1, 3, 4, 5, 8, 32, 33}) {
    for (const auto& hw : sizes) {
      const int64_t N = 1 + (seed % 2);
      const double scale = seed % 3 == 0 ? 2.0 / 1.1 : 2.0;  // box_warp 1.1 or 1 (EG3D)
      const Problem pr = make_problem(N, N == 1 ? 43 : 21, C, hw[0], hw[1], scale, seed);
      check_case<float>(pr, seed % 2 ? 1 : 0, true, true, false);
      ++seed;
    }
  }
  // Every texel / border coordinate of a 16 x 16 grid (the rows above keep to half the points).
  check_case<float>(make_problem(1, 110, 3, 16, 16, 2.0, 50), 0, true, true, false);
  // Several blocks of the one-thread-per-(point, channel) kernels (no point gradient: cheap):
  // 1 x 300 (C = 1) and 300 (C = 4, vec4: 300 threads of 4 channels) threads, partial last blocks.
  check_case<float>(make_problem(1, 300, 1, 2, 3, 2.0, 51), 0, true, false, false);
  check_case<float>(make_problem(1, 300, 4, 16, 16, 2.0 / 1.1, 52), 1, true, false, false);
  check_case<double>(make_problem(2, 150, 1, 16, 16, 2.0 / 1.1, 53), 0, true, false, false);
  // Both reductions in float32 and float64, misaligned buffers (the one-channel kernels for
  // C % 4 == 0), each gradient alone.
  for (int64_t C : {4, 33}) {
    const Problem pr = make_problem(2, 23, C, 16, 16, 2.0, 100 + static_cast<unsigned>(C));
    check_case<float>(pr, 0, true, true, false);
    check_case<float>(pr, 1, true, true, false);
    check_case<double>(pr, 0, true, true, false);
    check_case<double>(pr, 1, true, true, false);
    check_case<float>(pr, 1, true, false, true);
    check_case<float>(pr, 0, false, true, true);
  }
  // C / 4 odd and > 1 (C = 12, 20), with zeros in the cotangent: single channels (the scalar
  // variant skips their atomics one by one), whole 4-channel groups (both variants skip the
  // group) and a whole point.
  for (int64_t C : {12, 20}) {
    Problem pr = make_problem(2, 37, C, 16, 16, 2.0, 300 + static_cast<unsigned>(C));
    for (size_t k = 0; k < pr.grad.size(); ++k) {
      const int64_t c = static_cast<int64_t>(k) % (3 * C), i = static_cast<int64_t>(k) / (3 * C);
      if (c % 5 == 0 || (i % 4 == 1 && c % C < 4) || i == 7) pr.grad[k] = 0.f;
    }
    check_case<float>(pr, 0, true, true, false);
    check_case<float>(pr, 1, true, true, false);
  }
  check_case<double>(make_problem(1, 33, 5, 2, 3, 2.0 / 1.1, 7), 0, true, true, false);
  check_case<double>(make_problem(2, 20, 1, 1, 1, 2.0, 8), 1, true, true, false);
  // Half-precision planes (forward only: the backward runs in float32 on an upcast copy).
  for (int64_t C : {1, 4, 5, 32, 33}) {
    const Problem pr = make_problem(2, 60, C, C == 5 ? 2 : 16, C == 5 ? 3 : 16, 2.0,
                                    200 + static_cast<unsigned>(C));
    check_half<emu::Bf16>("bfloat16", pr, 0);
    check_half<emu::Bf16>("bfloat16", pr, 1);
#if defined(NOFA_EMU_FLOAT16)
    check_half<emu::Half>("float16", pr, 0);
    check_half<emu::Half>("float16", pr, 1);
#endif
  }
  CHECK(emu::divergent_barriers.load() == 0);
  TEST_MAIN_END();
}
