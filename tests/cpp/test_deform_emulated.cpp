// The deform_points CUDA kernels (csrc/cuda/deform_points_device.h) run on the CPU: the
// kernels' own source, compiled by the host compiler with stand-ins for the CUDA built-ins
// (tests/cpp/cuda_emu.h, block_emu.h, smem_emu.h: a block = kThreads = 128 std::threads of a
// persistent pool, all alive at once; __syncthreads = a std::barrier that also checks every
// thread reached the same barrier; float4 / double2 = 16-byte aligned structs; the dynamic
// shared memory = one buffer, NaN for block_smem_bytes' size before every block and followed
// by a guard that must stay intact). Blocks run one after another, as a GPU may run them.
// The host side (csrc/cuda/deform_points_cuda.cpp with csrc/deform_points.h) is replayed
// with plain loops: DeformMlp's weight layouts (wt [in, out], w [out, in], the first layer's
// PE columns only), the per-batch first-layer bias c (prepare_deform), the acts / deltas
// columns, the backward's chunk loop (row0 / rows; chunks smaller than the glue's kChunk
// here so that several run), the weight-gradient products over acts / deltas per chunk, the
// per-batch sums g_c and first_layer_grads.
// Checked against a double-precision forward and backward written point by point from the
// definitions (docs/deformation.md): x_c, offset, weight, the saved hidden layers, the point
// gradient and every weight / bias / alpha / beta gradient; float and double; n_freqs 0, 6,
// 16; hidden widths 1 .. 256, multiples of 32 and not; 2 .. 8 layers per MLP; point counts
// that are not multiples of the tile, batch boundaries inside tiles, several chunks; NaN and
// inf points, whose tile neighbours must be unaffected; a NaN in one weight, bias, alpha or
// beta, which must reach the same outputs and gradients as in the reference (torch's ReLU).
// Outputs and the acts / deltas
// buffers start as NaN (an element no thread writes fails) and carry guard rows past their
// end (a write out of bounds fails). A block whose threads wait at different barriers fails
// after 120 s instead of hanging (BlockRunner's watchdog).
// Plain runs catch a missing barrier where the OS threads happen to interleave badly (each
// of the kernels' 5 barriers removed in turn: every one failed); under ThreadSanitizer an
// access pair a barrier no longer orders is reported (the kernels as committed: none).
// Build by hand: g++ -std=c++20 -O1 -pthread -I csrc tests/cpp/test_deform_emulated.cpp && ./a.out
// Race check (~10 s): the same with -O1 -g -fsanitize=thread.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "../../tests/cpp/check.h"

// ---- stand-ins for the CUDA built-ins the kernels use -----------------------------------
#include "../../tests/cpp/cuda_emu.h"
#include "../../tests/cpp/block_emu.h"

// The kernels' `extern __shared__` array (128 KiB, more than any launch here) and a guard of
// 0xa5 bytes past it.
NOFA_EMU_DYNAMIC_SHARED(char, raw, 128 * 1024, 4096, 0xa5)

#include "cuda/deform_points_device.h"
#include "../../tests/cpp/compare.h"

