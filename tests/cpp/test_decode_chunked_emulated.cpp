// decode_triplane's chunked CUDA backward (csrc/cuda/decode_triplane_cuda.cpp, the path for
// float64 and for float32 sizes the fused kernel does not take: C > 32, 1 + F > 33, or its
// shared memory above the device's opt-in) run on the CPU. That path launches no kernel of
// its own: per chunk of one batch element's points it runs the sample_triplane CUDA kernels
// (csrc/cuda/sample_triplane_device.h, launched as cuda/sample_triplane.cu does) on pointers
// offset into the whole tensors -- planes + n * 3HWC, points + r0 * 3, the plane gradient +
// n * 3HWC, the point gradient + r0 * 3, with N = 1 and M = the chunk's rows -- and ATen
// GEMMs in between. This test replays that host loop with plain loops for the ATen calls
// (addmm, softplus, sigmoid, their backwards, the weight-gradient sums), the kernels' own
// source on std::threads (tests/cpp/cuda_emu.h, block_emu.h), the launchers' kernel choice
// (16-byte kernels for float32 with C % 4 == 0 and aligned pointers, which the offsets
// keep; the test asserts which ran) and grids, null pointers for gradients not asked for.
// Checked against a double-precision decoder backward written from the definitions
// (tests/cpp/triplane_ref.h for the tri-plane sampling): plane, point and all four weight
// gradients, each gradient asked for alone, float (C = 33, 40; 1 + F = 34) and double (EG3D
// sizes), N = 1, 2, chunks that split a batch element unevenly (the glue's chunk is 2^18
// points; a small one here so that several run), non-finite and outside points.
// Gradient buffers start as the glue's (zeros); chunk features as NaN (at::empty).
// Build by hand: g++ -std=c++20 -O1 -pthread -I csrc tests/cpp/test_decode_chunked_emulated.cpp &&
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

#include "cuda/sample_triplane_device.h"
#include "../../tests/cpp/triplane_ref.h"
#include "../../tests/cpp/decoder_ref.h"

