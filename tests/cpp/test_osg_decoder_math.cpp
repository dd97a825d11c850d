// The OSG decoder activations in csrc/common/osg_decoder.h: values match the closed forms
// PyTorch uses, derivatives match central differences, the threshold branch is exact.
#include <cmath>

#include "../../tests/cpp/check.h"
#include "common/osg_decoder.h"

int main() {
  for (double z = -30.0; z <= 30.0; z += 0.37) {
    double g, gp, gm;
    const double sp = nofa::softplus(z, g);
    const double want = z > 20.0 ? z : std::log1p(std::exp(z));
    CHECK(std::fabs(sp - want) <= 1e-12 * (1.0 + std::fabs(want)));
    const double h = 1e-6;
    if (std::fabs(z - 20.0) > 2 * h) {
      const double fd = (nofa::softplus(z + h, gp) - nofa::softplus(z - h, gm)) / (2 * h);
      CHECK(std::fabs(g - fd) <= 1e-6);
    }
    double gf;
    const double feat = nofa::osg_feature(z, gf);
    const double s = 1.0 / (1.0 + std::exp(-z));
    CHECK(std::fabs(feat - (s * 1.002 - 0.001)) <= 1e-12);
    const double fd = (nofa::osg_feature(z + h, gp) - nofa::osg_feature(z - h, gm)) / (2 * h);
    CHECK(std::fabs(gf - fd) <= 1e-6);
  }
  // EG3D's widening makes 0 and 1 reachable.
  double g;
  CHECK(nofa::osg_feature(-40.0, g) < 0.0 && nofa::osg_feature(40.0, g) > 1.0);
  TEST_MAIN_END();
}
