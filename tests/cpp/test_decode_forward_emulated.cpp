// The decode_triplane CUDA forward kernels (csrc/cuda/decode_triplane_device.h) run on the
// CPU: the kernels' own source, compiled by the host compiler with stand-ins for the CUDA
// built-ins (tests/cpp/cuda_emu.h, block_emu.h: each block as 128 / 256 std::threads alive at
// once, __syncthreads a std::barrier that also checks every thread reached the same one, the
// block's dynamic shared memory one static array, filled with NaN before each block so that
// a read of a shared value no thread wrote shows, up to the launcher's dynamic size and a
// guard past it that a write would change) and for the half plane types
// (tests/cpp/half_emu.h). The host side (csrc/cuda/decode_triplane_cuda.cpp and the
// launchers in decode_triplane.cu) is replayed with plain loops: the channels-last plane
// copy, the fast path's test (float32, C <= 32, 1 + F <= 33, shared memory within an H100's
// opt-in limit) with its weights in nn.Linear layout, blocks of 128 points, and the general
// kernel's tiles (48 KiB of shared memory, at most 32 points; 256 threads) with the weights
// transposed; half-precision planes: the fast kernel on them, or the float32 path on an
// upcast copy. Checked element by element against a double-precision decoder written from
// the definitions (tests/cpp/triplane_ref.h for the mean tri-plane features; softplus,
// EG3D's widened sigmoid): float and double, float16 / bfloat16 planes, EG3D sizes, the
// density-only decoder, C = 1 .. 40, hidden widths 1 .. 600 (general tiles of 32, 13 and 10
// points), planes 1x1, 2x3, 16x16, N = 1, 2, point counts that are not a multiple of a
// block or tile, points on texel centres and edges, on the box border, outside the box,
// NaN / +-inf coordinates. Outputs start as NaN, so an element no thread writes fails.
// Under ThreadSanitizer (-O1 -g -fsanitize=thread, ~2 s) it is also a race check of the
// kernels' shared memory: no report for the kernels as committed; with any one of their 5
// barriers removed, a data race (or, for the first, a crash on an unset tap offset).
// Build by hand: g++ -std=c++20 -O1 -pthread -I csrc tests/cpp/test_decode_forward_emulated.cpp &&
// ./a.out
#include <algorithm>
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

// The kernels' `extern __shared__` array: room for the largest launch (an H100's opt-in
// limit, 227 KiB) and a guard past it.
NOFA_EMU_DYNAMIC_SHARED(unsigned char, smem_raw, 232448, 4096, 0xff)

#include "cuda/decode_triplane_device.h"
#include "../../tests/cpp/triplane_ref.h"
#include "../../tests/cpp/decoder_ref.h"