namespace {

emu::BlockRunner* runner = nullptr;

void launch(unsigned int grid, std::function<void()> kernel) {
  runner->launch(grid, nofa::kThreads, std::move(kernel));
}

// The fused kernel's size limits (decode_triplane_fused_backward_ok, before its shared-memory
// test): float32 sizes inside them may take the fused kernel, so the float cases here are
// outside (C > 32 or 1 + F > 33), where the glue takes the chunked path on any device.
bool fused_sizes(int64_t C, int64_t O) { return C >= 1 && C <= 32 && O >= 1 && O <= 33; }

struct Problem {
  int64_t N, M, C, H, W, Hd, O;
  double scale;
  std::vector<float> planes, points, w0, b0, w1, b1, gd, gf;  // planes [N, 3, C, H, W]
};

Problem make_problem(int64_t N, int64_t M, int64_t C, int64_t H, int64_t W, int64_t Hd, int64_t O,
                     unsigned seed) {
  Problem p{N, M, C, H, W, Hd, O, 2.0 / 1.1, {}, {}, {}, {}, {}, {}, {}, {}};
  std::mt19937 rng(seed);
  ref::NormalFill fill{rng};
  fill(p.planes, N * 3 * C * H * W, 1.f);
  ref::fill_decoder(fill, C, Hd, O, 1.f, p.w0, p.b0, p.w1, p.b1);
  fill(p.gd, N * M, 1.f);
  fill(p.gf, N * M * (O - 1), 1.f);
  p.points = ref::make_points(N, M, H, W, p.scale, rng);
  return p;
}

struct Grads {
  std::vector<double> planes, points, w;  // planes [N, 3, C, H, W]; w: [gW0 | gb0 | gW1 | gb1]
  bool vec4_forward = false, vec4_planes = false;
};

using emu::Buffer;

// launch_sample_triplane_forward (cuda/sample_triplane.cu), reduce "mean".
template <typename T>
bool sample_forward(const T* pcl, const T* pts, T* out, int64_t N, int64_t M, int64_t C, int64_t H,
                    int64_t W, T scale) {
  const int64_t n = N * M * C;
  if (n == 0) return false;
  if constexpr (std::is_same_v<T, float>) {
    if (nofa::vec4_ok(pcl, out, C)) {
      launch(nofa::blocks_for(n / 4),
             [&] { nofa::forward_vec4_kernel(pcl, pts, out, N, M, C, H, W, scale, 0); });
      return true;
    }
  }
  launch(nofa::blocks_for(n),
         [&] { nofa::forward_kernel<T>(pcl, pts, out, N, M, C, H, W, scale, 0); });
  return false;
}

// launch_sample_triplane_backward, reduce "mean"; returns whether the 16-byte plane kernel ran.
template <typename T>
bool sample_backward(const T* go, const T* pcl, const T* pts, T* gpl, T* gpts, int64_t N, int64_t M,
                     int64_t C, int64_t H, int64_t W, T scale) {
  if (N * M * C == 0) return false;
  bool vec4 = false;
  if (gpl) {
    if constexpr (std::is_same_v<T, float>) vec4 = nofa::vec4_ok(go, gpl, C);
    if (vec4) {
      if constexpr (std::is_same_v<T, float>) {
        launch(nofa::blocks_for(N * M * C / 4),
               [&] { nofa::backward_planes_vec4_kernel(go, pts, gpl, N, M, C, H, W, scale, 0); });
      }
    } else {
      launch(nofa::blocks_for(N * M * C),
             [&] { nofa::backward_planes_kernel<T>(go, pts, gpl, N, M, C, H, W, scale, 0); });
    }
  }
  if (gpts) {
    launch(nofa::blocks_for(N * M * nofa::kWarp),
           [&] { nofa::backward_points_kernel<T>(go, pcl, pts, gpts, N, M, C, H, W, scale, 0); });
  }
  return vec4;
}

// decode_triplane_backward_cuda's chunked path, as the glue runs it, in T.
template <typename T>
Grads run_glue(const Problem& pr, int64_t chunk_points, bool planes_grad, bool points_grad,
               bool weights_grad) {
  const int64_t N = pr.N, M = pr.M, C = pr.C, H = pr.H, W = pr.W, HW = H * W, Hd = pr.Hd, O = pr.O,
                F = O - 1;
  // planes.permute(0, 1, 3, 4, 2).contiguous(); points.contiguous()
  Buffer<T> pcl(N * 3 * HW * C, T(0));
  emu::to_channels_last(pr.planes, N * 3, C, HW, pcl.data());
  Buffer<T> pts(N * M * 3, T(0));
  for (int64_t k = 0; k < N * M * 3; ++k) pts[k] = static_cast<T>(pr.points[k]);
  const std::vector<T> w0(pr.w0.begin(), pr.w0.end()), b0(pr.b0.begin(), pr.b0.end());
  const std::vector<T> w1(pr.w1.begin(), pr.w1.end()), b1(pr.b1.begin(), pr.b1.end());
  const T scale = static_cast<T>(pr.scale);  // static_cast<T>(2.0 / box_warp)
  // Gradients: zeros (at::zeros, or empty_like(planes).zero_()), or nothing when not asked for.
  Buffer<T> gpl(planes_grad ? N * 3 * HW * C : 0, T(0));
  Buffer<T> gpts(points_grad ? N * M * 3 : 0, T(0));
  std::vector<double> gw(weights_grad ? Hd * C + Hd + O * Hd + O : 0, 0.0);
  double* gw0 = gw.data();
  double* gb0 = gw0 + Hd * C;
  double* gw1 = gb0 + Hd;
  double* gb1 = gw1 + O * Hd;
  Grads g;
  const int64_t chunk = std::min(M, chunk_points);
  const int64_t plane_stride = 3 * H * W * C;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t m0 = 0; m0 < M; m0 += chunk) {
      const int64_t rows = std::min(chunk, M - m0), r0 = n * M + m0;
      Buffer<T> f(rows * C, std::numeric_limits<T>::quiet_NaN());  // at::empty({rows, C})
      g.vec4_forward = sample_forward<T>(pcl.data() + n * plane_stride, pts.data() + r0 * 3,
                                         f.data(), 1, rows, C, H, W, scale);
      // z = addmm(b0, f, w0^T); h = softplus(z); sg = sigmoid(addmm(b1f, h, w1f^T));
      // gx = [gd | sigmoid_backward(gf * 1.002, sg)]; gz = softplus_backward(gx @ w1, z).
      std::vector<T> z(rows * Hd), h(rows * Hd), gx(rows * O), gz(rows * Hd);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < Hd; ++j) {
          T s = b0[j];
          for (int64_t c = 0; c < C; ++c) s += f[r * C + c] * w0[j * C + c];
          z[r * Hd + j] = s;
          h[r * Hd + j] = static_cast<T>(ref::softplus(s));
        }
        gx[r * O] = static_cast<T>(pr.gd[r0 + r]);
        for (int64_t o = 1; o < O; ++o) {
          T s = b1[o];
          for (int64_t j = 0; j < Hd; ++j) s += h[r * Hd + j] * w1[o * Hd + j];
          const T sg = static_cast<T>(ref::sigmoid(s));
          gx[r * O + o] =
              static_cast<T>(pr.gf[(r0 + r) * F + o - 1]) * T(1 + 2 * 0.001) * (T(1) - sg) * sg;
        }
        for (int64_t j = 0; j < Hd; ++j) {
          T s = T(0);
          for (int64_t o = 0; o < O; ++o) s += gx[r * O + o] * w1[o * Hd + j];
          const T zz = z[r * Hd + j];
          gz[r * Hd + j] = zz > T(20) ? s : s * static_cast<T>(ref::sigmoid(zz));
        }
      }
      if (weights_grad) {
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t j = 0; j < Hd; ++j) {
            for (int64_t c = 0; c < C; ++c) gw0[j * C + c] += double(gz[r * Hd + j]) * f[r * C + c];
            gb0[j] += gz[r * Hd + j];
          }
          for (int64_t o = 0; o < O; ++o) {
            for (int64_t j = 0; j < Hd; ++j)
              gw1[o * Hd + j] += double(gx[r * O + o]) * h[r * Hd + j];
            gb1[o] += gx[r * O + o];
          }
        }
      }
      if (planes_grad || points_grad) {
        Buffer<T> gfeat(rows * C, T(0));  // at::mm(gz, w0).contiguous()
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < C; ++c) {
            T s = T(0);
            for (int64_t j = 0; j < Hd; ++j) s += gz[r * Hd + j] * w0[j * C + c];
            gfeat[r * C + c] = s;
          }
        }
        g.vec4_planes = sample_backward<T>(
            gfeat.data(), points_grad ? pcl.data() + n * plane_stride : nullptr,
            pts.data() + r0 * 3, planes_grad ? gpl.data() + n * plane_stride : nullptr,
            points_grad ? gpts.data() + r0 * 3 : nullptr, 1, rows, C, H, W, scale);
      }
    }
  }
  // gplanes.copy_(gplanes_cl.permute(0, 1, 4, 2, 3))
  if (planes_grad) {
    g.planes.resize(N * 3 * C * HW);
    for (int64_t np = 0; np < N * 3; ++np) {
      for (int64_t c = 0; c < C; ++c) {
        for (int64_t t = 0; t < HW; ++t)
          g.planes[(np * C + c) * HW + t] = gpl[(np * HW + t) * C + c];
      }
    }
  }
  if (points_grad) g.points.assign(gpts.data(), gpts.data() + N * M * 3);
  g.w = gw;
  return g;
}

