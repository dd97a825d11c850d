// deform_points on CUDA: argument checks, weight layouts, allocation and launches (host
// side). The backward walks the points in chunks: the forward kernel recomputes the
// chunk's activations into a buffer, the backward kernel fills per-layer gradients, and
// the weight gradients are accumulated with cuBLAS (at::addmm_) per chunk, so memory is
// bounded by the chunk size, not by M. (The CUDA backward ignores a saved `hidden`: the
// recompute is cheap on the GPU.)
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "deform_points.h"

namespace nofa {

// The launchers (cuda/deform_points.cu): raw pointers, no torch headers there, so the .cu
// compiles in seconds. Their arguments, DeformArgs, are in common/deform.h.

// Shared memory a launch needs (0 if the configuration is unsupported).
template <typename T>
size_t deform_smem_bytes(int P, int max_width);

template <typename T>
void launch_deform_forward(const DeformArgs<T>& a, int max_width, cudaStream_t stream);

// Needs a.acts filled by launch_deform_forward for the same chunk.
template <typename T>
void launch_deform_backward(const DeformArgs<T>& a, int max_width, cudaStream_t stream);

namespace {

constexpr int64_t kChunk = 32768;  // points per backward chunk (a multiple of every tile size)

// The hidden widths the kernel supports (kept in step with CUDA_MAX_WIDTH in
// nofa/ops/deform_points.py): any width the shared-memory plan holds. The block's threads
// stride over a layer's outputs and shared memory is sized by the widest layer, so no
// width needs to be a multiple of the warp (tests/cpp/test_deform_emulated.cpp runs the
// kernels at widths 1 .. 256).
inline bool cuda_width_ok(int64_t w) { return w >= 1 && w <= kDeformMaxWidth; }

// Checked before anything is allocated or launched: a wider layer would not fit the
// shared-memory plan.
void check_cuda_mlp_widths(at::TensorList ws, const char* name, int64_t& max_w) {
  TORCH_CHECK(static_cast<int64_t>(ws.size()) <= kDeformMaxLayers,
              "nofa: the CUDA deform_points "
              "kernel supports at most ",
              static_cast<int64_t>(kDeformMaxLayers), " layers per MLP, ", name, "_weights has ",
              static_cast<int64_t>(ws.size()));
  for (size_t l = 0; l + 1 < ws.size(); ++l) {
    const int64_t w = ws[l].size(0);
    TORCH_CHECK(cuda_width_ok(w), "nofa: ", name, "_weights[", static_cast<int64_t>(l), "] has ", w,
                " outputs; the CUDA deform_points kernel supports hidden widths in [1, ",
                static_cast<int64_t>(kDeformMaxWidth), "]");
    if (w > max_w) max_w = w;
  }
}

int64_t check_cuda_widths(at::TensorList d_weights, at::TensorList w_weights, int64_t P,
                          size_t elem_size) {
  int64_t max_w = 0;
  check_cuda_mlp_widths(d_weights, "d", max_w);
  check_cuda_mlp_widths(w_weights, "w", max_w);
  const size_t smem = elem_size == sizeof(double)
                          ? deform_smem_bytes<double>(static_cast<int>(P), static_cast<int>(max_w))
                          : deform_smem_bytes<float>(static_cast<int>(P), static_cast<int>(max_w));
  TORCH_CHECK(smem > 0,
              "nofa: the CUDA deform_points kernel supports positional encodings of up "
              "to ",
              static_cast<int64_t>(kDeformMaxWidth), " values and hidden widths up to ",
              static_cast<int64_t>(kDeformMaxWidth), ", got ", P, " and ", max_w);
  return max_w;
}

// A cotangent from autograd must live where the kernel runs: a CPU tensor's pointer would
// reach the kernel as a host address.
void check_grad_device(const at::Tensor& g, const char* name, const at::Tensor& points) {
  if (g.defined() && g.numel() > 0) check_same_device(g, name, points, "points");
}

// Device copies of one MLP in the kernel's layouts. `c` is its share of the per-batch
// first-layer bias; `col` advances past its columns in the acts/deltas buffers.

template <typename T>
DeformMlp<T> make_mlp(at::TensorList W, at::TensorList b, const at::Tensor& c, int64_t P,
                      std::vector<at::Tensor>& keep, int64_t& col) {
  DeformMlp<T> m{};
  m.layers = static_cast<int>(W.size());
  m.dims[0] = static_cast<int>(P);
  for (int l = 0; l < m.layers; ++l) {
    const auto w = (l == 0 ? W[0].narrow(1, 0, P) : W[l]).detach().contiguous();
    const auto wt = w.t().contiguous();
    keep.push_back(w);
    keep.push_back(wt);
    m.w[l] = w.data_ptr<T>();
    m.wt[l] = wt.data_ptr<T>();
    if (l > 0) {
      const auto bb = b[l].detach().contiguous();
      keep.push_back(bb);
      m.b[l] = bb.data_ptr<T>();
    } else {
      m.b[l] = nullptr;
    }
    m.dims[l + 1] = static_cast<int>(w.size(0));
    m.col[l] = static_cast<int>(col);
    col += w.size(0);
  }
  const auto cc = c.contiguous();
  keep.push_back(cc);
  m.c = cc.data_ptr<T>();
  return m;
}

template <typename T>
DeformArgs<T> make_args(const at::Tensor& pts, const DeformPrep& prep, at::TensorList d_weights,
                        at::TensorList d_biases, at::TensorList w_weights, at::TensorList w_biases,
                        int64_t n_freqs, std::vector<at::Tensor>& keep, int64_t& acts_ld) {
  DeformArgs<T> a{};
  a.rows = pts.size(0) * pts.size(1);
  a.M = pts.size(1);
  a.n_freqs = static_cast<int>(n_freqs);
  a.P = static_cast<int>(prep.P);
  a.points = pts.data_ptr<T>();
  int64_t col = prep.P;  // PE occupies columns [0, P) of the acts buffer
  a.d = make_mlp<T>(d_weights, d_biases, prep.c.narrow(1, 0, prep.Hd0), prep.P, keep, col);
  a.w = make_mlp<T>(w_weights, w_biases, prep.c.narrow(1, prep.Hd0, prep.Hw0), prep.P, keep, col);
  acts_ld = col;
  return a;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_points_cuda(
    const at::Tensor& points, const at::Tensor& alpha, const at::Tensor& beta,
    at::TensorList d_weights, at::TensorList d_biases, at::TensorList w_weights,
    at::TensorList w_biases, int64_t n_freqs, bool save_hidden) {
  check_deform_points(points, alpha, beta, d_weights, d_biases, w_weights, w_biases, n_freqs);
  const int64_t max_w = check_cuda_widths(d_weights, w_weights, pe_dim(static_cast<int>(n_freqs)),
                                          points.element_size());
  const c10::cuda::CUDAGuard guard(points.device());
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const int64_t N = points.size(0), M = points.size(1);
  auto x_c = at::empty({N, M, 3}, points.options());
  auto offset = at::empty({N, M, 3}, points.options());
  auto weight = at::empty({N, M, 1}, points.options());
  const int64_t S = saved_hidden_width(d_weights);
  auto hidden = at::empty({save_hidden ? N : 0, M, save_hidden ? S : 0}, points.options());
  if (N * M == 0) return {x_c, offset, weight, hidden};
  const auto pts = points.contiguous();
  const auto prep = prepare_deform(alpha.detach(), beta.detach(), d_weights, d_biases, w_weights,
                                   w_biases, n_freqs);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "deform_points_cuda", [&] {
    std::vector<at::Tensor> keep;
    int64_t acts_ld = 0;
    auto a = make_args<scalar_t>(pts, prep, d_weights, d_biases, w_weights, w_biases, n_freqs, keep,
                                 acts_ld);
    a.x_c = x_c.data_ptr<scalar_t>();
    a.offset = offset.data_ptr<scalar_t>();
    a.weight = weight.data_ptr<scalar_t>();
    a.hidden = save_hidden && S > 0 ? hidden.data_ptr<scalar_t>() : nullptr;
    a.hidden_ld = S;
    launch_deform_forward<scalar_t>(a, static_cast<int>(max_w), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {x_c, offset, weight, hidden};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>,
           std::vector<at::Tensor>, std::vector<at::Tensor>>
deform_points_backward_cuda(const at::Tensor& grad_x_c, const at::Tensor& grad_offset,
                            const at::Tensor& grad_weight, const at::Tensor& points,
                            const at::Tensor& alpha, const at::Tensor& beta,
                            at::TensorList d_weights, at::TensorList d_biases,
                            at::TensorList w_weights, at::TensorList w_biases, int64_t n_freqs,
                            const at::Tensor& hidden) {
  check_deform_points(points, alpha, beta, d_weights, d_biases, w_weights, w_biases, n_freqs);
  check_saved_hidden(hidden, points, d_weights);
  const int64_t max_w = check_cuda_widths(d_weights, w_weights, pe_dim(static_cast<int>(n_freqs)),
                                          points.element_size());
  check_grad_device(grad_x_c, "grad_x_c", points);
  check_grad_device(grad_offset, "grad_offset", points);
  check_grad_device(grad_weight, "grad_weight", points);
  const c10::cuda::CUDAGuard guard(points.device());
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const int64_t N = points.size(0), M = points.size(1), R = N * M;
  const auto pts = points.contiguous();
  const auto o = pts.options();
  const auto gxc = grad_or_zeros(grad_x_c, pts, "grad_x_c");
  const auto goff = grad_or_zeros(grad_offset, pts, "grad_offset");
  const auto gw = grad_or_zeros(grad_weight, at::empty({N, M, 1}, o), "grad_weight");
  const auto al = alpha.detach(), be = beta.detach();
  const auto prep = prepare_deform(al, be, d_weights, d_biases, w_weights, w_biases, n_freqs);
  auto gpoints = at::empty({N, M, 3}, o);
  auto zeros_like_list = [&](at::TensorList ts) {
    std::vector<at::Tensor> v;
    for (const auto& t : ts) v.push_back(at::zeros(t.sizes(), o));
    return v;
  };
  auto gwd = zeros_like_list(d_weights), gbd = zeros_like_list(d_biases);
  auto gww = zeros_like_list(w_weights), gbw = zeros_like_list(w_biases);
  auto g_w1_pe = at::zeros({prep.Hd0 + prep.Hw0, prep.P}, o);
  auto g_c = at::zeros({N, prep.Hd0 + prep.Hw0}, o);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "deform_points_backward_cuda", [&] {
    using T = scalar_t;
    std::vector<at::Tensor> keep;
    int64_t acts_ld = 0;
    auto a =
        make_args<T>(pts, prep, d_weights, d_biases, w_weights, w_biases, n_freqs, keep, acts_ld);
    const int64_t chunk = std::min(R, kChunk);
    auto acts = at::empty({std::max<int64_t>(chunk, 1), acts_ld}, o);
    auto deltas = at::empty({std::max<int64_t>(chunk, 1), acts_ld}, o);
    a.acts = acts.data_ptr<T>();
    a.acts_ld = acts_ld;
    a.deltas = deltas.data_ptr<T>();
    a.grad_x_c = gxc.data_ptr<T>();
    a.grad_offset = goff.data_ptr<T>();
    a.grad_weight = gw.data_ptr<T>();
    a.grad_points = gpoints.data_ptr<T>();
    const auto pe_cols = [&](const at::Tensor& buf) { return buf.narrow(1, 0, prep.P); };
    for (int64_t r0 = 0; r0 < R; r0 += chunk) {
      const int64_t rows = std::min(chunk, R - r0);
      a.rows = rows;
      a.row0 = r0;
      launch_deform_forward<T>(a, static_cast<int>(max_w), stream);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      launch_deform_backward<T>(a, static_cast<int>(max_w), stream);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      const auto A = acts.narrow(0, 0, rows), D = deltas.narrow(0, 0, rows);
      int64_t c_col = 0;
      for (auto [mlp, gW, gB] :
           {std::make_tuple(&a.d, &gwd, &gbd), std::make_tuple(&a.w, &gww, &gbw)}) {
        for (int l = 1; l < mlp->layers; ++l) {
          const auto in = A.narrow(1, mlp->col[l - 1], mlp->dims[l]);
          const auto dl = D.narrow(1, mlp->col[l], mlp->dims[l + 1]);
          (*gW)[l].addmm_(dl.t(), in);
          (*gB)[l].add_(dl.sum(0));
        }
        const auto d0 = D.narrow(1, mlp->col[0], mlp->dims[1]);
        g_w1_pe.narrow(0, c_col, mlp->dims[1]).addmm_(d0.t(), pe_cols(A));
        // Per batch element, the sum of its rows in this chunk (rows are point-major, so a
        // batch element's rows are one contiguous run). Not index_add_: its atomics would
        // all land on the same N rows, serialising 10^4..10^5 adds per address.
        // (Many short runs, tiny M: one index_add_ over spread-out rows instead.)
        auto gc = g_c.narrow(1, c_col, mlp->dims[1]);
        const int64_t b0 = r0 / M, b1 = (r0 + rows - 1) / M;
        if (b1 - b0 < 64) {
          for (int64_t b = b0; b <= b1; ++b) {
            const int64_t lo = std::max(r0, b * M), hi = std::min(r0 + rows, (b + 1) * M);
            gc.select(0, b).add_(d0.narrow(0, lo - r0, hi - lo).sum(0));
          }
        } else {
          gc.index_add_(0, at::arange(r0, r0 + rows, o.dtype(at::kLong)).div_(M, "floor"), d0);
        }
        c_col += mlp->dims[1];
      }
    }
  });
  auto fl =
      first_layer_grads(prep, g_w1_pe, g_c, al, be, d_weights[0].detach(), w_weights[0].detach());
  gwd[0] = fl.gwd0;
  gbd[0] = fl.gbd0;
  gww[0] = fl.gww0;
  gbw[0] = fl.gbw0;
  return {gpoints, fl.galpha, fl.gbeta, gwd, gbd, gww, gbw};
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CUDA, m) {
  m.impl("deform_points", &deform_points_cuda);
  m.impl("deform_points_backward", &deform_points_backward_cuda);
}

}  // namespace nofa