namespace {

// One block of the launchers' kThreads (128) threads alive at a time.
emu::BlockRunner* runner = nullptr;

// A launch <<<grid, kThreads, smem>>>.
void launch(unsigned int grid, size_t smem, std::function<void()> kernel) {
  CHECK(smem > 0 && smem <= sizeof(nofa::raw));
  runner->launch(grid, nofa::kThreads, std::move(kernel), smem);
}

template <typename T>
T nan_v() {
  return std::numeric_limits<T>::quiet_NaN();
}

// A buffer of n values that starts as NaN, with guard values past its end.
template <typename T>
struct Guarded {
  static constexpr int64_t kGuard = 64;
  static constexpr double kMark = 1234.5;
  std::vector<T> v;
  int64_t n = 0;
  explicit Guarded(int64_t count = 0) { reset(count); }
  void reset(int64_t count) {
    n = count;
    v.assign(count + kGuard, nan_v<T>());
    for (int64_t i = count; i < count + kGuard; ++i) v[i] = static_cast<T>(kMark);
  }
  void fill_nan() { std::fill(v.begin(), v.begin() + n, nan_v<T>()); }
  T* data() { return v.data(); }
  bool guard_intact() const {
    for (int64_t i = n; i < n + kGuard; ++i) {
      if (!(v[i] == static_cast<T>(kMark))) return false;
    }
    return true;
  }
};

// One deform_points problem in the op's layouts (nn.Linear weights [out, in]).
template <typename T>
struct Problem {
  int64_t N = 0, M = 0, A = 4, B = 5;
  int n_freqs = 0, P = 3;
  std::vector<int> d_hidden, w_hidden;
  std::vector<std::vector<T>> wd, bd, ww, bw;  // per layer
  std::vector<int> d_dims, w_dims;             // in of layer 0, then outputs of each layer
  std::vector<T> points, alpha, beta, gxc, goff, gw;
  std::vector<int64_t> bad_rows;  // non-finite points: excluded from the comparisons
  int64_t rows() const { return N * M; }
};

template <typename T>
void make_mlp(std::mt19937& rng, const std::vector<int>& hidden, int in0, int out_last,
              std::vector<std::vector<T>>& W, std::vector<std::vector<T>>& b,
              std::vector<int>& dims) {
  std::normal_distribution<double> nd;
  dims.assign(1, in0);
  for (int h : hidden) dims.push_back(h);
  dims.push_back(out_last);
  W.clear();
  b.clear();
  for (size_t l = 0; l + 1 < dims.size(); ++l) {
    const int in = dims[l], out = dims[l + 1];
    std::vector<T> w(static_cast<size_t>(out) * in), bb(out);
    for (auto& x : w) x = static_cast<T>(nd(rng) * 1.4 / std::sqrt(double(in)));
    for (auto& x : bb) x = static_cast<T>(nd(rng) * 0.3);
    W.push_back(std::move(w));
    b.push_back(std::move(bb));
  }
}

template <typename T>
Problem<T> make_problem(int64_t N, int64_t M, int n_freqs, std::vector<int> d_hidden,
                        std::vector<int> w_hidden, unsigned seed) {
  Problem<T> p;
  p.N = N;
  p.M = M;
  p.n_freqs = n_freqs;
  p.P = nofa::pe_dim(n_freqs);
  p.d_hidden = d_hidden;
  p.w_hidden = w_hidden;
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(-1.0, 1.0);
  make_mlp<T>(rng, d_hidden, static_cast<int>(p.P + p.A + p.B), 3, p.wd, p.bd, p.d_dims);
  make_mlp<T>(rng, w_hidden, static_cast<int>(p.P + p.A), 1, p.ww, p.bw, p.w_dims);
  auto fill = [&](std::vector<T>& v, int64_t n, bool uniform) {
    v.resize(n);
    for (auto& x : v) x = static_cast<T>(uniform ? ud(rng) : nd(rng));
  };
  fill(p.points, N * M * 3, true);
  fill(p.alpha, N * p.A, false);
  fill(p.beta, N * p.B, false);
  fill(p.gxc, N * M * 3, false);
  fill(p.goff, N * M * 3, false);
  fill(p.gw, N * M, false);
  return p;
}

// What the op returns: forward outputs [R, 3], [R, 3], [R], hidden [R, S]; gradients.
struct Result {
  std::vector<double> x_c, offset, weight, hidden, gpoints, galpha, gbeta;
  std::vector<std::vector<double>> gwd, gbd, gww, gbw;
};

int saved_width(const std::vector<int>& d_hidden) {  // saved_hidden_width: layers 1 .. L-2
  int s = 0;
  for (size_t l = 1; l < d_hidden.size(); ++l) s += d_hidden[l];
  return s;
}

// ---- the kernels, driven as deform_points_cuda.cpp drives them --------------------------
template <typename T>
struct DeviceMlp {  // the copies make_mlp (glue) keeps alive
  std::vector<std::vector<T>> w, wt, b;
  std::vector<T> c;
};

template <typename T>
nofa::DeformMlp<T> glue_mlp(const std::vector<std::vector<T>>& W,
                            const std::vector<std::vector<T>>& b, const std::vector<int>& dims,
                            int P, const std::vector<T>& c_full, int64_t N, int c_off, int c_ld,
                            DeviceMlp<T>& keep, int64_t& col) {
  nofa::DeformMlp<T> m{};
  m.layers = static_cast<int>(W.size());
  m.dims[0] = P;
  keep.w.resize(m.layers);
  keep.wt.resize(m.layers);
  keep.b.resize(m.layers);
  for (int l = 0; l < m.layers; ++l) {
    const int in = dims[l], out = dims[l + 1];
    const int used = l == 0 ? P : in;  // layer 0: W[0].narrow(1, 0, P)
    auto& w = keep.w[l];
    auto& wt = keep.wt[l];
    w.resize(static_cast<size_t>(out) * used);
    wt.resize(static_cast<size_t>(out) * used);
    for (int o = 0; o < out; ++o) {
      for (int k = 0; k < used; ++k) {
        w[static_cast<size_t>(o) * used + k] = W[l][static_cast<size_t>(o) * in + k];
        wt[static_cast<size_t>(k) * out + o] = W[l][static_cast<size_t>(o) * in + k];
      }
    }
    m.w[l] = w.data();
    m.wt[l] = wt.data();
    if (l > 0) {
      keep.b[l] = b[l];
      m.b[l] = keep.b[l].data();
    } else {
      m.b[l] = nullptr;
    }
    m.dims[l + 1] = out;
    m.col[l] = static_cast<int>(col);
    col += out;
  }
  const int h0 = dims[1];
  keep.c.resize(N * h0);
  for (int64_t n = 0; n < N; ++n) {
    for (int j = 0; j < h0; ++j) keep.c[n * h0 + j] = c_full[n * c_ld + c_off + j];
  }
  m.c = keep.c.data();
  return m;
}

template <typename T>
unsigned int tiles_for(int64_t rows) {
  return static_cast<unsigned int>((rows + nofa::Tile<T>::P - 1) / nofa::Tile<T>::P);
}

template <typename T>
void launch_forward(const nofa::DeformArgs<T>& a, int max_w) {
  const size_t smem = nofa::block_smem_bytes<T>(a.P, max_w);
  if (a.rows == 0 || smem == 0) return;
  launch(tiles_for<T>(a.rows), smem,
         [&a, max_w] { nofa::forward_kernel<T, nofa::Tile<T>::P>(a, max_w); });
}

template <typename T>
void launch_backward(const nofa::DeformArgs<T>& a, int max_w) {
  const size_t smem = nofa::block_smem_bytes<T>(a.P, max_w);
  if (a.rows == 0 || smem == 0) return;
  launch(tiles_for<T>(a.rows), smem,
         [&a, max_w] { nofa::backward_kernel<T, nofa::Tile<T>::P>(a, max_w); });
}

// Sum over the rows [0, rows) of d[r, dc + i] * x[r, xc + k] into g[i, k] (a chunk's addmm_).
template <typename T>
void add_products(std::vector<double>& g, const T* d, int dc, int di, const T* x, int xc, int xk,
                  int64_t ld, int64_t rows) {
  for (int i = 0; i < di; ++i) {
    for (int k = 0; k < xk; ++k) {
      double s = 0.0;
      for (int64_t r = 0; r < rows; ++r)
        s += double(d[r * ld + dc + i]) * double(x[r * ld + xc + k]);
      g[static_cast<size_t>(i) * xk + k] += s;
    }
  }
}

template <typename T>
Result run_kernels(const Problem<T>& p, bool save_hidden, bool backward, int64_t chunk_rows) {
  const int64_t N = p.N, M = p.M, R = p.rows(), P = p.P, A = p.A, B = p.B;
  const int Hd0 = p.d_dims[1], Hw0 = p.w_dims[1], Hc = Hd0 + Hw0;
  // prepare_deform: c = [b_d0 + alpha Wd0_a^T + beta Wd0_b^T | b_w0 + alpha Ww0_a^T] per batch
  // element.
  std::vector<T> c(N * Hc);
  const int ind = p.d_dims[0], inw = p.w_dims[0];
  for (int64_t n = 0; n < N; ++n) {
    for (int j = 0; j < Hd0; ++j) {
      double s = p.bd[0][j];
      for (int64_t k = 0; k < A; ++k) s += double(p.alpha[n * A + k]) * p.wd[0][j * ind + P + k];
      for (int64_t k = 0; k < B; ++k) s += double(p.beta[n * B + k]) * p.wd[0][j * ind + P + A + k];
      c[n * Hc + j] = static_cast<T>(s);
    }
    for (int j = 0; j < Hw0; ++j) {
      double s = p.bw[0][j];
      for (int64_t k = 0; k < A; ++k) s += double(p.alpha[n * A + k]) * p.ww[0][j * inw + P + k];
      c[n * Hc + Hd0 + j] = static_cast<T>(s);
    }
  }
  int max_w = 0;
  for (int h : p.d_hidden) max_w = std::max(max_w, h);
  for (int h : p.w_hidden) max_w = std::max(max_w, h);
  DeviceMlp<T> kd, kw;
  nofa::DeformArgs<T> a{};
  a.rows = R;
  a.M = M;
  a.n_freqs = p.n_freqs;
  a.P = static_cast<int>(P);
  a.points = p.points.data();
  int64_t col = P;  // PE occupies columns [0, P) of acts
  a.d = glue_mlp<T>(p.wd, p.bd, p.d_dims, static_cast<int>(P), c, N, 0, Hc, kd, col);
  a.w = glue_mlp<T>(p.ww, p.bw, p.w_dims, static_cast<int>(P), c, N, Hd0, Hc, kw, col);
  const int64_t acts_ld = col;

  Result res;
  // Forward (deform_points_cuda).
  {
    const int64_t S = saved_width(p.d_hidden);
    Guarded<T> x_c(R * 3), offset(R * 3), weight(R), hidden(save_hidden ? R * S : 0);
    nofa::DeformArgs<T> f = a;
    f.x_c = x_c.data();
    f.offset = offset.data();
    f.weight = weight.data();
    f.hidden = save_hidden && S > 0 ? hidden.data() : nullptr;
    f.hidden_ld = S;
    launch_forward<T>(f, max_w);
    CHECK(x_c.guard_intact() && offset.guard_intact() && weight.guard_intact() &&
          hidden.guard_intact());
    res.x_c.assign(x_c.v.begin(), x_c.v.begin() + x_c.n);
    res.offset.assign(offset.v.begin(), offset.v.begin() + offset.n);
    res.weight.assign(weight.v.begin(), weight.v.begin() + weight.n);
    res.hidden.assign(hidden.v.begin(), hidden.v.begin() + hidden.n);
  }
  if (!backward) return res;
  // Backward (deform_points_backward_cuda): chunks of forward-in-acts-mode + backward kernel,
  // then the weight-gradient products over the chunk on the host.
  const int64_t chunk = std::min(R, chunk_rows);
  Guarded<T> acts(std::max<int64_t>(chunk, 1) * acts_ld),
      deltas(std::max<int64_t>(chunk, 1) * acts_ld);
  Guarded<T> gpoints(R * 3);
  a.acts = acts.data();
  a.acts_ld = acts_ld;
  a.deltas = deltas.data();
  a.grad_x_c = p.gxc.data();
  a.grad_offset = p.goff.data();
  a.grad_weight = p.gw.data();
  a.grad_points = gpoints.data();
  std::vector<std::vector<double>> gW[2], gB[2];
  const nofa::DeformMlp<T>* mlps[2] = {&a.d, &a.w};
  for (int m = 0; m < 2; ++m) {
    for (int l = 0; l < mlps[m]->layers; ++l) {
      gW[m].emplace_back(
          static_cast<size_t>(mlps[m]->dims[l + 1]) * (l == 0 ? 0 : mlps[m]->dims[l]), 0.0);
      gB[m].emplace_back(mlps[m]->dims[l + 1], 0.0);
    }
  }
  std::vector<double> g_w1_pe(static_cast<size_t>(Hc) * P, 0.0), g_c(N * Hc, 0.0);
  for (int64_t r0 = 0; r0 < R; r0 += chunk) {
    const int64_t rows = std::min(chunk, R - r0);
    a.rows = rows;
    a.row0 = r0;
    acts.fill_nan();  // at::empty: nothing of the previous chunk may be relied on
    deltas.fill_nan();
    launch_forward<T>(a, max_w);
    launch_backward<T>(a, max_w);
    CHECK(acts.guard_intact() && deltas.guard_intact() && gpoints.guard_intact());
    int c_col = 0;
    for (int m = 0; m < 2; ++m) {
      const auto& mlp = *mlps[m];
      for (int l = 1; l < mlp.layers; ++l) {
        add_products(gW[m][l], deltas.data(), mlp.col[l], mlp.dims[l + 1], acts.data(),
                     mlp.col[l - 1], mlp.dims[l], acts_ld, rows);
        for (int i = 0; i < mlp.dims[l + 1]; ++i) {
          for (int64_t r = 0; r < rows; ++r) gB[m][l][i] += deltas.v[r * acts_ld + mlp.col[l] + i];
        }
      }
      std::vector<double> part(static_cast<size_t>(mlp.dims[1]) * P, 0.0);
      add_products(part, deltas.data(), mlp.col[0], mlp.dims[1], acts.data(), 0,
                   static_cast<int>(P), acts_ld, rows);
      for (size_t i = 0; i < part.size(); ++i) g_w1_pe[c_col * P + i] += part[i];
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t n = (r0 + r) / M;
        for (int j = 0; j < mlp.dims[1]; ++j)
          g_c[n * Hc + c_col + j] += deltas.v[r * acts_ld + mlp.col[0] + j];
      }
      c_col += mlp.dims[1];
    }
  }
  res.gpoints.assign(gpoints.v.begin(), gpoints.v.begin() + gpoints.n);
  // first_layer_grads.
  for (int m = 0; m < 2; ++m) {
    const bool is_d = m == 0;
    const int H0 = is_d ? Hd0 : Hw0, in = is_d ? ind : inw, coff = is_d ? 0 : Hd0;
    std::vector<double> g0(static_cast<size_t>(H0) * in, 0.0), gb0(H0, 0.0);
    for (int j = 0; j < H0; ++j) {
      for (int64_t k = 0; k < P; ++k) g0[j * in + k] = g_w1_pe[(coff + j) * P + k];
      for (int64_t n = 0; n < N; ++n) {
        const double gc = g_c[n * Hc + coff + j];
        gb0[j] += gc;
        for (int64_t k = 0; k < A; ++k) g0[j * in + P + k] += gc * double(p.alpha[n * A + k]);
        if (is_d)
          for (int64_t k = 0; k < B; ++k) g0[j * in + P + A + k] += gc * double(p.beta[n * B + k]);
      }
    }
    gW[m][0] = g0;
    gB[m][0] = gb0;
  }
  res.galpha.assign(N * A, 0.0);
  res.gbeta.assign(N * B, 0.0);
  for (int64_t n = 0; n < N; ++n) {
    for (int j = 0; j < Hd0; ++j) {
      const double gc = g_c[n * Hc + j];
      for (int64_t k = 0; k < A; ++k) res.galpha[n * A + k] += gc * p.wd[0][j * ind + P + k];
      for (int64_t k = 0; k < B; ++k) res.gbeta[n * B + k] += gc * p.wd[0][j * ind + P + A + k];
    }
    for (int j = 0; j < Hw0; ++j) {
      const double gc = g_c[n * Hc + Hd0 + j];
      for (int64_t k = 0; k < A; ++k) res.galpha[n * A + k] += gc * p.ww[0][j * inw + P + k];
    }
  }
  res.gwd = gW[0];
  res.gbd = gB[0];
  res.gww = gW[1];
  res.gbw = gB[1];
  return res;
}

