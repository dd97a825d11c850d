// The fused decode_triplane CUDA backward kernel (csrc/cuda/decode_triplane_backward_device.h)
// run on the CPU: the kernel's own source, compiled by the host compiler with stand-ins for
// the CUDA built-ins (tests/cpp/cuda_emu.h, block_emu.h: a block = 128 std::threads alive at
// once; __syncthreads = a std::barrier that also checks every thread reached the same barrier;
// __shfl_xor_sync = an exchange through memory between the 32 threads of a warp; atomicAdd =
// std::atomic_ref; the dynamic shared memory of tests/cpp/smem_emu.h). Blocks run one
// after another (they only share the atomically updated plane gradient). Checked against a
// plain double-precision backward written point by point: all six gradients, partial last
// tiles, blocks walking several tiles, hidden widths not a multiple of the 8-unit rounds,
// each gradient asked for alone, the density-only decoder, non-finite and outside points.
// The launch is replayed from csrc/cuda/decode_triplane_cuda.cpp and decode_triplane_backward.cu:
// only sizes the glue sends to this kernel (decode_triplane_fused_backward_ok on an H100's
// 227 KiB opt-in), the grid min(tiles, resident blocks), the layout's dynamic shared memory
// (each block starts with it NaN, and a guard past it must stay intact), weights in nn.Linear
// layout, null pointers for gradients not asked for, per-block weight rows summed after.
// (decode_triplane_backward_cuda's other path, the chunked one for other sizes and float64,
// is ATen GEMMs around the sample_triplane kernels: test_decode_chunked_emulated.cpp.)
// A block whose threads wait at different barriers fails after 60 s instead of hanging.
// Plain runs catch a missing barrier only where the OS threads happen to interleave badly;
// under ThreadSanitizer every shared-memory access pair not ordered by a barrier is
// reported (std::barrier orders like __syncthreads). The kernel as committed: no report;
// with any one of its 6 barriers removed: a data race reported at the unordered access.
// Build by hand: g++ -std=c++20 -O2 -pthread -I csrc tests/cpp/test_decode_backward_emulated.cpp &&
// ./a.out Race check (~20 s): the same with -O1 -g -fsanitize=thread (exit code 66 on a race).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "../../tests/cpp/check.h"

// ---- stand-ins for the CUDA built-ins the kernel uses ------------------------------------
#include "../../tests/cpp/cuda_emu.h"
#include "../../tests/cpp/block_emu.h"

// The kernel's `extern __shared__` array: room for the largest launch (an H100's opt-in
// limit, 227 KiB) and a guard past it.
NOFA_EMU_DYNAMIC_SHARED(unsigned char, smem_raw, 232448, 4096, 0xff)

#include "cuda/decode_triplane_backward_device.h"
#include "../../tests/cpp/decoder_ref.h"