namespace {

// cudaDevAttrMaxSharedMemoryPerBlockOptin of an H100 / H200 (227 KiB): the limit the fast
// path's shared memory is held to (decode_triplane_fast_path).
constexpr int64_t kOptin = 232448;
static_assert(sizeof(nofa::smem_raw) >= kOptin,
              "the emulated shared memory must hold the largest block's");

emu::BlockRunner* runner = nullptr;

template <typename T>
T nan_v() {
  return std::numeric_limits<T>::quiet_NaN();
}

struct Problem {
  int64_t N, M, C, H, W, Hd, O;
  double scale;
  std::vector<float> planes, points, w0, b0, w1,
      b1;  // planes [N, 3, C, H, W]; w0 [Hd, C], w1 [O, Hd]
};

Problem make_problem(int64_t N, int64_t M, int64_t C, int64_t H, int64_t W, int64_t Hd, int64_t O,
                     double scale, unsigned seed) {
  Problem p{N, M, C, H, W, Hd, O, scale, {}, {}, {}, {}, {}, {}};
  std::mt19937 rng(seed);
  ref::NormalFill fill{rng};
  fill(p.planes, N * 3 * C * H * W, 1.f);
  ref::fill_decoder(fill, C, Hd, O, 2.f, p.w0, p.b0, p.w1, p.b1);
  p.points = ref::make_points(N, M, H, W, scale, rng);
  return p;
}

// decode_triplane_fast_path (cuda/decode_triplane.cu) on a device with kOptin bytes.
bool fast_path(int64_t C, int64_t Hd, int64_t O, int64_t H, int64_t W, int64_t elem_size) {
  if (elem_size == 8) return false;
  if (C < 1 || C > nofa::kFastC || O < 1 || O > nofa::kFastO || Hd < 1) return false;
  if (H * W >= (int64_t(1) << 31)) return false;
  return nofa::fast_layout(C, Hd, O).total * static_cast<int64_t>(sizeof(float)) <= kOptin;
}

// decode_triplane_tile (cuda/decode_triplane.cu).
int64_t general_tile(int64_t C, int64_t Hd, int64_t elem_size) {
  const int64_t fit = nofa::kSharedBytes / ((C + Hd) * elem_size);
  return fit < nofa::kMaxTile ? fit : nofa::kMaxTile;
}

struct Result {
  std::vector<double> density, features;
  bool fast = false;
  int64_t tile = 0;
};

// The op as the glue runs it: planes of type P (T, or a half type), everything else T.
template <typename T, typename P>
Result run_kernels(const Problem& pr) {
  const int64_t N = pr.N, M = pr.M, C = pr.C, H = pr.H, W = pr.W, HW = H * W, Hd = pr.Hd, O = pr.O,
                P_ = N * M;
  // planes.permute(0, 1, 3, 4, 2).contiguous(), in the planes' type.
  std::vector<P> pcl(N * 3 * HW * C);
  emu::to_channels_last(pr.planes, N * 3, C, HW, pcl.data());
  auto conv = [](const std::vector<float>& v) { return std::vector<T>(v.begin(), v.end()); };
  const std::vector<T> pts = conv(pr.points), w0 = conv(pr.w0), b0 = conv(pr.b0), w1 = conv(pr.w1),
                       b1 = conv(pr.b1);
  std::vector<T> density(P_, nan_v<T>()), features(P_ * (O - 1), nan_v<T>());
  const T scale = static_cast<T>(pr.scale);
  Result r;
  r.fast = fast_path(C, Hd, O, H, W, sizeof(T));
  if (r.fast) {
    if constexpr (!std::is_same_v<T, double>) {
      const nofa::FastLayout L = nofa::fast_layout(C, Hd, O);
      // launch_decode_triplane_forward(_half): L.total accumulators (float) per block.
      const size_t smem = static_cast<size_t>(L.total) * sizeof(float);
      CHECK(static_cast<int64_t>(smem) <= kOptin);
      const unsigned int blocks =
          static_cast<unsigned int>((P_ + nofa::kFastPoints - 1) / nofa::kFastPoints);
      runner->launch(
          blocks, nofa::kFastPoints,
          [&] {
            nofa::fast_forward_kernel<P, float, nofa::kFastC, nofa::kFastO>(
                pcl.data(), pts.data(), w0.data(), b0.data(), w1.data(), b1.data(), density.data(),
                features.data(), P_, M, static_cast<int>(C), H, W, static_cast<int>(Hd),
                static_cast<int>(O), scale, L);
          },
          smem);
    }
  } else {
    // The general kernel reads the weights transposed; half planes reach it as an upcast copy.
    std::vector<T> w0t(C * Hd), w1t(Hd * O), pcl_t(pcl.size());
    for (int64_t j = 0; j < Hd; ++j) {
      for (int64_t c = 0; c < C; ++c) w0t[c * Hd + j] = w0[j * C + c];
      for (int64_t o = 0; o < O; ++o) w1t[j * O + o] = w1[o * Hd + j];
    }
    for (size_t k = 0; k < pcl.size(); ++k) pcl_t[k] = static_cast<T>(nofa::to_float(pcl[k]));
    r.tile = general_tile(C, Hd, sizeof(T));
    // The launcher's dynamic shared memory: tile * (C + Hd) values of T.
    const size_t smem = static_cast<size_t>(r.tile * (C + Hd)) * sizeof(T);
    CHECK(r.tile >= 1 && static_cast<int64_t>(smem) <= nofa::kSharedBytes);
    const unsigned int blocks = static_cast<unsigned int>((P_ + r.tile - 1) / r.tile);
    runner->launch(
        blocks, nofa::kThreads,
        [&] {
          nofa::forward_kernel<T>(pcl_t.data(), pts.data(), w0t.data(), b0.data(), w1t.data(),
                                  b1.data(), density.data(), features.data(), P_, M, C, H, W, Hd, O,
                                  scale, r.tile);
        },
        smem);
  }
  r.density.assign(density.begin(), density.end());
  r.features.assign(features.begin(), features.end());
  return r;
}

// The decoder in double from the definitions: f = mean of the planes' bilinear samples;
// h = softplus(W0 f + b0); x = W1 h + b1; density = x0; features = sigmoid(x[1:]) * 1.002 - 0.001.
template <typename P>
Result run_reference(const Problem& pr) {
  const int64_t N = pr.N, M = pr.M, C = pr.C, Hd = pr.Hd, O = pr.O;
  const ref::Planes pl{N, C, pr.H, pr.W, emu::rounded_to<P>(pr.planes)};
  const ref::Decoder dec{C, Hd, O, pr.w0.data(), pr.b0.data(), pr.w1.data(), pr.b1.data()};
  Result r;
  r.density.resize(N * M);
  r.features.resize(N * M * (O - 1));
  for (int64_t i = 0; i < N * M; ++i) {
    double xyz[3];
    for (int a = 0; a < 3; ++a) xyz[a] = static_cast<double>(pr.points[i * 3 + a]) * pr.scale;
    const std::vector<double> f = ref::sample_mean(pl, i / M, xyz);
    ref::decoder_forward(dec, f.data(), r.density[i], r.features.data() + i * (O - 1));
  }
  return r;
}

template <typename T, typename P = T>
void check_case(const char* label, const Problem& pr, bool want_fast, int64_t want_tile = 0) {
  const std::string name = std::string(label) + " N=" + std::to_string(pr.N) +
                           " M=" + std::to_string(pr.M) + " C=" + std::to_string(pr.C) +
                           " Hd=" + std::to_string(pr.Hd) + " O=" + std::to_string(pr.O) + " " +
                           std::to_string(pr.H) + "x" + std::to_string(pr.W);
  const int barriers = emu::divergent_barriers.load(), overruns = emu::shared_overruns.load();
  const Result got = run_kernels<T, P>(pr);
  const Result want = run_reference<P>(pr);
  // The features' float error, amplified by up to |W0| |W1| through the two layers.
  const double tol = std::is_same_v<T, float> ? 8 * ref::tolerance<float>(pr.H, pr.W) : 1e-12;
  CHECK(ref::close(name + " density", got.density, want.density, tol));
  CHECK(ref::close(name + " features", got.features, want.features, tol));
  // The glue's kernel choice.
  if (got.fast != want_fast)
    std::fprintf(stderr, "%s: fast path %d, expected %d\n", name.c_str(), got.fast, want_fast);
  CHECK(got.fast == want_fast);
  if (!want_fast && want_tile) CHECK(got.tile == want_tile);
  CHECK(emu::divergent_barriers.load() == barriers);
  CHECK(emu::shared_overruns.load() == overruns);
}

}  // namespace