// ---- the reference: double precision, point by point, from the definitions --------------
// PE(x) = [x, sin(2^k pi x), cos(2^k pi x) for k < L]; D-Net on [PE | alpha | beta] and W-Net
// on [PE | alpha], ReLU between layers; x_c = x + sigmoid(z_w) * offset.
template <typename T>
Result run_reference(const Problem<T>& p) {
  const int64_t N = p.N, M = p.M, R = p.rows(), P = p.P, A = p.A, B = p.B;
  const double pi = 3.14159265358979323846;
  Result res;
  res.x_c.assign(R * 3, 0.0);
  res.offset.assign(R * 3, 0.0);
  res.weight.assign(R, 0.0);
  res.hidden.assign(R * saved_width(p.d_hidden), 0.0);
  res.gpoints.assign(R * 3, 0.0);
  res.galpha.assign(N * A, 0.0);
  res.gbeta.assign(N * B, 0.0);
  auto zeros_like = [](const std::vector<std::vector<T>>& v) {
    std::vector<std::vector<double>> z;
    for (const auto& t : v) z.emplace_back(t.size(), 0.0);
    return z;
  };
  res.gwd = zeros_like(p.wd);
  res.gbd = zeros_like(p.bd);
  res.gww = zeros_like(p.ww);
  res.gbw = zeros_like(p.bw);
  const int64_t S = saved_width(p.d_hidden);
  for (int64_t r = 0; r < R; ++r) {
    const int64_t n = r / M;
    double x[3];
    for (int a = 0; a < 3; ++a) x[a] = p.points[r * 3 + a];
    std::vector<double> pe(P);
    for (int a = 0; a < 3; ++a) {
      pe[a] = x[a];
      for (int k = 0; k < p.n_freqs; ++k) {
        pe[3 + 6 * k + a] = std::sin(std::ldexp(pi, k) * x[a]);
        pe[6 + 6 * k + a] = std::cos(std::ldexp(pi, k) * x[a]);
      }
    }
    // Forward through one MLP, keeping every layer's input; returns the output layer's values.
    auto forward = [&](const std::vector<std::vector<T>>& W, const std::vector<std::vector<T>>& b,
                       const std::vector<int>& dims, std::vector<double> in,
                       std::vector<std::vector<double>>& inputs) {
      inputs.clear();
      for (size_t l = 0; l + 1 < dims.size(); ++l) {
        inputs.push_back(in);
        std::vector<double> out(dims[l + 1]);
        for (int o = 0; o < dims[l + 1]; ++o) {
          double z = b[l][o];
          for (int k = 0; k < dims[l]; ++k)
            z += double(W[l][static_cast<size_t>(o) * dims[l] + k]) * in[k];
          out[o] = l + 2 < dims.size() ? (z < 0.0 ? 0.0 : z) : z;  // torch.relu: NaN stays
        }
        in = std::move(out);
      }
      return in;
    };
    std::vector<double> ud(pe), uw(pe);
    for (int64_t k = 0; k < A; ++k) {
      ud.push_back(p.alpha[n * A + k]);
      uw.push_back(p.alpha[n * A + k]);
    }
    for (int64_t k = 0; k < B; ++k) ud.push_back(p.beta[n * B + k]);
    std::vector<std::vector<double>> in_d, in_w;
    const std::vector<double> off = forward(p.wd, p.bd, p.d_dims, ud, in_d);
    const std::vector<double> zw = forward(p.ww, p.bw, p.w_dims, uw, in_w);
    const double w = 1.0 / (1.0 + std::exp(-zw[0]));
    for (int a = 0; a < 3; ++a) {
      res.offset[r * 3 + a] = off[a];
      res.x_c[r * 3 + a] = x[a] + w * off[a];
    }
    res.weight[r] = w;
    int64_t hc = 0;
    for (size_t l = 2; l < in_d.size();
         ++l) {  // inputs of layers 2 .. L-1 = outputs of layers 1 .. L-2
      for (double v : in_d[l]) res.hidden[r * S + hc++] = v;
    }
    // Backward.
    double d_off[3], dw = p.gw[r];
    for (int a = 0; a < 3; ++a) {
      d_off[a] = double(p.gxc[r * 3 + a]) * w + double(p.goff[r * 3 + a]);
      dw += double(p.gxc[r * 3 + a]) * off[a];
    }
    const double d_z = dw * w * (1.0 - w);
    // Gradient w.r.t. the MLP's input (PE | alpha | beta), accumulating the parameter gradients.
    auto backward = [&](const std::vector<std::vector<T>>& W, const std::vector<int>& dims,
                        const std::vector<std::vector<double>>& inputs, std::vector<double> delta,
                        std::vector<std::vector<double>>& gW,
                        std::vector<std::vector<double>>& gB) {
      for (int l = static_cast<int>(dims.size()) - 2; l >= 0; --l) {
        std::vector<double> g(dims[l], 0.0);
        for (int o = 0; o < dims[l + 1]; ++o) {
          gB[l][o] += delta[o];
          for (int k = 0; k < dims[l]; ++k) {
            gW[l][static_cast<size_t>(o) * dims[l] + k] += delta[o] * inputs[l][k];
            g[k] += double(W[l][static_cast<size_t>(o) * dims[l] + k]) * delta[o];
          }
        }
        if (l > 0)  // ReLU of layer l-1, torch's rule: a NaN output passes the gradient
          for (int k = 0; k < dims[l]; ++k) g[k] = inputs[l][k] <= 0.0 ? 0.0 : g[k];
        delta = std::move(g);
      }
      return delta;
    };
    const std::vector<double> gud =
        backward(p.wd, p.d_dims, in_d, {d_off[0], d_off[1], d_off[2]}, res.gwd, res.gbd);
    const std::vector<double> guw = backward(p.ww, p.w_dims, in_w, {d_z}, res.gww, res.gbw);
    for (int64_t k = 0; k < A; ++k) res.galpha[n * A + k] += gud[P + k] + guw[P + k];
    for (int64_t k = 0; k < B; ++k) res.gbeta[n * B + k] += gud[P + A + k];
    for (int a = 0; a < 3; ++a) {
      double g = double(p.gxc[r * 3 + a]) + gud[a] + guw[a];
      for (int k = 0; k < p.n_freqs; ++k) {
        const double f = std::ldexp(pi, k);
        g += f * std::cos(f * x[a]) * (gud[3 + 6 * k + a] + guw[3 + 6 * k + a]);
        g -= f * std::sin(f * x[a]) * (gud[6 + 6 * k + a] + guw[6 + 6 * k + a]);
      }
      res.gpoints[r * 3 + a] = g;
    }
  }
  return res;
}

