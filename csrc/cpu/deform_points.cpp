// deform_points on the CPU: forward and backward of the fused deformation field.
//
// Points are processed in tiles of kTile points (of the flattened [N * M]). A tile's
// activations (PE, every hidden layer of both MLPs) live in a per-thread workspace that
// fits in L2, so a forward-only call never holds [N, M, width] tensors. Dense products use
// at::mm on the tile (MKL/oneDNN pick the ISA at run time); the elementwise work (PE, bias
// + ReLU, the output head, PE's derivative) is fused into loops over the tile. Both first
// layers share one product (their PE columns are stacked), and alpha/beta enter as one
// bias per batch element (prepare_deform).
//
// Backward: a forward under autograd keeps only the D-Net's hidden activations of layers
// 1 .. L-2 (`hidden`, 384 floats per point at the default sizes, about a third of what
// the plain PyTorch graph keeps); the backward recomputes per tile the cheap rest (PE,
// the first layers, the small W-Net) and accumulates weight gradients in per-thread
// buffers. With an empty `hidden` it recomputes everything per tile.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "common/deform.h"
#include "cpu/isa.h"
#include "deform_points.h"

namespace nofa {
namespace {

// 256 points: a thread's forward workspace (PE, 192 first-layer and 3x128 + 2x64 hidden
// activations at the default sizes) is ~0.75 MB and the backward's ~1.4 MB, inside a 2 MB
// L2. 256 / 512 / 1024 measured the same within noise on the 2-core benchmark machine.
constexpr int64_t kTile = 256;

// Shared, read-only state of one call.
template <typename T>
struct Net {
  int64_t N, M, P;
  int n_freqs;
  int64_t Hd0, Hw0, H0;            // first-layer widths; H0 = Hd0 + Hw0
  std::vector<at::Tensor> wd, bd;  // contiguous D-Net parameters
  std::vector<at::Tensor> ww, bw;  // contiguous W-Net parameters
  at::Tensor w1_pe;                // [H0, P]
  at::Tensor c;                    // [N, H0]
};

// One thread's tile buffers. acts_d[l] holds D-Net layer l's output (post-ReLU) for
// l >= 1 (layer 0's is the left part of h0); likewise acts_w.
template <typename T>
struct Workspace {
  at::Tensor pe, h0, z, off;
  std::vector<at::Tensor> acts_d, acts_w;
  at::Tensor tmp_a, tmp_b, dcat, gpe, doff, dz;