namespace {

// cudaDevAttrMaxSharedMemoryPerBlockOptin of an H100 / H200 (227 KiB).
constexpr int64_t kOptin = 232448;

// decode_triplane_fused_backward_ok (cuda/decode_triplane_backward.cu) on a device with
// kOptin bytes: the sizes for which decode_triplane_backward_cuda takes this kernel (float32).
bool fused_ok(int64_t C, int64_t Hd, int64_t O) {
  if (C < 1 || C > nofa::kMaxC || O < 1 || O > nofa::kMaxO || Hd < 1) return false;
  return nofa::layout(C, Hd, O).total * static_cast<int64_t>(sizeof(float)) <= kOptin;
}

// decode_triplane_fused_backward_blocks: one block per tile of kPoints points, at most the
// `resident` blocks the device keeps at once (SMs x blocks per SM; 132 x 1 .. 2 on an H100).
int fused_blocks(int64_t P, int64_t resident) {
  const int64_t tiles = (P + nofa::kPoints - 1) / nofa::kPoints;
  return static_cast<int>(tiles < resident ? tiles : resident);
}

// Blocks of kPoints threads (the launcher's), a block not finishing in 60 s ends the program.
emu::BlockRunner* runner = nullptr;

using nofa::BilinearTaps;

struct Problem {
  int64_t N, M, C, H, W, Hd, O;
  float scale;
  std::vector<float> planes_cl, points, w0, b0, w1, b1, gd, gf;  // planes [N, 3, H, W, C]
};

struct Grads {
  std::vector<double> planes, points, w;  // w: [gW0 | gb0 | gW1 | gb1]
};

Problem make_problem(int64_t N, int64_t M, int64_t C, int64_t Hd, int64_t O, unsigned seed) {
  Problem p{N, M, C, 7, 9, Hd, O, 2.0f / 1.1f, {}, {}, {}, {}, {}, {}, {}, {}};
  std::mt19937 rng(seed);
  ref::NormalFill fill{rng};
  std::uniform_real_distribution<float> ud(-0.65f, 0.65f);  // some points outside the box
  fill(p.planes_cl, N * 3 * p.H * p.W * C, 1.f);
  p.points.resize(N * M * 3);
  for (auto& x : p.points) x = ud(rng);
  ref::fill_decoder(fill, C, Hd, O, 1.f, p.w0, p.b0, p.w1, p.b1);
  fill(p.gd, N * M, 1.f);
  fill(p.gf, N * M * (O - 1), 1.f);
  return p;
}

// The kernel on emulated blocks, launched as the glue launches it (grid: fused_blocks for a
// device keeping `resident` blocks; dynamic shared memory: the layout's total); the weight
// rows summed in block order, as the op does.
Grads run_kernel(const Problem& p, bool planes, bool points, bool weights, int64_t resident) {
  const int64_t P = p.N * p.M;
  const nofa::Layout L = nofa::layout(p.C, p.Hd, p.O);
  // The glue sends only these sizes to the fused kernel (the others take the chunked path).
  CHECK(fused_ok(p.C, p.Hd, p.O));
  const size_t smem = static_cast<size_t>(L.total) * sizeof(float);
  CHECK(static_cast<int64_t>(smem) <= kOptin);
  const int blocks = fused_blocks(P, resident);
  const int64_t nw = L.total - L.acc;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> gpl(planes ? p.planes_cl.size() : 0, 0.f);
  std::vector<float> gpts(points ? P * 3 : 0, nan);       // every point's row must be written
  std::vector<float> gw(weights ? blocks * nw : 0, nan);  // every block's row must be written
  runner->launch(
      static_cast<unsigned int>(blocks), nofa::kPoints,
      [&] {
        nofa::fused_backward_kernel<nofa::kMaxC, nofa::kMaxO>(
            p.gd.data(), p.gf.data(), p.planes_cl.data(), p.points.data(), p.w0.data(), p.b0.data(),
            p.w1.data(), p.b1.data(), planes ? gpl.data() : nullptr, points ? gpts.data() : nullptr,
            weights ? gw.data() : nullptr, P, p.M, static_cast<int>(p.C), p.H, p.W,
            static_cast<int>(p.Hd), static_cast<int>(p.O), p.scale, L);
      },
      smem);
  Grads g;
  g.planes.assign(gpl.begin(), gpl.end());
  g.points.assign(gpts.begin(), gpts.end());
  if (weights) {
    g.w.assign(nw, 0.0);
    std::vector<float> total(nw, 0.f);  // float sums in block order, as partial.sum(0)
    for (int b = 0; b < blocks; ++b) {
      for (int64_t e = 0; e < nw; ++e) total[e] += gw[b * nw + e];
    }
    g.w.assign(total.begin(), total.end());
  }
  return g;
}

// The backward point by point in double, from the definitions: f = mean of the planes'
// bilinear samples; z = W0 f + b0; h = softplus(z); x = W1 h + b1; density = x0;
// features = sigmoid(x[1:]) * 1.002 - 0.001.
Grads run_reference(const Problem& p) {
  const int64_t P = p.N * p.M, C = p.C, Hd = p.Hd, O = p.O, F = O - 1, HWC = p.H * p.W * C;
  Grads g;
  g.planes.assign(p.planes_cl.size(), 0.0);
  g.points.assign(P * 3, 0.0);
  const ref::Decoder dec{C, Hd, O, p.w0.data(), p.b0.data(), p.w1.data(), p.b1.data()};
  g.w.assign(dec.grad_size(), 0.0);
  const double scale = p.scale;
  for (int64_t i = 0; i < P; ++i) {
    const int64_t n = i / p.M;
    const double x = p.points[i * 3] * scale, y = p.points[i * 3 + 1] * scale,
                 z = p.points[i * 3 + 2] * scale;
    BilinearTaps<double> taps[3];
    std::vector<double> f(C, 0.0);
    for (int pl = 0; pl < 3; ++pl) {
      double u, v;
      nofa::plane_uv(pl, x, y, z, u, v);
      nofa::bilinear_taps(u, v, p.H, p.W, taps[pl]);
      for (int64_t c = 0; c < C; ++c) {
        for (int k = 0; k < 4; ++k) {
          if (taps[pl].off[k] >= 0)
            f[c] += taps[pl].w[k] * p.planes_cl[(n * 3 + pl) * HWC + taps[pl].off[k] * C + c] / 3.0;
        }
      }
    }
    const std::vector<double> gfeat =
        ref::decoder_backward(dec, f.data(), p.gd[i], p.gf.data() + i * F, g.w.data());
    // d f / d (plane texel) = w / 3; d f / d point through the taps' weights.
    double gp[3] = {0.0, 0.0, 0.0};
    for (int pl = 0; pl < 3; ++pl) {
      double dots[4] = {0.0, 0.0, 0.0, 0.0};
      for (int k = 0; k < 4; ++k) {
        if (taps[pl].off[k] < 0) continue;
        for (int64_t c = 0; c < C; ++c) {
          const int64_t at = (n * 3 + pl) * HWC + taps[pl].off[k] * C + c;
          g.planes[at] += taps[pl].w[k] * gfeat[c] / 3.0;
          dots[k] += gfeat[c] / 3.0 * p.planes_cl[at];
        }
      }
      double du = 0.0, dv = 0.0;
      for (int k = 0; k < 4; ++k) {
        du += taps[pl].dwdu[k] * dots[k];
        dv += taps[pl].dwdv[k] * dots[k];
      }
      int au, av;
      nofa::plane_axes(pl, au, av);
      gp[au] += du;
      gp[av] += dv;
    }
    for (int a = 0; a < 3; ++a) g.points[i * 3 + a] = gp[a] * scale;
  }
  return g;
}

void check_case(const char* name, const Problem& p, bool planes, bool points, bool weights,
                int64_t resident) {
  const int before = emu::divergent_barriers.load(), shuffles_before = emu::bad_shuffles.load();
  const int overruns = emu::shared_overruns.load();
  const Grads got = run_kernel(p, planes, points, weights, resident);
  const Grads want = run_reference(p);
  const double tol = 2e-5;
  if (planes) {
    ref::expect_rel(std::string(name) + ": planes", got.planes, want.planes, tol);
  } else {
    CHECK(got.planes.empty());
  }
  if (points) ref::expect_rel(std::string(name) + ": points", got.points, want.points, tol);
  if (weights) {
    const ref::Decoder dec{p.C, p.Hd, p.O, p.w0.data(), p.b0.data(), p.w1.data(), p.b1.data()};
    ref::expect_weight_grads(name, dec, got.w, want.w, tol);
  }
  CHECK(emu::divergent_barriers.load() == before);
  CHECK(emu::bad_shuffles.load() == shuffles_before);
  CHECK(emu::shared_overruns.load() == overruns);
}

}  // namespace