// ---- comparison ---------------------------------------------------------------------------
// Norm-wise relative error over the elements `keep` selects (all when it is empty).
struct Case {
  std::string name;
  int64_t N, M;
  int n_freqs;
  std::vector<int> d_hidden, w_hidden;
  int64_t chunk_tiles;  // backward chunk in tiles (0: one chunk for all points)
  std::vector<std::pair<int64_t, int>>
      nonfinite;  // (row, coordinate) set to NaN / +inf / -inf in turn
};

template <typename T>
void check_case(const Case& cs, unsigned seed) {
  const char* type = sizeof(T) == 4 ? "float" : "double";
  Problem<T> p = make_problem<T>(cs.N, cs.M, cs.n_freqs, cs.d_hidden, cs.w_hidden, seed);
  const T specials[3] = {nan_v<T>(), std::numeric_limits<T>::infinity(),
                         -std::numeric_limits<T>::infinity()};
  for (size_t i = 0; i < cs.nonfinite.size(); ++i) {
    p.points[cs.nonfinite[i].first * 3 + cs.nonfinite[i].second] = specials[i % 3];
    p.bad_rows.push_back(cs.nonfinite[i].first);
  }
  const int before = emu::divergent_barriers.load(), overruns = emu::shared_overruns.load();
  const int64_t chunk = cs.chunk_tiles > 0 ? cs.chunk_tiles * nofa::Tile<T>::P : (int64_t{1} << 40);
  const Result want = run_reference(p);
  const Result plain = run_kernels(p, false, true, chunk);
  const Result saved = run_kernels(p, true, false, chunk);
  // double: the kernels' PE comes from the double-angle recurrence, whose error grows about
  // 2x per octave (common/deform.h): ~1e-12 relative at n_freqs 16 in the point gradient.
  const double tol = sizeof(T) == 4 ? 2e-5 : 1e-10;
  const int64_t R = p.rows(), S = saved_width(p.d_hidden);
  // Per-point tensors: only the finite points' rows count.
  std::vector<char> ok(R, 1);
  for (int64_t r : p.bad_rows) ok[r] = 0;
  auto rows_mask = [&](int64_t width) {
    std::vector<char> m(R * width);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t k = 0; k < width; ++k) m[r * width + k] = ok[r];
    return m;
  };
  auto expect = [&](const std::string& what, const std::vector<double>& got,
                    const std::vector<double>& expected, const std::vector<char>& keep) {
    ref::expect_rel(cs.name + " (" + type + "): " + what, got, expected, tol, keep);
  };
  const std::vector<char> m3 = rows_mask(3), m1 = rows_mask(1);
  for (const Result* got : {&plain, &saved}) {
    expect("x_c", got->x_c, want.x_c, m3);
    expect("offset", got->offset, want.offset, m3);
    expect("weight", got->weight, want.weight, m1);
  }
  expect("grad points", plain.gpoints, want.gpoints, m3);
  CHECK(plain.hidden.empty());
  if (S > 0) expect("hidden", saved.hidden, want.hidden, rows_mask(S));
  CHECK(emu::divergent_barriers.load() == before);
  CHECK(emu::shared_overruns.load() == overruns);
  if (!p.bad_rows.empty())
    return;  // the weight gradients sum over every point, non-finite ones too
  const Result& got = plain;
  for (size_t l = 0; l < want.gwd.size(); ++l) {
    expect("d weight " + std::to_string(l), got.gwd[l], want.gwd[l], {});
    expect("d bias " + std::to_string(l), got.gbd[l], want.gbd[l], {});
  }
  for (size_t l = 0; l < want.gww.size(); ++l) {
    expect("w weight " + std::to_string(l), got.gww[l], want.gww[l], {});
    expect("w bias " + std::to_string(l), got.gbw[l], want.gbw[l], {});
  }
  expect("alpha", got.galpha, want.galpha, {});
  expect("beta", got.gbeta, want.gbeta, {});
}