int main() {
  emu::BlockRunner br;
  runner = &br;
  const double eg3d = 2.0;  // box_warp 1
  // Fast kernel at EG3D sizes (C = 32, hidden 64, 1 + 32 outputs): 300 points = 2 blocks of
  // 128 + 44; the density-only decoder (O = 1: no features); small odd sizes.
  check_case<float>("fast eg3d", make_problem(2, 150, 32, 16, 16, 64, 33, eg3d, 1), true);
  check_case<float>("fast density only", make_problem(1, 130, 32, 2, 3, 64, 1, 2.0 / 1.1, 2), true);
  check_case<float>("fast", make_problem(1, 129, 1, 1, 1, 1, 2, eg3d, 3), true);
  check_case<float>("fast", make_problem(2, 70, 3, 2, 3, 7, 4, 2.0 / 1.1, 4), true);
  check_case<float>("fast", make_problem(1, 100, 5, 16, 16, 9, 6, eg3d, 5), true);
  check_case<float>("fast", make_problem(1, 60, 8, 1, 1, 16, 33, eg3d, 6), true);
  // Wide hidden layer: shared memory above the 48 KiB default (the launcher opts in).
  check_case<float>("fast wide", make_problem(1, 40, 32, 16, 16, 300, 33, eg3d, 7), true);
  // General kernel: C or 1 + F beyond the fast kernel's registers, float64 at any size.
  check_case<float>("general C=33", make_problem(2, 50, 33, 16, 16, 64, 33, eg3d, 8), false, 32);
  check_case<float>("general O=34", make_problem(1, 70, 4, 2, 3, 16, 34, 2.0 / 1.1, 9), false, 32);
  check_case<float>("general", make_problem(1, 45, 40, 1, 1, 600, 2, eg3d, 10), false, 19);
  check_case<double>("general eg3d", make_problem(2, 50, 32, 16, 16, 64, 33, eg3d, 11), false, 32);
  check_case<double>("general", make_problem(1, 50, 8, 2, 3, 600, 3, 2.0 / 1.1, 12), false, 10);
  check_case<double>("general", make_problem(2, 20, 1, 1, 1, 1, 1, eg3d, 13), false, 32);
  check_case<double>("general", make_problem(1, 40, 40, 16, 16, 400, 5, eg3d, 14), false, 13);
  // Half-precision planes: the fast kernel reads them; other sizes run the float32 path on
  // an upcast copy. float32 outputs, compared with the reference on the rounded planes.
  check_case<float, emu::Bf16>("bfloat16 fast", make_problem(2, 70, 32, 16, 16, 64, 33, eg3d, 15),
                               true);
  check_case<float, emu::Bf16>("bfloat16 general", make_problem(1, 40, 33, 2, 3, 16, 5, eg3d, 16),
                               false, 32);
#if defined(NOFA_EMU_FLOAT16)
  check_case<float, emu::Half>("float16 fast", make_problem(1, 140, 5, 2, 3, 64, 33, 2.0 / 1.1, 17),
                               true);
  check_case<float, emu::Half>("float16 fast", make_problem(1, 40, 32, 1, 1, 8, 1, eg3d, 18), true);
#endif
  TEST_MAIN_END();
}
