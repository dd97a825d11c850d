// The op library built by CMake registers nofa::sample_triplane for the CPU; call it
// through the dispatcher and compare with an independent evaluation at texel centres.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cstdio>

int main() {
  auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("nofa::sample_triplane", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double, c10::string_view)>();
  const int64_t C = 4, H = 6, W = 8;
  auto planes = at::randn({1, 3, C, H, W});
  // Point whose (x, y) hits texel (row 2, col 5) of plane 0 and whose z is outside the box,
  // so planes 1 and 2 read zeros; box_warp 2 makes world coordinates normalised ones.
  const double x = (2 * 5 + 1.0) / W - 1, y = (2 * 2 + 1.0) / H - 1, z = 5.0;
  auto points = at::tensor({x, y, z}, at::kFloat).reshape({1, 1, 3});
  auto out = op.call(planes, points, 2.0, "concat");
  auto want = at::cat({planes.index({0, 0, at::indexing::Slice(), 2, 5}), at::zeros({2 * C})});
  const double err = (out.reshape({-1}) - want).abs().max().item<double>();
  std::printf("max error %g\n", err);
  if (!(err < 1e-6)) return 1;
  bool threw = false;
  try {
    op.call(planes.index({at::indexing::Slice(), at::indexing::Slice(0, 2)}), points, 1.0, "mean");
  } catch (const c10::Error& e) {
    threw = std::string(e.what()).find("planes must hold 3 planes") != std::string::npos;
  }
  if (!threw) {
    std::printf("bad input did not raise the expected error\n");
    return 1;
  }
  std::printf("all checks passed\n");
  return 0;
}