// A NaN in one parameter (a weight or bias of either MLP, alpha or beta): the kernels put NaN
// exactly where the reference does (torch's ReLU: NaN passes, and its derivative passes the
// gradient through a NaN output), in every output and gradient; the other entries agree.
struct NanCase {
  std::string name;
  char what;  // 'd' / 'w': an MLP's weight, 'D' / 'W': its bias, 'a': alpha, 'b': beta
  int layer;
  int64_t element;
};

void expect_same_nan(const std::string& what, const std::vector<double>& got,
                     const std::vector<double>& want, double tol, int64_t& nans) {
  CHECK(got.size() == want.size());
  std::vector<char> keep(want.size());
  int64_t mismatched = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const bool a = std::isnan(got[i]), b = std::isnan(want[i]);
    mismatched += a != b;
    nans += b;
    keep[i] = !a && !b;
  }
  if (mismatched)
    std::fprintf(stderr, "%s: %lld entries NaN on one side only\n", what.c_str(),
                 static_cast<long long>(mismatched));
  CHECK(mismatched == 0);
  ref::expect_rel(what, got, want, tol, keep);
}

template <typename T>
void check_nan_case(const NanCase& cs, unsigned seed) {
  const char* type = sizeof(T) == 4 ? "float" : "double";
  // Two batch elements, a batch boundary inside a tile, two chunks of one tile.
  Problem<T> p = make_problem<T>(2, 21, 4, {48, 40}, {32}, seed);
  std::vector<T>* target = nullptr;
  switch (cs.what) {
    case 'd':
      target = &p.wd[cs.layer];
      break;
    case 'D':
      target = &p.bd[cs.layer];
      break;
    case 'w':
      target = &p.ww[cs.layer];
      break;
    case 'W':
      target = &p.bw[cs.layer];
      break;
    case 'a':
      target = &p.alpha;
      break;
    default:
      target = &p.beta;
      break;
  }
  CHECK(cs.element < static_cast<int64_t>(target->size()));
  (*target)[cs.element] = nan_v<T>();
  const Result want = run_reference(p);
  const Result plain = run_kernels(p, false, true, nofa::Tile<T>::P);
  const Result saved = run_kernels(p, true, false, nofa::Tile<T>::P);
  const double tol = sizeof(T) == 4 ? 2e-5 : 1e-10;
  const std::string pre = cs.name + " (" + type + "): ";
  int64_t fwd_nans = 0, bwd_nans = 0;
  for (const Result* got : {&plain, &saved}) {
    expect_same_nan(pre + "x_c", got->x_c, want.x_c, tol, fwd_nans);
    expect_same_nan(pre + "offset", got->offset, want.offset, tol, fwd_nans);
    expect_same_nan(pre + "weight", got->weight, want.weight, tol, fwd_nans);
  }
  expect_same_nan(pre + "hidden", saved.hidden, want.hidden, tol, fwd_nans);
  expect_same_nan(pre + "grad points", plain.gpoints, want.gpoints, tol, bwd_nans);
  expect_same_nan(pre + "alpha", plain.galpha, want.galpha, tol, bwd_nans);
  expect_same_nan(pre + "beta", plain.gbeta, want.gbeta, tol, bwd_nans);
  for (size_t l = 0; l < want.gwd.size(); ++l) {
    expect_same_nan(pre + "d weight " + std::to_string(l), plain.gwd[l], want.gwd[l], tol,
                    bwd_nans);
    expect_same_nan(pre + "d bias " + std::to_string(l), plain.gbd[l], want.gbd[l], tol, bwd_nans);
  }
  for (size_t l = 0; l < want.gww.size(); ++l) {
    expect_same_nan(pre + "w weight " + std::to_string(l), plain.gww[l], want.gww[l], tol,
                    bwd_nans);
    expect_same_nan(pre + "w bias " + std::to_string(l), plain.gbw[l], want.gbw[l], tol, bwd_nans);
  }
  // The NaN reached the outputs (the old ReLU, v > 0 ? v : 0, made them all finite).
  CHECK(fwd_nans > 0 && bwd_nans > 0);
}

}  // namespace