// The decoder backward in double from the definitions: f = mean of the planes' bilinear
// samples; z = W0 f + b0; h = softplus(z); x = W1 h + b1; density = x0;
// features = sigmoid(x[1:]) * 1.002 - 0.001.
Grads run_reference(const Problem& pr) {
  const int64_t N = pr.N, M = pr.M, C = pr.C, O = pr.O, F = O - 1;
  const ref::Decoder dec{C, pr.Hd, O, pr.w0.data(), pr.b0.data(), pr.w1.data(), pr.b1.data()};
  ref::Planes pl{N, C, pr.H, pr.W, std::vector<double>(pr.planes.begin(), pr.planes.end())};
  Grads g;
  g.planes.assign(pl.v.size(), 0.0);
  g.points.assign(N * M * 3, 0.0);
  g.w.assign(dec.grad_size(), 0.0);
  for (int64_t i = 0; i < N * M; ++i) {
    const int64_t n = i / M;
    double xyz[3];
    for (int a = 0; a < 3; ++a) xyz[a] = static_cast<double>(pr.points[i * 3 + a]) * pr.scale;
    const std::vector<double> f = ref::sample_mean(pl, n, xyz);
    const std::vector<double> gfeat =
        ref::decoder_backward(dec, f.data(), pr.gd[i], pr.gf.data() + i * F, g.w.data());
    // Each plane's sample enters the mean with weight 1 / 3.
    std::vector<double> gp(C);
    for (int64_t c = 0; c < C; ++c) gp[c] = gfeat[c] / 3.0;
    double gxyz[3] = {0.0, 0.0, 0.0};
    for (int p = 0; p < 3; ++p)
      ref::sample_plane_backward(pl, n, p, xyz, gp.data(), &g.planes, gxyz);
    for (int a = 0; a < 3; ++a) g.points[i * 3 + a] = gxyz[a] * pr.scale;
  }
  return g;
}

