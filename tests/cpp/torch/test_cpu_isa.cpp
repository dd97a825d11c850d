// The CPU instruction-set layer through the dispatcher: forcing a tier, refusing bad names,
// and decode_triplane agreeing with itself on every tier this CPU supports (the Python
// tests compare each tier with the reference; this checks the C++ library on its own).
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cstdio>
#include <string>

namespace {

using Decode = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, double,
                                                  const at::Tensor&, const at::Tensor&,
                                                  const at::Tensor&, const at::Tensor&);

bool contains(const std::string& s, const std::string& what) {
  return s.find(what) != std::string::npos;
}

}  // namespace

int main() {
  auto& d = c10::Dispatcher::singleton();
  auto set = d.findSchemaOrThrow("nofa::set_cpu_isa", "").typed<std::string(c10::string_view)>();
  auto info = d.findSchemaOrThrow("nofa::cpu_isa_info", "").typed<std::string()>();
  auto decode = d.findSchemaOrThrow("nofa::decode_triplane", "").typed<Decode>();

  const std::string i0 = info.call();
  std::printf("%s\n", i0.c_str());
  const char* tiers[] = {"scalar", "avx2", "avx512"};
  int supported = 1;
  if (contains(i0, "\"detected\": \"avx2\"")) supported = 2;
  if (contains(i0, "\"detected\": \"avx512\"")) supported = 3;

  at::manual_seed(0);
  const int64_t C = 32, Hd = 64, F = 32;
  auto planes =
      at::randn({1, 3, C, 16, 16}).permute({0, 1, 3, 4, 2}).contiguous().permute({0, 1, 4, 2, 3});
  auto pts = at::rand({1, 517, 3}) * 2 - 1;
  auto w0 = at::randn({Hd, C}) * 0.3, b0 = at::randn({Hd}), w1 = at::randn({1 + F, Hd}) * 0.3,
       b1 = at::randn({1 + F});
  at::Tensor ref;
  for (int t = 0; t < supported; ++t) {
    set.call(tiers[t]);
    const std::string now = info.call();
    if (!contains(now, std::string("\"active\": \"") + tiers[t] + "\"") ||
        !contains(now, std::string("\"decode_triplane_forward\": {\"best\": \"") +
                           tiers[supported - 1] + "\", \"path\": \"" + tiers[t] + "\"")) {
      std::printf("forcing %s is not reported: %s\n", tiers[t], now.c_str());
      return 1;
    }
    auto [dens, feats] = decode.call(planes, pts, 1.0, w0, b0, w1, b1);
    auto out = at::cat({dens, feats}, -1);
    if (!ref.defined()) {
      ref = out;
      continue;
    }
    const double err = ((out - ref).abs().max() / ref.abs().max()).item<double>();
    std::printf("%s vs scalar: max relative error %g\n", tiers[t], err);
    if (!(err < 1e-5)) return 1;
  }
  set.call("auto");
  bool threw = false;
  try {
    set.call("sse9");
  } catch (const c10::Error& e) {
    threw = contains(e.what(), "isa must be one of");
  }
  if (!threw) {
    std::printf("an unknown tier was not refused\n");
    return 1;
  }
  std::printf("all checks passed\n");
  return 0;
}