int main() {
  emu::BlockRunner br;
  runner = &br;
  const std::vector<Case> cases = {
      // Default-like sizes: batch boundary (row 49) inside a tile, one chunk.
      {"n_freqs 6, widths 128 / 64", 2, 49, 6, {128, 128, 128}, {64, 64}, 0, {}},
      {"one point, 2 layers", 1, 1, 0, {32}, {32}, 0, {}},
      // P = 99, the widest layers, several chunks of 2 tiles.
      {"n_freqs 16, width 256, chunks", 1, 97, 16, {256, 256}, {256}, 2, {}},
      // Widths that are not multiples of 32; chunks of one tile cross batch boundaries.
      {"widths 100 / 40 / 16 / 1", 3, 33, 6, {100, 40, 16}, {16, 1}, 1, {}},
      {"8 layers", 2, 33, 6, {64, 40, 32, 16, 130, 16, 32}, {40, 16, 1}, 2, {}},
      // Non-finite points: NaN, +inf, -inf in turn; rows 3, 5 share tile 0 with finite points.
      {"non-finite points",
       2,
       40,
       6,
       {64, 64},
       {32},
       0,
       {{3, 0}, {5, 1}, {35, 2}, {50, 0}, {50, 1}}},
  };
  unsigned seed = 1;
  for (const Case& cs : cases) {
    check_case<float>(cs, seed);
    check_case<double>(cs, seed);
    ++seed;
  }
  // P = 27 at n_freqs 4; A = 4, B = 5: d_weights[0] is [48, 36], w_weights[0] [32, 31].
  const std::vector<NanCase> nan_cases = {
      {"NaN d_weights[0] (PE column)", 'd', 0, 5},
      {"NaN d_weights[0] (alpha column)", 'd', 0, 36 * 3 + 27 + 1},
      {"NaN d_weights[1]", 'd', 1, 48 * 7 + 3},
      {"NaN d_weights[2] (offset 1)", 'd', 2, 40 + 9},
      {"NaN d_biases[1]", 'D', 1, 11},
      {"NaN w_weights[0]", 'w', 0, 31 * 4 + 2},
      {"NaN w_biases[1] (logit)", 'W', 1, 0},
      {"NaN alpha[1]", 'a', 0, 4 + 2},
      {"NaN beta[0]", 'b', 0, 3},
  };
  for (const NanCase& cs : nan_cases) {
    check_nan_case<float>(cs, seed);
    check_nan_case<double>(cs, seed);
    ++seed;
  }
  TEST_MAIN_END();
}