template <typename T>
void check_case(const char* name, const Problem& pr, int64_t chunk, bool planes, bool points,
                bool weights) {
  const char* type = std::is_same_v<T, float> ? "float" : "double";
  // The glue takes this path for float64 always, for float32 outside the fused kernel's sizes.
  CHECK((!std::is_same_v<T, float> || !fused_sizes(pr.C, pr.O)));
  const int barriers = emu::divergent_barriers.load(), shuffles = emu::bad_shuffles.load();
  const Grads got = run_glue<T>(pr, chunk, planes, points, weights);
  const Grads want = run_reference(pr);
  const double tol = std::is_same_v<T, float> ? 2e-5 : 1e-10;
  const std::string label = std::string(name) + " (" + type + ")";
  if (planes) ref::expect_rel(label + ": grad planes", got.planes, want.planes, tol);
  if (points) ref::expect_rel(label + ": grad points", got.points, want.points, tol);
  if (weights) {
    const ref::Decoder dec{pr.C,         pr.Hd,        pr.O,        pr.w0.data(),
                           pr.b0.data(), pr.w1.data(), pr.b1.data()};
    ref::expect_weight_grads(label, dec, got.w, want.w, tol);
  }
  // The launchers' kernel choice: 16-byte kernels for float32 with C % 4 == 0 (every
  // offset pointer stays 16-byte aligned then).
  const bool vec4 = std::is_same_v<T, float> && pr.C % 4 == 0;
  CHECK(got.vec4_forward == vec4);
  CHECK(got.vec4_planes == (vec4 && planes));
  CHECK(emu::divergent_barriers.load() == barriers);
  CHECK(emu::bad_shuffles.load() == shuffles);
}

}  // namespace

int main() {
  emu::BlockRunner br;
  runner = &br;
  // float32, C = 33 (one-channel kernels): 2 x 70 points in chunks of 32 (32 + 32 + 6 per
  // batch element); every gradient, then each alone.
  const Problem c33 = make_problem(2, 70, 33, 16, 16, 24, 4, 1);
  check_case<float>("C=33, chunks of 32", c33, 32, true, true, true);
  check_case<float>("C=33, planes only", c33, 32, true, false, false);
  check_case<float>("C=33, points only", c33, 32, false, true, false);
  check_case<float>("C=33, weights only", c33, 32, false, false, true);
  // float32, C = 40 (16-byte kernels on the offset pointers), one chunk per batch element,
  // and chunks of 9.
  const Problem c40 = make_problem(2, 45, 40, 7, 9, 16, 3, 2);
  check_case<float>("C=40, one chunk", c40, 1 << 18, true, true, true);
  check_case<float>("C=40, chunks of 9", c40, 9, true, true, true);
  // float32, C = 8 with 1 + F = 34 outputs (beyond the fused kernel's registers).
  check_case<float>("C=8, 1+F=34", make_problem(1, 50, 8, 2, 3, 12, 34, 3), 16, true, true, true);
  // float64 at EG3D sizes (always this path), 3 batch elements.
  check_case<double>("eg3d sizes", make_problem(3, 40, 32, 16, 16, 64, 33, 4), 15, true, true,
                     true);
  check_case<double>("C=5", make_problem(2, 30, 5, 2, 3, 7, 2, 5), 30, true, true, true);
  TEST_MAIN_END();
}
