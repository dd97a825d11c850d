// sample_triplane's CUDA entry points, for the other CUDA glue (decode_triplane's backward)
// to call directly rather than through the dispatcher (whose Autograd key would run the
// Python autograd registration on every call).
#pragma once
#include <ATen/ATen.h>
#include <c10/util/string_view.h>

#include <tuple>

namespace nofa {

at::Tensor sample_triplane_cuda(const at::Tensor& planes, const at::Tensor& points, double box_warp,
                                c10::string_view reduce);

std::tuple<at::Tensor, at::Tensor> sample_triplane_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& planes, const at::Tensor& points, double box_warp,
    c10::string_view reduce, bool planes_grad, bool points_grad);

// The same after check_sample_triplane (reduce: 0 mean, 1 concat).
std::tuple<at::Tensor, at::Tensor> sample_triplane_backward_cuda_checked(
    const at::Tensor& grad_out, const at::Tensor& planes, const at::Tensor& points, double box_warp,
    int reduce, bool planes_grad, bool points_grad);

}  // namespace nofa