int main() {
  emu::BlockRunner br(60);
  runner = &br;
  // The last argument is how many blocks the device keeps resident: the grid is the smaller
  // of that and the tile count, as decode_triplane_fused_backward_blocks makes it.
  // EG3D sizes; 600 points: 4 whole tiles + 88; 2 blocks walk 3 and 2 tiles.
  Problem eg3d = make_problem(2, 300, 32, 64, 33, 1);
  check_case("eg3d, 2 blocks", eg3d, true, true, true, 2);
  check_case("eg3d, 5 blocks", eg3d, true, true, true, 5);
  // An H100 (132 SMs) with fewer tiles than resident blocks: one block per tile.
  check_case("eg3d, H100 grid", eg3d, true, true, true, 132);
  // Each gradient alone, and planes + points (two tiles, the second partial).
  const Problem small = make_problem(1, 150, 32, 64, 33, 6);
  check_case("weights only", small, false, false, true, 1);  // one block, two tiles
  check_case("planes only", small, true, false, false, 2);
  check_case("points only", small, false, true, false, 1);
  check_case("planes + points", small, true, true, false, 1);
  // Tiny decoder, 3 batch elements, last tile of 3 points, one round of 5 units.
  const Problem tiny = make_problem(3, 129, 3, 5, 3, 2);
  check_case("tiny", tiny, true, true, true, 3);
  check_case("tiny, weights only", tiny, false, false, true, 1);
  // Wide hidden layer with a partial last round (203 = 25 x 8 + 3), odd C and O.
  check_case("wide hidden", make_problem(1, 200, 15, 203, 6, 3), true, true, true, 1);
  // Density only (O = 1: no feature cotangent at all).
  check_case("density only", make_problem(2, 130, 32, 64, 1, 4), true, true, true, 2);
  // Non-finite and far-away points: their planes read and receive nothing.
  Problem bad = make_problem(1, 140, 32, 64, 33, 5);
  const float nan = std::numeric_limits<float>::quiet_NaN(),
              inf = std::numeric_limits<float>::infinity();
  const float rows[][3] = {{nan, 0.1f, 0.1f}, {0.1f, nan, 0.1f},  {0.1f, 0.1f, nan},
                           {inf, 0.1f, 0.1f}, {0.1f, -inf, 0.1f}, {0.1f, 0.1f, inf},
                           {nan, nan, nan},   {5.f, 5.f, 5.f}};
  for (int r = 0; r < 8; ++r) {
    for (int a = 0; a < 3; ++a) bad.points[(3 + r) * 3 + a] = rows[r][a];
  }
  for (int a = 0; a < 3; ++a) bad.points[131 * 3 + a] = rows[1][a];  // second tile
  check_case("non-finite points", bad, true, true, true, 2);
  TEST_MAIN_END();
}