  Workspace(const Net<T>& net, const at::TensorOptions& o, bool for_backward) {
    pe = at::empty({kTile, net.P}, o);
    h0 = at::empty({kTile, net.H0}, o);
    off = at::empty({kTile, 3}, o);
    z = at::empty({kTile, 1}, o);
    int64_t hmax = net.H0;
    for (size_t l = 1; l + 1 < net.wd.size(); ++l) {
      acts_d.push_back(at::empty({kTile, net.wd[l].size(0)}, o));
      hmax = std::max(hmax, net.wd[l].size(0));
    }
    for (size_t l = 1; l + 1 < net.ww.size(); ++l) {
      acts_w.push_back(at::empty({kTile, net.ww[l].size(0)}, o));
      hmax = std::max(hmax, net.ww[l].size(0));
    }
    if (for_backward) {
      tmp_a = at::empty({kTile, hmax}, o);
      tmp_b = at::empty({kTile, hmax}, o);
      dcat = at::empty({kTile, net.H0}, o);
      gpe = at::empty({kTile, net.P}, o);
      doff = at::empty({kTile, 3}, o);
      dz = at::empty({kTile, 1}, o);
    }
  }
};

// rows [0, t) of a [kTile, C] buffer, as a contiguous [t, C] tensor.
inline at::Tensor rows(const at::Tensor& buf, int64_t t) { return buf.narrow(0, 0, t); }

// A [t, C] contiguous scratch view over the first t * C values of buf.
inline at::Tensor scratch(const at::Tensor& buf, int64_t t, int64_t C) {
  return buf.view(-1).narrow(0, 0, t * C).view({t, C});
}

template <typename T>
void bias_relu(T* h, int64_t t, int64_t C, int64_t ld, const T* b) {
  for (int64_t i = 0; i < t; ++i) {
    T* r = h + i * ld;
    for (int64_t j = 0; j < C; ++j) r[j] = relu(r[j] + b[j]);
  }
}

template <typename T>
void add_bias(T* h, int64_t t, int64_t C, const T* b) {
  for (int64_t i = 0; i < t; ++i)
    for (int64_t j = 0; j < C; ++j) h[i * C + j] += b[j];
}

// The hidden layers after the first, and the output layer, of one MLP. `in` is the
// first layer's activation (a strided view into h0); `acts[l - 1]` ([t, H_l] views) receive
// layer l's activation, unless `have_acts` says they already hold it (saved by the
// forward), in which case only the output layer runs. Writes the output layer's raw result
// (before the sigmoid for the W-Net) into `out` [t, out_dim].
template <typename T>
void mlp_tail_forward(const std::vector<at::Tensor>& W, const std::vector<at::Tensor>& b,
                      at::Tensor in, const std::vector<at::Tensor>& acts, bool have_acts, int64_t t,
                      at::Tensor out) {
  const size_t L = W.size();
  for (size_t l = 1; l + 1 < L; ++l) {
    const at::Tensor& a = acts[l - 1];
    if (!have_acts) {
      at::mm_out(const_cast<at::Tensor&>(a), in, W[l].t());
      bias_relu<T>(a.data_ptr<T>(), t, a.size(1), a.stride(0), b[l].data_ptr<T>());
    }
    in = a;
  }
  at::mm_out(out, in, W[L - 1].t());
  add_bias<T>(out.data_ptr<T>(), t, out.size(1), b[L - 1].data_ptr<T>());
}

// Where a tile's D-Net activations of layers >= 1 live: the thread's workspace, or rows
// r0 .. r0 + t of the `hidden` tensor [N * M, S] that a forward with grad saves.
enum class Hidden { kScratch, kStore, kLoad };

template <typename T>
std::vector<at::Tensor> d_acts_views(const Net<T>& net, Workspace<T>& ws, const at::Tensor& hidden,
                                     Hidden mode, int64_t r0, int64_t t) {
  std::vector<at::Tensor> v;
  int64_t col = 0;
  for (size_t l = 1; l + 1 < net.wd.size(); ++l) {
    const int64_t H = net.wd[l].size(0);
    v.push_back(mode == Hidden::kScratch ? rows(ws.acts_d[l - 1], t)
                                         : hidden.narrow(0, r0, t).narrow(1, col, H));
    col += H;
  }
  return v;
}

// Forward of one tile of t points (rows r0 .. r0 + t of the flattened [N*M] points, all
// in batch element n). Fills the workspace (PE, activations, off, z) and `dacts`.
template <typename T>
void tile_forward(const Net<T>& net, Workspace<T>& ws, const std::vector<at::Tensor>& dacts,
                  bool have_dacts, const T* x, int64_t r0, int64_t t) {
  T* pe = ws.pe.template data_ptr<T>();
  for (int64_t i = 0; i < t; ++i)
    positional_encoding<double>(x + 3 * i, net.n_freqs, pe + i * net.P);
  at::Tensor h0 = rows(ws.h0, t);
  at::mm_out(h0, rows(ws.pe, t), net.w1_pe.t());
  // First-layer bias of each point's batch element (a tile may span two or more).
  T* hp = h0.data_ptr<T>();
  for (int64_t i = 0; i < t; ++i)
    bias_relu<T>(hp + i * net.H0, 1, net.H0, net.H0,
                 net.c.template data_ptr<T>() + ((r0 + i) / net.M) * net.H0);
  mlp_tail_forward<T>(net.wd, net.bd, h0.narrow(1, 0, net.Hd0), dacts, have_dacts, t,
                      rows(ws.off, t));
  std::vector<at::Tensor> wacts;
  for (const auto& a : ws.acts_w) wacts.push_back(rows(a, t));
  mlp_tail_forward<T>(net.ww, net.bw, h0.narrow(1, net.Hd0, net.Hw0), wacts, false, t,
                      rows(ws.z, t));
}

// Per-thread gradient accumulators.
template <typename T>
struct Grads {
  std::vector<at::Tensor> wd, bd, ww, bw;  // layers >= 1 (index 0 unused, left undefined)
  at::Tensor w1_pe;                        // [H0, P]
  at::Tensor c;                            // [N, H0]

