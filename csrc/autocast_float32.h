// torch.autocast around kernels that compute in float32 / float64 only (docs/ops.md,
// "Autocast"). Without a kernel for an Autocast key, the dispatcher falls through to the
// backend kernel with autocast still on, so the ATen calls *inside* the kernel get autocast
// too: deform_points' per-batch first-layer bias (at::addmm) came back in bfloat16 and the
// next product failed ("self and mat2 must have the same dtype"). These boxed kernels turn
// autocast off for the call (ExcludeDispatchKeyGuard) and, with kUpcast, first cast float16 /
// bfloat16 arguments (tensor lists too) to float32; the casts run above Autograd, so
// gradients reach half-precision inputs.
#pragma once
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

namespace nofa {

inline bool is_half_float(const at::Tensor& t) {
  return t.defined() && (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16);
}

// The op's arguments are the last schema().arguments().size() entries of the stack.
inline void upcast_half_arguments(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  auto& s = *stack;
  const size_t n = op.schema().arguments().size();
  for (size_t i = s.size() - n; i < s.size(); ++i) {
    c10::IValue& v = s[i];
    if (v.isTensor()) {
      const at::Tensor t = v.toTensor();
      if (is_half_float(t)) v = t.to(at::kFloat);
    } else if (v.isTensorList()) {
      // A new list: the caller's may be shared.
      const auto in = v.toTensorList();
      bool any = false;
      for (size_t j = 0; j < in.size(); ++j) any = any || is_half_float(in.get(j));
      if (!any) continue;
      c10::List<at::Tensor> out;
      out.reserve(in.size());
      for (size_t j = 0; j < in.size(); ++j) {
        const at::Tensor t = in.get(j);
        out.push_back(is_half_float(t) ? t.to(at::kFloat) : t);
      }
      v = out;
    }
  }
}

template <c10::DispatchKey K, bool kUpcast>
void autocast_float32_kernel(const c10::OperatorHandle& op, c10::DispatchKeySet,
                             torch::jit::Stack* stack) {
  if (kUpcast) upcast_half_arguments(op, stack);
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(K);
  op.callBoxed(stack);
}

// For m.impl(name, autocast_float32<c10::DispatchKey::AutocastCPU, true>()).
template <c10::DispatchKey K, bool kUpcast>
torch::CppFunction autocast_float32() {
  return torch::CppFunction::makeFromBoxedFunction<&autocast_float32_kernel<K, kUpcast>>();
}

}  // namespace nofa
