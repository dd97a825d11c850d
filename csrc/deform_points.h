// deform_points: argument checks and the host-side (ATen) pieces that the CPU and CUDA
// implementations share: folding alpha/beta into one first-layer bias per batch element,
// and turning the per-batch first-layer gradients into weight/alpha/beta gradients.
//
// Parameter layout (nn.Linear convention, weight [out, in]):
//   D-Net: d_weights[0] [Hd0, P + A + B] with columns [PE(x) | alpha | beta],
//          d_weights[i] [Hd_i, Hd_{i-1}], d_weights[-1] [3, Hd_last]; d_biases[i] [out_i].
//   W-Net: w_weights[0] [Hw0, P + A] with columns [PE(x) | alpha], ..., w_weights[-1]
//          [1, Hw_last]; w_biases likewise. P = 3 + 6 * n_freqs.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "checks.h"
#include "common/deform.h"

namespace nofa {

inline void check_mlp(const at::TensorList ws, const at::TensorList bs, const char* name,
                      int64_t in_dim, int64_t out_dim, const at::Tensor& points) {
  const std::string wn = std::string(name) + "_weights", bn = std::string(name) + "_biases";
  TORCH_CHECK(ws.size() >= 2, "nofa: ", wn, " must hold at least 2 layers (one hidden), got ",
              ws.size());
  TORCH_CHECK(bs.size() == ws.size(), "nofa: ", bn, " must hold one bias per layer (", ws.size(),
              "), got ", bs.size());
  int64_t prev = in_dim;
  for (size_t i = 0; i < ws.size(); ++i) {
    const std::string wi = wn + "[" + std::to_string(i) + "]",
                      bi = bn + "[" + std::to_string(i) + "]";
    const int64_t out = i + 1 == ws.size() ? out_dim : ws[i].size(0);
    TORCH_CHECK(ws[i].dim() == 2 && ws[i].size(0) == out && ws[i].size(1) == prev, "nofa: ", wi,
                " must have shape [", out, ", ", prev, "], got ", shape_str(ws[i]));
    TORCH_CHECK(out > 0, "nofa: ", wi, " has zero outputs");
    TORCH_CHECK(bs[i].dim() == 1 && bs[i].size(0) == out, "nofa: ", bi, " must have shape [", out,
                "], got ", shape_str(bs[i]));
    check_same_dtype(ws[i], wi.c_str(), points, "points");
    check_same_dtype(bs[i], bi.c_str(), points, "points");
    check_same_device(ws[i], wi.c_str(), points, "points");
    check_same_device(bs[i], bi.c_str(), points, "points");
    prev = out;
  }
}

inline void check_deform_points(const at::Tensor& points, const at::Tensor& alpha,
                                const at::Tensor& beta, at::TensorList d_weights,
                                at::TensorList d_biases, at::TensorList w_weights,
                                at::TensorList w_biases, int64_t n_freqs) {
  check_dim(points, 3, "points", "[N, M, 3]");
  check_dim(alpha, 2, "alpha", "[N, A]");
  check_dim(beta, 2, "beta", "[N, B]");
  TORCH_CHECK(points.size(2) == 3, "nofa: points must have shape [N, M, 3], got ",
              shape_str(points));
  TORCH_CHECK(alpha.size(0) == points.size(0) && beta.size(0) == points.size(0),
              "nofa: points, alpha and beta must have the same batch size N, got ", points.size(0),
              ", ", alpha.size(0), " and ", beta.size(0));
  check_float(points, "points");
  check_same_dtype(alpha, "alpha", points, "points");
  check_same_dtype(beta, "beta", points, "points");
  check_same_device(alpha, "alpha", points, "points");
  check_same_device(beta, "beta", points, "points");
  TORCH_CHECK(n_freqs >= 0 && n_freqs <= 16, "nofa: n_freqs must be in [0, 16], got ", n_freqs);
  const int64_t P = pe_dim(static_cast<int>(n_freqs)), A = alpha.size(1), B = beta.size(1);
  check_mlp(d_weights, d_biases, "d", P + A + B, 3, points);
  check_mlp(w_weights, w_biases, "w", P + A, 1, points);
}

// Width of the `hidden` tensor a forward with save_hidden keeps per point: the D-Net's
// activations of layers 1 .. L-2 (the first layer is cheap to recompute from PE; the
// W-Net is small), so the backward skips most of the recomputation.
inline int64_t saved_hidden_width(at::TensorList d_weights) {
  int64_t s = 0;
  for (size_t l = 1; l + 1 < d_weights.size(); ++l) s += d_weights[l].size(0);
  return s;
}

inline void check_saved_hidden(const at::Tensor& hidden, const at::Tensor& points,
                               at::TensorList d_weights) {
  if (hidden.numel() == 0) return;  // nothing saved: the backward recomputes everything
  const int64_t S = saved_hidden_width(d_weights);
  TORCH_CHECK(hidden.dim() == 3 && hidden.size(0) == points.size(0) &&
                  hidden.size(1) == points.size(1) && hidden.size(2) == S,
              "nofa: hidden must be empty or have shape [", points.size(0), ", ", points.size(1),
              ", ", S, "], got ", shape_str(hidden));
  check_same_dtype(hidden, "hidden", points, "points");
  check_same_device(hidden, "hidden", points, "points");
}

// The per-call preparation both backends need.
struct DeformPrep {
  int64_t P, A, B, Hd0, Hw0;
  at::Tensor w1_pe;  // [Hd0 + Hw0, P]: the PE columns of both first layers, stacked
  at::Tensor c;      // [N, Hd0 + Hw0]: first-layer bias per batch element (alpha/beta folded in)
};

inline DeformPrep prepare_deform(const at::Tensor& alpha, const at::Tensor& beta,
                                 at::TensorList d_weights, at::TensorList d_biases,
                                 at::TensorList w_weights, at::TensorList w_biases,
                                 int64_t n_freqs) {
  DeformPrep p;
  p.P = pe_dim(static_cast<int>(n_freqs));
  p.A = alpha.size(1);
  p.B = beta.size(1);
  const auto& wd = d_weights[0];
  const auto& ww = w_weights[0];
  p.Hd0 = wd.size(0);
  p.Hw0 = ww.size(0);
  p.w1_pe = at::cat({wd.narrow(1, 0, p.P), ww.narrow(1, 0, p.P)}, 0).contiguous();
  // alpha/beta are constant over an avatar's points: their share of the first layer is
  // computed here once per batch element instead of once per point.
  const auto cd = at::addmm(d_biases[0], alpha, wd.narrow(1, p.P, p.A).t())
                      .addmm_(beta, wd.narrow(1, p.P + p.A, p.B).t());
  const auto cw = at::addmm(w_biases[0], alpha, ww.narrow(1, p.P, p.A).t());
  p.c = at::cat({cd, cw}, 1).contiguous();
  return p;
}

// Gradients of the first layers and of alpha/beta from the kernels' reductions:
// g_w1_pe [Hd0 + Hw0, P] (sum over points of delta^T PE) and g_c [N, Hd0 + Hw0] (sum over
// each batch element's points of the first-layer pre-activation gradient).
struct FirstLayerGrads {
  at::Tensor gwd0, gbd0, gww0, gbw0, galpha, gbeta;
};

inline FirstLayerGrads first_layer_grads(const DeformPrep& p, const at::Tensor& g_w1_pe,
                                         const at::Tensor& g_c, const at::Tensor& alpha,
                                         const at::Tensor& beta, const at::Tensor& wd0,
                                         const at::Tensor& ww0) {
  FirstLayerGrads g;
  const auto gcd = g_c.narrow(1, 0, p.Hd0), gcw = g_c.narrow(1, p.Hd0, p.Hw0);
  g.gwd0 = at::cat({g_w1_pe.narrow(0, 0, p.Hd0), gcd.t().mm(alpha), gcd.t().mm(beta)}, 1);
  g.gww0 = at::cat({g_w1_pe.narrow(0, p.Hd0, p.Hw0), gcw.t().mm(alpha)}, 1);
  g.gbd0 = gcd.sum(0);
  g.gbw0 = gcw.sum(0);
  g.galpha = gcd.mm(wd0.narrow(1, p.P, p.A)).addmm_(gcw, ww0.narrow(1, p.P, p.A));
  g.gbeta = gcd.mm(wd0.narrow(1, p.P + p.A, p.B));
  return g;
}

inline std::vector<at::Tensor> contiguous_all(at::TensorList ts) {
  std::vector<at::Tensor> out;
  out.reserve(ts.size());
  for (const auto& t : ts) out.push_back(t.detach().contiguous());
  return out;
}

// An upstream gradient that autograd left undefined, or gave in another layout.
inline at::Tensor grad_or_zeros(const at::Tensor& g, const at::Tensor& like, const char* name) {
  if (!g.defined() || g.numel() == 0) return at::zeros(like.sizes(), like.options());
  TORCH_CHECK(g.sizes() == like.sizes(), "nofa: ", name, " must have shape ", shape_str(like),
              ", got ", shape_str(g));
  return g.to(like.scalar_type()).contiguous();
}

}  // namespace nofa