  Grads(const Net<T>& net, const at::TensorOptions& o) {
    for (size_t l = 0; l < net.wd.size(); ++l) {
      wd.push_back(l ? at::zeros(net.wd[l].sizes(), o) : at::Tensor());
      bd.push_back(l ? at::zeros(net.bd[l].sizes(), o) : at::Tensor());
    }
    for (size_t l = 0; l < net.ww.size(); ++l) {
      ww.push_back(l ? at::zeros(net.ww[l].sizes(), o) : at::Tensor());
      bw.push_back(l ? at::zeros(net.bw[l].sizes(), o) : at::Tensor());
    }
    w1_pe = at::zeros({net.H0, net.P}, o);
    c = at::zeros({net.N, net.H0}, o);
  }
};

template <typename T>
void col_sum_into(const T* d, int64_t t, int64_t C, int64_t ld, T* acc) {
  for (int64_t i = 0; i < t; ++i)
    for (int64_t j = 0; j < C; ++j) acc[j] += d[i * ld + j];
}

// Backward through one MLP's layers >= 1, starting from the output layer's gradient
// `delta` [t, out]. Leaves layer 0's pre-activation gradient in `d0` (a strided view into
// dcat), accumulating weight/bias gradients of layers >= 1 into gw/gb.
template <typename T>
void mlp_backward(const std::vector<at::Tensor>& W, const at::Tensor& a0,
                  const std::vector<at::Tensor>& acts, at::Tensor delta,
                  std::vector<at::Tensor>& gw, std::vector<at::Tensor>& gb, Workspace<T>& ws,
                  at::Tensor d0, int64_t t) {
  const size_t L = W.size();
  for (size_t l = L - 1; l >= 1; --l) {
    const at::Tensor a_prev = l >= 2 ? acts[l - 2] : a0;  // input of layer l
    gw[l].addmm_(delta.t(), a_prev);
    col_sum_into<T>(delta.data_ptr<T>(), t, delta.size(1), delta.size(1), gb[l].data_ptr<T>());
    // Gradient of layer l-1's output, then through its ReLU (mask from its output).
    const int64_t C = a_prev.size(1);
    auto& buf = (L - 1 - l) % 2 == 0 ? ws.tmp_a : ws.tmp_b;
    at::Tensor g = scratch(buf, t, C);
    at::mm_out(g, delta, W[l]);
    const T* ap = a_prev.data_ptr<T>();
    const int64_t lda = a_prev.stride(0);
    T* gp = g.data_ptr<T>();
    if (l >= 2) {
      for (int64_t i = 0; i < t; ++i)
        for (int64_t j = 0; j < C; ++j)
          gp[i * C + j] = relu_grad_from_output(ap[i * lda + j], gp[i * C + j]);
      delta = g;
    } else {
      T* dp = d0.data_ptr<T>();
      const int64_t ldd = d0.stride(0);
      for (int64_t i = 0; i < t; ++i)
        for (int64_t j = 0; j < C; ++j)
          dp[i * ldd + j] = relu_grad_from_output(ap[i * lda + j], gp[i * C + j]);
    }
  }
}

template <typename T>
void tile_backward(const Net<T>& net, Workspace<T>& ws, Grads<T>& gr, const at::Tensor& hidden,
                   const T* x, const T* gxc, const T* goff, const T* gw, T* gx, int64_t r0,
                   int64_t t) {
  // Recompute what the forward did not save (everything, or all but the D-Net's layers >= 1).
  const Hidden mode = hidden.numel() ? Hidden::kLoad : Hidden::kScratch;
  const auto dacts = d_acts_views(net, ws, hidden, mode, r0, t);
  tile_forward<T>(net, ws, dacts, mode == Hidden::kLoad, x, r0, t);
  std::vector<at::Tensor> wacts;
  for (const auto& a : ws.acts_w) wacts.push_back(rows(a, t));
  const T* off = ws.off.template data_ptr<T>();
  const T* z = ws.z.template data_ptr<T>();
  T* doff = ws.doff.template data_ptr<T>();
  T* dz = ws.dz.template data_ptr<T>();
  for (int64_t i = 0; i < t; ++i)
    deform_head_backward(gxc + 3 * i, goff + 3 * i, gw[i], off + 3 * i, sigmoid(z[i]), doff + 3 * i,
                         dz[i]);
  at::Tensor h0 = rows(ws.h0, t);
  at::Tensor dcat = rows(ws.dcat, t);
  mlp_backward<T>(net.wd, h0.narrow(1, 0, net.Hd0), dacts, rows(ws.doff, t), gr.wd, gr.bd, ws,
                  dcat.narrow(1, 0, net.Hd0), t);
  mlp_backward<T>(net.ww, h0.narrow(1, net.Hd0, net.Hw0), wacts, rows(ws.dz, t), gr.ww, gr.bw, ws,
                  dcat.narrow(1, net.Hd0, net.Hw0), t);
  // First layers: PE columns (weight gradient and the route back to the points) and the
  // per-batch bias that carries alpha/beta.
  gr.w1_pe.addmm_(dcat.t(), rows(ws.pe, t));
  const T* dp = dcat.data_ptr<T>();
  for (int64_t i = 0; i < t; ++i)
    col_sum_into<T>(dp + i * net.H0, 1, net.H0, net.H0,
                    gr.c.template data_ptr<T>() + ((r0 + i) / net.M) * net.H0);
  at::Tensor gpe = rows(ws.gpe, t);
  at::mm_out(gpe, dcat, net.w1_pe);
  const T* gpp = gpe.data_ptr<T>();
  for (int64_t i = 0; i < t; ++i) {
    T g3[3];
    positional_encoding_backward<double>(x + 3 * i, net.n_freqs, gpp + i * net.P, g3);
    for (int a = 0; a < 3; ++a) gx[3 * i + a] = gxc[3 * i + a] + g3[a];
  }
}

template <typename T>
Net<T> make_net(const at::Tensor& points, const at::Tensor& alpha, const at::Tensor& beta,
                at::TensorList d_weights, at::TensorList d_biases, at::TensorList w_weights,
                at::TensorList w_biases, int64_t n_freqs) {
  const auto prep = prepare_deform(alpha, beta, d_weights, d_biases, w_weights, w_biases, n_freqs);
  Net<T> net;
  net.N = points.size(0);
  net.M = points.size(1);
  net.P = prep.P;
  net.n_freqs = static_cast<int>(n_freqs);
  net.Hd0 = prep.Hd0;
  net.Hw0 = prep.Hw0;
  net.H0 = prep.Hd0 + prep.Hw0;
  net.wd = contiguous_all(d_weights);
  net.bd = contiguous_all(d_biases);
  net.ww = contiguous_all(w_weights);
  net.bw = contiguous_all(w_biases);
  net.w1_pe = prep.w1_pe;
  net.c = prep.c;
  return net;
}

// Tiles run over the flattened [N * M] points (a tile may span batch elements, so many
// small batch elements still make full tiles); f(first_tile, end_tile) per thread chunk.
template <typename F>
void for_each_tile(int64_t rows, F&& f_chunk) {
  at::parallel_for(0, (rows + kTile - 1) / kTile, 1, f_chunk);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_points_cpu(
    const at::Tensor& points, const at::Tensor& alpha, const at::Tensor& beta,
    at::TensorList d_weights, at::TensorList d_biases, at::TensorList w_weights,
    at::TensorList w_biases, int64_t n_freqs, bool save_hidden) {
  check_deform_points(points, alpha, beta, d_weights, d_biases, w_weights, w_biases, n_freqs);
  // Scalar tier only: the products are ATen GEMMs, which choose their own ISA.
  isa::record(isa::Op::kDeformPoints, isa::path_for(isa::Op::kDeformPoints));
  // Below autograd: the tile products write into out= buffers (parameters may require grad).
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const int64_t N = points.size(0), M = points.size(1);
  auto x_c = at::empty({N, M, 3}, points.options());
  auto offset = at::empty({N, M, 3}, points.options());
  auto weight = at::empty({N, M, 1}, points.options());
  auto hidden = at::empty({save_hidden ? N : 0, M, save_hidden ? saved_hidden_width(d_weights) : 0},
                          points.options());
  if (N * M == 0) return {x_c, offset, weight, hidden};
  const auto pts = points.contiguous();
  const auto hid = hidden.view({hidden.size(0) * M, hidden.size(2)});
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "deform_points_cpu", [&] {
    using T = scalar_t;
    const auto net =
        make_net<T>(pts, alpha, beta, d_weights, d_biases, w_weights, w_biases, n_freqs);
    const T* xp = pts.data_ptr<T>();
    T* xcp = x_c.data_ptr<T>();
    T* op = offset.data_ptr<T>();
    T* wp = weight.data_ptr<T>();
    for_each_tile(N * M, [&](int64_t b, int64_t e) {
      Workspace<T> ws(net, pts.options(), false);
      for (int64_t task = b; task < e; ++task) {
        const int64_t r0 = task * kTile, t = std::min(kTile, N * M - r0);
        const Hidden mode = save_hidden ? Hidden::kStore : Hidden::kScratch;
        tile_forward<T>(net, ws, d_acts_views(net, ws, hid, mode, r0, t), false, xp + 3 * r0, r0,
                        t);
        const T* off = ws.off.template data_ptr<T>();
        const T* z = ws.z.template data_ptr<T>();
        for (int64_t i = 0; i < t; ++i) {
          const T w = sigmoid(z[i]);
          wp[r0 + i] = w;
          for (int a = 0; a < 3; ++a) {
            op[3 * (r0 + i) + a] = off[3 * i + a];
            xcp[3 * (r0 + i) + a] = xp[3 * (r0 + i) + a] + w * off[3 * i + a];
          }
        }
      }
    });
  });
  return {x_c, offset, weight, hidden};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>,
           std::vector<at::Tensor>, std::vector<at::Tensor>>
deform_points_backward_cpu(const at::Tensor& grad_x_c, const at::Tensor& grad_offset,
                           const at::Tensor& grad_weight, const at::Tensor& points,
                           const at::Tensor& alpha, const at::Tensor& beta,
                           at::TensorList d_weights, at::TensorList d_biases,
                           at::TensorList w_weights, at::TensorList w_biases, int64_t n_freqs,
                           const at::Tensor& hidden) {
  check_deform_points(points, alpha, beta, d_weights, d_biases, w_weights, w_biases, n_freqs);
  // Scalar tier only: the products are ATen GEMMs, which choose their own ISA.
  isa::record(isa::Op::kDeformPoints, isa::path_for(isa::Op::kDeformPoints));
  check_saved_hidden(hidden, points, d_weights);
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const int64_t N = points.size(0), M = points.size(1);
  const auto hid = hidden.numel() ? hidden.contiguous().view({N * M, -1}) : hidden;
  const auto pts = points.contiguous();
  const auto gxc = grad_or_zeros(grad_x_c, pts, "grad_x_c");
  const auto goff = grad_or_zeros(grad_offset, pts, "grad_offset");
  const auto gw = grad_or_zeros(grad_weight, at::empty({N, M, 1}, pts.options()), "grad_weight");
  auto gpoints = at::empty({N, M, 3}, pts.options());
  std::vector<at::Tensor> gwd, gbd, gww, gbw;
  at::Tensor galpha, gbeta;
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "deform_points_backward_cpu", [&] {
    using T = scalar_t;
    const auto net =
        make_net<T>(pts, alpha, beta, d_weights, d_biases, w_weights, w_biases, n_freqs);
    const auto o = pts.options();
    // One accumulator set per thread, summed in thread order afterwards (deterministic
    // for a given thread count; no atomics, no locks).
    const int nt = at::get_num_threads();
    std::vector<std::unique_ptr<Grads<T>>> per_thread(nt);
    const T* xp = pts.data_ptr<T>();
    const T* gxcp = gxc.data_ptr<T>();
    const T* goffp = goff.data_ptr<T>();
    const T* gwp = gw.data_ptr<T>();
    T* gxp = gpoints.data_ptr<T>();
    if (N * M > 0) {
      for_each_tile(N * M, [&](int64_t b, int64_t e) {
        Workspace<T> ws(net, o, true);
        const int tid = at::get_thread_num();
        TORCH_CHECK(tid >= 0 && tid < nt, "nofa: unexpected thread id ", tid);
        if (!per_thread[tid]) per_thread[tid] = std::make_unique<Grads<T>>(net, o);
        auto& gr = *per_thread[tid];
        for (int64_t task = b; task < e; ++task) {
          const int64_t r0 = task * kTile, t = std::min(kTile, N * M - r0);
          tile_backward<T>(net, ws, gr, hid, xp + 3 * r0, gxcp + 3 * r0, goffp + 3 * r0, gwp + r0,
                           gxp + 3 * r0, r0, t);
        }
      });
    }
    Grads<T> total(net, o);
    for (auto& g : per_thread) {
      if (!g) continue;
      for (size_t l = 1; l < total.wd.size(); ++l) {
        total.wd[l].add_(g->wd[l]);
        total.bd[l].add_(g->bd[l]);
      }
      for (size_t l = 1; l < total.ww.size(); ++l) {
        total.ww[l].add_(g->ww[l]);
        total.bw[l].add_(g->bw[l]);
      }
      total.w1_pe.add_(g->w1_pe);
      total.c.add_(g->c);
    }
    const DeformPrep prep{net.P, alpha.size(1), beta.size(1), net.Hd0, net.Hw0, net.w1_pe, net.c};
    auto fl = first_layer_grads(prep, total.w1_pe, total.c, alpha, beta, net.wd[0], net.ww[0]);
    total.wd[0] = fl.gwd0;
    total.bd[0] = fl.gbd0;
    total.ww[0] = fl.gww0;
    total.bw[0] = fl.gbw0;
    gwd = total.wd;
    gbd = total.bd;
    gww = total.ww;
    gbw = total.bw;
    galpha = fl.galpha;
    gbeta = fl.gbeta;
  });
  return {gpoints, galpha, gbeta, gwd, gbd, gww, gbw};
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CPU, m) {
  m.impl("deform_points", &deform_points_cpu);
  m.impl("deform_points_backward", &deform_points_backward_cpu);
}

}  // namespace nofa
