// SPDX-License-Identifier: Apache-2.0
// Tests the fused optimizers (optim/optim.h) against the float64 reference (optim/reference.h)
// over many steps and every option combination, against values worked by hand, for bitwise
// independence from alignment and checkpoint copies, and for their argument checks.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "optim/optim.h"
#include "optim/reference.h"
#include "test/harness.h"

using namespace nodeccl;
using namespace nodeccl::optim;

namespace {

// ---- a fused run beside the reference ---------------------------------------------------------

// Tensor sizes of every fused call: empty, one element, a short tail, sizes that are not a
// multiple of any vector width, and one large enough to run the vector body for a while.
const std::vector<size_t> kSizes = {0, 1, 3, 17, 1000, 4099};

// One fused call over the tensors in `list`, with up to three state arrays per tensor.
using FusedFn = std::function<void(const ParamList&, float* const* const* states)>;

// Float32 tensors with three state arrays each (zeros), plus their float64 twins.
template <typename RefState>
struct Run {
  std::vector<std::vector<float>> params, grads, state[3];
  std::vector<double> steps;
  std::vector<std::vector<double>> refParams;
  std::vector<RefState> refStates;

  explicit Run(std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    size_t n = kSizes.size();
    params.resize(n), grads.resize(n), steps.assign(n, 0), refParams.resize(n);
    refStates.resize(n);
    for (size_t i = 0; i < n; ++i) {
      for (auto& s : state) s.resize(n), s[i].assign(kSizes[i], 0.0f);
      params[i].resize(kSizes[i]);
      grads[i].resize(kSizes[i]);
      for (float& x : params[i]) x = u(rng);
      refParams[i].assign(params[i].begin(), params[i].end());
    }
  }

  // One fused step over the tensors in `active`, with fresh gradients of scale `scale`.
  void fusedStep(const std::vector<size_t>& active, std::mt19937& rng, float scale,
                 const FusedFn& fused) {
    std::normal_distribution<float> normal(0.0f, scale);
    std::vector<float*> p, st[3];
    std::vector<const float*> g;
    std::vector<size_t> sizes;
    std::vector<double> stepsNow;
    for (size_t i : active) {
      for (float& x : grads[i]) x = normal(rng);
      p.push_back(params[i].data());
      g.push_back(grads[i].data());
      for (int k = 0; k < 3; ++k) st[k].push_back(state[k][i].data());
      sizes.push_back(kSizes[i]);
      stepsNow.push_back(steps[i]);
    }
    ParamList list{active.size(), p.data(), g.data(), sizes.data(), stepsNow.data()};
    float* const* states[3] = {st[0].data(), st[1].data(), st[2].data()};
    fused(list, states);
    for (size_t k = 0; k < active.size(); ++k) steps[active[k]] = stepsNow[k];
  }

  // Largest |fused - reference| / (1 + |reference|) over every element.
  double maxError() const {
    double worst = 0;
    for (size_t i = 0; i < params.size(); ++i) {
      for (size_t j = 0; j < params[i].size(); ++j) {
        double r = refParams[i][j];
        double e = std::fabs(params[i][j] - r) / (1 + std::fabs(r));
        worst = std::isnan(e) ? INFINITY : std::max(worst, e);
      }
    }
    return worst;
  }
};

// The seed of the random inputs: fresh for every run of the binary (so that runs explore
// different inputs), printed once, and repeatable with NODECCL_TEST_SEED=<seed>.
uint32_t testSeed() {
  static const uint32_t seed = [] {
    const char* v = std::getenv("NODECCL_TEST_SEED");
    uint32_t s = v != nullptr && *v != '\0' ? uint32_t(std::strtoul(v, nullptr, 10))
                                            : std::random_device{}();
    std::printf("optim: random inputs from seed %u (NODECCL_TEST_SEED=%u repeats them)\n", s, s);
    return s;
  }();
  return seed;
}

// Runs `numSteps` steps of the fused optimizer and of the reference. Tensor 2 sits out every
// third step, so step counts differ between tensors. Returns the largest scaled error.
template <typename RefState, typename RefFn>
double compareWithReference(const FusedFn& fused, RefFn ref, int numSteps, float scale) {
  std::mt19937 rng(testSeed());
  Run<RefState> run(rng);
  for (int step = 0; step < numSteps; ++step) {
    std::vector<size_t> active;
    for (size_t i = 0; i < kSizes.size(); ++i) {
      if (!(i == 2 && step % 3 == 1)) active.push_back(i);
    }
    run.fusedStep(active, rng, scale, fused);
    for (size_t i : active) {
      std::vector<double> g(run.grads[i].begin(), run.grads[i].end());
      ref(run.refParams[i], g, run.refStates[i]);
    }
  }
  for (size_t i = 0; i < kSizes.size(); ++i) EXPECT_EQ(run.steps[i], run.refStates[i].step);
  return run.maxError();
}

// Float32 rounding of each update compounds over the steps; 40 steps of updates of order lr
// with relative rounding near 1e-7 stay far below this bound, while any formula slip (a wrong
// coefficient, a missed bias correction) moves parameters by orders of magnitude more.
constexpr double kTolerance = 5e-6;
constexpr int kSteps = 40;

// ---- helpers for hand-worked values -------------------------------------------------------

// One fused call on a single tensor of `p.size()` elements with `step` steps behind it.
struct One {
  std::vector<float> p, g, s0, s1, s2;
  double step = 0;
  One(std::vector<float> params) : p(std::move(params)) {
    s0.assign(p.size(), 0.0f), s1.assign(p.size(), 0.0f), s2.assign(p.size(), 0.0f);
  }
  ParamList list(const std::vector<float>& grads) {
    g = grads;
    pp = p.data(), gp = g.data(), n = p.size();
    b0 = s0.data(), b1 = s1.data(), b2 = s2.data();
    return ParamList{1, &pp, &gp, &n, &step};
  }
  float* pp;
  const float* gp;
  size_t n;
  float *b0, *b1, *b2;
};

uint32_t bitsOf(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

}  // namespace

// ---- against the float64 reference --------------------------------------------------------------

NODECCL_TEST(optim_sgd_matches_reference) {
  for (double momentum : {0.0, 0.9}) {
    for (double dampening : {0.0, 0.25}) {
      for (bool nesterov : {false, true}) {
        if (nesterov && (momentum == 0 || dampening != 0)) continue;
        for (double wd : {0.0, 1e-2}) {
          SgdOptions o;
          o.lr = 0.05, o.momentum = momentum, o.dampening = dampening, o.nesterov = nesterov;
          o.weightDecay = wd;
          auto fused = [&](const ParamList& l, float* const* const* st) {
            sgdStep(o, l, st[0]);
          };
          auto ref = [&](std::vector<double>& p, const std::vector<double>& g,
                         reference::SgdState& s) { reference::sgdStep(o, p, g, s); };
          double err = compareWithReference<reference::SgdState>(fused, ref, kSteps, 1.0f);
          EXPECT_TRUE(err <= kTolerance);
          if (err > kTolerance) {
            EXPECT_EQ(std::string("momentum dampening nesterov wd"),
                      std::to_string(momentum) + " " + std::to_string(dampening) + " " +
                          std::to_string(nesterov) + " " + std::to_string(wd));
          }
        }
      }
    }
  }
}

NODECCL_TEST(optim_rmsprop_matches_reference) {
  for (double alpha : {0.99, 0.5}) {
    for (double momentum : {0.0, 0.9}) {
      for (bool centered : {false, true}) {
        for (double wd : {0.0, 1e-2}) {
          RmspropOptions o;
          o.lr = 1e-3, o.alpha = alpha, o.momentum = momentum, o.centered = centered;
          o.weightDecay = wd;
          auto fused = [&](const ParamList& l, float* const* const* st) {
            rmspropStep(o, l, st[0], st[1], st[2]);
          };
          auto ref = [&](std::vector<double>& p, const std::vector<double>& g,
                         reference::RmspropState& s) { reference::rmspropStep(o, p, g, s); };
          double err = compareWithReference<reference::RmspropState>(fused, ref, kSteps, 1.0f);
          EXPECT_TRUE(err <= kTolerance);
          if (err > kTolerance) {
            EXPECT_EQ(std::string("alpha momentum centered wd"),
                      std::to_string(alpha) + " " + std::to_string(momentum) + " " +
                          std::to_string(centered) + " " + std::to_string(wd));
          }
        }
      }
    }
  }
}

NODECCL_TEST(optim_adam_matches_reference) {
  for (bool decoupled : {false, true}) {
    for (bool amsgrad : {false, true}) {
      for (bool biasCorrection : {true, false}) {
        for (double wd : {0.0, 0.1}) {
          for (double eps : {1e-8, 1e-3}) {
            AdamOptions o;
            o.lr = 1e-3, o.decoupled = decoupled, o.amsgrad = amsgrad;
            o.biasCorrection = biasCorrection, o.weightDecay = wd, o.eps = eps;
            auto fused = [&](const ParamList& l, float* const* const* st) {
              adamStep(o, l, st[0], st[1], st[2]);
            };
            auto ref = [&](std::vector<double>& p, const std::vector<double>& g,
                           reference::AdamState& s) { reference::adamStep(o, p, g, s); };
            // Small gradients, so that eps matters and AMSGrad's maximum changes hands.
            double err = compareWithReference<reference::AdamState>(fused, ref, kSteps, 1e-2f);
            EXPECT_TRUE(err <= kTolerance);
            if (err > kTolerance) {
              EXPECT_EQ(std::string("decoupled amsgrad biasCorrection wd eps"),
                        std::to_string(decoupled) + " " + std::to_string(amsgrad) + " " +
                            std::to_string(biasCorrection) + " " + std::to_string(wd) + " " +
                            std::to_string(eps));
            }
          }
        }
      }
    }
  }
}

// Subnormal parameters and gradients (below 2^-126, where float32 keeps fewer digits): no
// kernel may flush them to zero (FTZ/DAZ), so every element stays within float32's own
// rounding of the float64 reference. In the subnormal range that rounding is absolute: each
// operation is off by at most 2^-150, and a division by (sqrt(v) + eps) magnifies that by
// up to 1/eps (Adam and RMSprop scale a subnormal numerator first, then divide). The bound
// allows 2^-148 per step, times `amplify`, plus 1e-6 relative once values are normal; a
// flushed input misses it by orders of magnitude (the whole update is lost).
NODECCL_TEST(optim_subnormal_inputs_match_reference) {
  const size_t n = 1003;
  const int kSubnormalSteps = 5;
  std::mt19937 rng(testSeed());
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  auto subnormals = [&] {
    std::vector<float> v(n);
    for (float& x : v) x = u(rng) * 1e-39f;  // |x| < 1.2e-38, the smallest normal float
    return v;
  };
  auto check = [&](const char* name, double amplify, auto fusedStep, auto refStep,
                   auto refState) {
    One one(subnormals());
    std::vector<double> ref(one.p.begin(), one.p.end());
    double worst = 0;
    for (int step = 1; step <= kSubnormalSteps; ++step) {
      std::vector<float> g = subnormals();
      fusedStep(one, one.list(g));
      refStep(ref, std::vector<double>(g.begin(), g.end()), refState);
      const double absBound = step * std::ldexp(1.0, -148) * amplify;
      for (size_t i = 0; i < n; ++i) {
        double e = std::fabs(double(one.p[i]) - ref[i]) / (absBound + 1e-6 * std::fabs(ref[i]));
        worst = std::max(worst, e);
      }
    }
    EXPECT_TRUE(worst <= 1.0);
    if (worst > 1.0) {
      EXPECT_EQ(std::string(name), std::string("scaled error ") + std::to_string(worst));
    }
  };
  SgdOptions so;
  so.lr = 0.5, so.momentum = 0.9;
  check("sgd", 1.0, [&](One& o, const ParamList& l) { sgdStep(so, l, &o.b0); },
        [&](std::vector<double>& p, const std::vector<double>& g, reference::SgdState& s) {
          reference::sgdStep(so, p, g, s);
        }, reference::SgdState());
  RmspropOptions ro;
  ro.lr = 1e-3;
  check("rmsprop", 1.0 / ro.eps,
        [&](One& o, const ParamList& l) { rmspropStep(ro, l, &o.b0, &o.b1, &o.b2); },
        [&](std::vector<double>& p, const std::vector<double>& g, reference::RmspropState& s) {
          reference::rmspropStep(ro, p, g, s);
        }, reference::RmspropState());
  AdamOptions ao;
  ao.lr = 1e-3;
  check("adam", 1.0 / ao.eps,
        [&](One& o, const ParamList& l) { adamStep(ao, l, &o.b0, &o.b1, &o.b2); },
        [&](std::vector<double>& p, const std::vector<double>& g, reference::AdamState& s) {
          reference::adamStep(ao, p, g, s);
        }, reference::AdamState());
}

// Tensors that enter with different step counts get their own bias corrections.
NODECCL_TEST(optim_adam_step_count_per_tensor) {
  AdamOptions o;
  o.lr = 0.01;
  std::vector<float> a = {0.5f, -1.0f}, b = {0.5f, -1.0f};
  std::vector<float> ga = {0.25f, 0.125f}, gb = ga;
  std::vector<float> ma(2, 0.1f), va(2, 0.02f), mb = ma, vb = va;
  float* p[] = {a.data(), b.data()};
  const float* g[] = {ga.data(), gb.data()};
  float* m[] = {ma.data(), mb.data()};
  float* v[] = {va.data(), vb.data()};
  size_t sizes[] = {2, 2};
  double steps[] = {3, 100};
  adamStep(o, ParamList{2, p, g, sizes, steps}, m, v, nullptr);
  EXPECT_EQ(steps[0], 4.0);
  EXPECT_EQ(steps[1], 101.0);

  // The same state and gradient give different updates at t = 4 and t = 101.
  for (int k = 0; k < 2; ++k) {
    reference::AdamState s;
    s.step = k == 0 ? 3 : 100;
    s.expAvg.assign(2, double(0.1f)), s.expAvgSq.assign(2, double(0.02f));
    std::vector<double> ref = {0.5, -1.0}, grad = {0.25, 0.125};
    reference::adamStep(o, ref, grad, s);
    for (int j = 0; j < 2; ++j) EXPECT_NEAR(p[k][j], ref[j], 1e-6);
  }
  EXPECT_TRUE(a[0] != b[0]);
}

// ---- values worked by hand ------------------------------------------------------------------

// Adam's first step with a large eps. m = (1-b1) g and v = (1-b2) g^2, so the bias-corrected
// m^ = g and v^ = g^2, and the update is lr * g / (|g| + eps), whatever the betas:
//   lr 0.1, eps 1, p 1, g 3:    p = 1 - 0.1 * 3 / (3 + 1)      = 0.925
//   lr 0.1, eps 1, p 1, g -0.5: p = 1 + 0.1 * 0.5 / (0.5 + 1)  = 1.0333...
NODECCL_TEST(optim_hand_adam_first_step_large_eps) {
  AdamOptions o;
  o.lr = 0.1, o.eps = 1.0;
  One t({1.0f, 1.0f});
  adamStep(o, t.list({3.0f, -0.5f}), &t.b0, &t.b1, nullptr);
  EXPECT_NEAR(t.p[0], 0.925, 1e-6);
  EXPECT_NEAR(t.p[1], 1.0 + 0.05 / 1.5, 1e-6);
  EXPECT_NEAR(t.s0[0], 0.1 * 3.0, 1e-6);         // m = (1 - 0.9) * 3
  EXPECT_NEAR(t.s1[0], 0.001 * 9.0, 1e-9);       // v = (1 - 0.999) * 9
  EXPECT_EQ(t.step, 1.0);

  // Without bias correction the same step is lr * (1-b1) g / (sqrt(1-b2) |g| + eps):
  //   0.1 * 0.3 / (0.0316228 * 3 + 1) = 0.03 / 1.0948683 = 0.0274005, so p = 0.9725995.
  o.biasCorrection = false;
  One u({1.0f});
  adamStep(o, u.list({3.0f}), &u.b0, &u.b1, nullptr);
  EXPECT_NEAR(u.p[0], 1.0 - 0.03 / (std::sqrt(0.001) * 3 + 1), 1e-6);
  EXPECT_NEAR(u.p[0], 0.9725995, 1e-6);
}

// Adam's L2 decay and AdamW's decoupled decay, first step, lr 0.1, wd 0.5, eps 1, p 2, g 0.5:
//   Adam:  g' = 0.5 + 0.5 * 2 = 1.5;  p = 2 - 0.1 * 1.5 / (1.5 + 1)        = 1.94
//   AdamW: p = 2 * (1 - 0.1 * 0.5) = 1.9;  p = 1.9 - 0.1 * 0.5 / (0.5 + 1) = 1.8666...
NODECCL_TEST(optim_hand_adamw_vs_adam_decay) {
  AdamOptions adam;
  adam.lr = 0.1, adam.eps = 1.0, adam.weightDecay = 0.5;
  AdamOptions adamw = adam;
  adamw.decoupled = true;

  One a({2.0f}), w({2.0f});
  adamStep(adam, a.list({0.5f}), &a.b0, &a.b1, nullptr);
  adamStep(adamw, w.list({0.5f}), &w.b0, &w.b1, nullptr);
  EXPECT_NEAR(a.p[0], 1.94, 1e-6);
  EXPECT_NEAR(w.p[0], 1.9 - 0.1 / 3.0, 1e-6);
  EXPECT_NEAR(a.p[0] - w.p[0], 0.04 + 0.1 / 3.0, 1e-6);  // 0.0733...
}

// AMSGrad, lr 1, b1 = b2 = 0.5, eps 0, p 0, gradients 2 then 0.
//   step 1: m = 1, v = 2, m^ = 1 / 0.5 = 2, v^ = 2 / 0.5 = 4: p = 0 - 2 / 2 = -1 (both)
//   step 2: m = 0.5, v = 1, vmax = 2; bias corrections 1 - 0.25 = 0.75:
//     Adam:    (0.5 / 0.75) / sqrt(1 / 0.75) = (2/3) * sqrt(0.75) = 1 / sqrt(3) = 0.57735
//     AMSGrad: (0.5 / 0.75) / sqrt(2 / 0.75) = 1 / sqrt(6)                      = 0.40825
NODECCL_TEST(optim_hand_amsgrad_second_step) {
  AdamOptions o;
  o.lr = 1, o.beta1 = 0.5, o.beta2 = 0.5, o.eps = 0;
  for (bool amsgrad : {false, true}) {
    o.amsgrad = amsgrad;
    One t({0.0f});
    adamStep(o, t.list({2.0f}), &t.b0, &t.b1, &t.b2);
    EXPECT_NEAR(t.p[0], -1.0, 1e-6);
    adamStep(o, t.list({0.0f}), &t.b0, &t.b1, &t.b2);
    double expected = -1.0 - (amsgrad ? 1 / std::sqrt(6.0) : 1 / std::sqrt(3.0));
    EXPECT_NEAR(t.p[0], expected, 1e-6);
    if (amsgrad) EXPECT_NEAR(t.s2[0], 2.0, 1e-7);
  }
}

// SGD with Nesterov momentum, lr 0.1, momentum 0.9, p 1, gradients 1 then 0.5:
//   step 1: b = g = 1;                 d = 1 + 0.9 * 1     = 1.9;  p = 1 - 0.19     = 0.81
//   step 2: b = 0.9 * 1 + 0.5 = 1.4;   d = 0.5 + 0.9 * 1.4 = 1.76; p = 0.81 - 0.176 = 0.634
// Plain momentum takes d = b instead: p = 1 - 0.1 = 0.9, then 0.9 - 0.14 = 0.76.
NODECCL_TEST(optim_hand_sgd_nesterov_two_steps) {
  SgdOptions o;
  o.lr = 0.1, o.momentum = 0.9, o.nesterov = true;
  One t({1.0f});
  sgdStep(o, t.list({1.0f}), &t.b0);
  EXPECT_NEAR(t.p[0], 0.81, 1e-6);
  sgdStep(o, t.list({0.5f}), &t.b0);
  EXPECT_NEAR(t.s0[0], 1.4, 1e-6);
  EXPECT_NEAR(t.p[0], 0.634, 1e-6);

  o.nesterov = false;
  One u({1.0f});
  sgdStep(o, u.list({1.0f}), &u.b0);
  sgdStep(o, u.list({0.5f}), &u.b0);
  EXPECT_NEAR(u.p[0], 0.76, 1e-6);

  // Dampening 0.5 applies from the second step only: b = 0.9 * 1 + 0.5 * 0.5 = 1.15,
  // p = 0.9 - 0.115 = 0.785.
  o.dampening = 0.5;
  One d({1.0f});
  sgdStep(o, d.list({1.0f}), &d.b0);
  sgdStep(o, d.list({0.5f}), &d.b0);
  EXPECT_NEAR(d.p[0], 0.785, 1e-6);
}

// RMSprop's first step, lr 0.01, alpha 0.99, p 1, g 2 (eps 1e-8 is negligible here):
//   plain:    sq = 0.01 * 4 = 0.04, avg = 0.2;             p = 1 - 0.01 * 2 / 0.2 = 0.9
//   centered: ga = 0.01 * 2 = 0.02, avg = sqrt(0.04 - 0.0004) = 0.1989975;
//             p = 1 - 0.02 / 0.1989975 = 0.8994962
NODECCL_TEST(optim_hand_rmsprop_first_step) {
  RmspropOptions o;
  One t({1.0f});
  rmspropStep(o, t.list({2.0f}), &t.b0, nullptr, nullptr);
  EXPECT_NEAR(t.s0[0], 0.04, 1e-8);
  EXPECT_NEAR(t.p[0], 0.9, 1e-6);

  o.centered = true;
  One c({1.0f});
  rmspropStep(o, c.list({2.0f}), &c.b0, nullptr, &c.b2);
  EXPECT_NEAR(c.s2[0], 0.02, 1e-8);
  EXPECT_NEAR(c.p[0], 1.0 - 0.02 / std::sqrt(0.0396), 1e-6);
  EXPECT_NEAR(c.p[0], 0.8994962, 1e-6);
}

// ---- bitwise properties ---------------------------------------------------------------------

// Every option combination gives the same bits whatever the arrays' alignment (the vector body
// and the scalar remainder cover different elements at each offset).
NODECCL_TEST(optim_bitwise_independent_of_alignment) {
  const size_t n = 203;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> p0(n), g0(n);
  for (size_t i = 0; i < n; ++i) p0[i] = normal(rng), g0[i] = normal(rng);

  // Three steps of `fn` on copies placed at `offset` floats past a 64-byte boundary.
  auto run = [&](size_t offset, const std::function<void(One&)>& fn) {
    alignas(64) static float arena[5][256 + 16];
    float* a[5];
    for (int k = 0; k < 5; ++k) a[k] = arena[k] + offset;
    std::copy(p0.begin(), p0.end(), a[0]);
    for (int k = 2; k < 5; ++k) std::fill(a[k], a[k] + n, 0.0f);
    One t(p0);
    t.list(g0);
    t.pp = a[0], t.b0 = a[2], t.b1 = a[3], t.b2 = a[4];
    std::copy(g0.begin(), g0.end(), a[1]);
    t.gp = a[1];
    for (int s = 0; s < 3; ++s) fn(t);
    return std::vector<float>(a[0], a[0] + n);
  };

  std::vector<std::function<void(One&)>> cases;
  SgdOptions sgd;
  sgd.momentum = 0.9, sgd.nesterov = true, sgd.weightDecay = 0.01;
  cases.push_back([=](One& t) { sgdStep(sgd, {1, &t.pp, &t.gp, &t.n, &t.step}, &t.b0); });
  RmspropOptions rms;
  rms.momentum = 0.5, rms.centered = true, rms.weightDecay = 0.01;
  cases.push_back([=](One& t) {
    rmspropStep(rms, {1, &t.pp, &t.gp, &t.n, &t.step}, &t.b0, &t.b1, &t.b2);
  });
  for (bool decoupled : {false, true}) {
    AdamOptions adam;
    adam.amsgrad = true, adam.decoupled = decoupled, adam.weightDecay = 0.1;
    cases.push_back([=](One& t) {
      adamStep(adam, {1, &t.pp, &t.gp, &t.n, &t.step}, &t.b0, &t.b1, &t.b2);
    });
  }

  for (size_t c = 0; c < cases.size(); ++c) {
    std::vector<float> base = run(0, cases[c]);
    for (size_t offset = 1; offset < 16; ++offset) {
      std::vector<float> moved = run(offset, cases[c]);
      size_t diffs = 0;
      for (size_t i = 0; i < n; ++i) diffs += bitsOf(base[i]) != bitsOf(moved[i]);
      EXPECT_EQ(diffs, size_t(0));
    }
  }
}

// Copying parameters, state and step counts mid-run and continuing from the copies gives
// exactly the bits of the uninterrupted run.
NODECCL_TEST(optim_bitwise_checkpoint_continuation) {
  AdamOptions o;
  o.amsgrad = true, o.decoupled = true;
  std::mt19937 rng(99);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> grad(1001);
  One a(std::vector<float>(1001, 0.5f));
  for (int s = 0; s < 5; ++s) {
    for (float& x : grad) x = normal(rng);
    adamStep(o, a.list(grad), &a.b0, &a.b1, &a.b2);
  }
  One b(a.p);
  b.s0 = a.s0, b.s1 = a.s1, b.s2 = a.s2, b.step = a.step;
  for (int s = 0; s < 5; ++s) {
    for (float& x : grad) x = normal(rng);
    adamStep(o, a.list(grad), &a.b0, &a.b1, &a.b2);
    adamStep(o, b.list(grad), &b.b0, &b.b1, &b.b2);
  }
  EXPECT_EQ(std::memcmp(a.p.data(), b.p.data(), a.p.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(a.s2.data(), b.s2.data(), a.s2.size() * sizeof(float)), 0);
  EXPECT_EQ(a.step, 10.0);
}

// ---- argument checks -------------------------------------------------------------------------

NODECCL_TEST(optim_rejects_bad_hyperparameters) {
  // (named `code`: harness.h's EXPECT_THROWS_CODE also pastes its argument into `e_.code()`)
  const auto code = ErrorCode::kInvalidArgument;
  auto sgd = [](auto edit) { SgdOptions o; edit(o); validate(o); };
  EXPECT_THROWS_CODE(sgd([](SgdOptions& o) { o.lr = -1; }), code, "SGD: lr must be");
  EXPECT_THROWS_CODE(sgd([](SgdOptions& o) { o.lr = NAN; }), code, "got nan");
  EXPECT_THROWS_CODE(sgd([](SgdOptions& o) { o.momentum = -0.5; }), code, "momentum");
  EXPECT_THROWS_CODE(sgd([](SgdOptions& o) { o.weightDecay = -1e-4; }), code,
                     "weightDecay must be");
  EXPECT_THROWS_CODE(sgd([](SgdOptions& o) { o.nesterov = true; }), code, "nesterov needs");
  EXPECT_THROWS_CODE(sgd([](SgdOptions& o) { o.nesterov = true, o.momentum = 0.9,
                                             o.dampening = 0.1; }),
                     code, "dampening 0.1");

  auto rms = [](auto edit) { RmspropOptions o; edit(o); validate(o); };
  EXPECT_THROWS_CODE(rms([](RmspropOptions& o) { o.alpha = -0.1; }), code, "alpha");
  EXPECT_THROWS_CODE(rms([](RmspropOptions& o) { o.eps = -1; }), code, "eps");
  EXPECT_THROWS_CODE(rms([](RmspropOptions& o) { o.momentum = INFINITY; }), code, "got inf");

  auto adam = [](auto edit) { AdamOptions o; edit(o); validate(o); };
  EXPECT_THROWS_CODE(adam([](AdamOptions& o) { o.beta1 = 1; }), code,
                     "Adam: betas[0] must be in [0, 1), got 1");
  EXPECT_THROWS_CODE(adam([](AdamOptions& o) { o.beta2 = -0.1; }), code, "betas[1]");
  EXPECT_THROWS_CODE(adam([](AdamOptions& o) { o.beta2 = NAN; }), code, "betas[1]");
  EXPECT_THROWS_CODE(adam([](AdamOptions& o) { o.decoupled = true, o.lr = -1; }), code,
                     "AdamW: lr");
  EXPECT_THROWS_CODE(adam([](AdamOptions& o) { o.weightDecay = -1; }), code, "weightDecay");

  // Defaults are valid, and AdamW's match torch.
  validate(SgdOptions()), validate(RmspropOptions()), validate(AdamOptions());
  EXPECT_EQ(adamwDefaults().weightDecay, 1e-2);
  EXPECT_TRUE(adamwDefaults().decoupled);
}

NODECCL_TEST(optim_rejects_bad_tensor_lists) {
  const auto code = ErrorCode::kInvalidArgument;  // see optim_rejects_bad_hyperparameters
  AdamOptions o;
  One t({1.0f, 2.0f});
  ParamList l = t.list({0.5f, 0.5f});

  // A failed call leaves the parameters and the step count alone.
  t.step = 1.5;
  EXPECT_THROWS_CODE(adamStep(o, l, &t.b0, &t.b1, nullptr), code, "steps[0] is 1.5");
  t.step = -1;
  EXPECT_THROWS_CODE(adamStep(o, l, &t.b0, &t.b1, nullptr), code, "steps[0] is -1");
  t.step = 0;
  EXPECT_THROWS_CODE(adamStep(o, l, &t.b0, nullptr, nullptr), code, "expAvgSqs is required");
  o.amsgrad = true;
  EXPECT_THROWS_CODE(adamStep(o, l, &t.b0, &t.b1, nullptr), code, "maxExpAvgSqs");
  float* none = nullptr;
  EXPECT_THROWS_CODE(adamStep(o, l, &t.b0, &t.b1, &none), code, "maxExpAvgSqs[0] is null");
  EXPECT_THROWS_CODE(adamStep(o, l, &t.b0, &t.b0, &t.b2), code,
                     "expAvgs[0] and expAvgSqs[0] share memory");
  float* inside = t.p.data() + 1;  // overlaps the parameter's second element
  EXPECT_THROWS_CODE(adamStep(o, l, &t.b0, &t.b1, &inside), code, "params[0] and maxExpAvgSqs[0]");
  EXPECT_EQ(t.p[0], 1.0f);
  EXPECT_EQ(t.step, 0.0);

  // Unused state may be null, and so may everything for an empty tensor or an empty list.
  SgdOptions sgd;
  sgdStep(sgd, l, nullptr);
  EXPECT_EQ(t.step, 1.0);
  size_t zero = 0;
  float* np = nullptr;
  const float* ng = nullptr;
  double s = 0;
  adamStep(o, ParamList{1, &np, &ng, &zero, &s}, &np, &np, &np);
  EXPECT_EQ(s, 1.0);
  adamStep(o, ParamList{}, nullptr, nullptr, nullptr);
  sgd.momentum = 0.9;
  EXPECT_THROWS_CODE(sgdStep(sgd, l, nullptr), code, "momentumBuffers is required");
}

// ---- Lion, LAMB, dispatch levels, clipping, NaN checks, threads, 8-bit Adam -------------------

#include "optim/simd.h"

NODECCL_TEST(optim_lion_matches_reference) {
  for (double wd : {0.0, 0.1}) {
    LionOptions o;
    o.lr = 1e-3, o.weightDecay = wd;
    auto fused = [&](const ParamList& l, float* const* const* st) { lionStep(o, l, st[0]); };
    auto ref = [&](std::vector<double>& p, const std::vector<double>& g,
                   reference::LionState& s) { reference::lionStep(o, p, g, s); };
    EXPECT_TRUE(compareWithReference<reference::LionState>(fused, ref, kSteps, 1.0f) <=
                kTolerance);
  }
}

NODECCL_TEST(optim_lamb_matches_reference) {
  for (double wd : {0.0, 0.01}) {
    for (bool bc : {true, false}) {
      LambOptions o;
      o.lr = 1e-3, o.weightDecay = wd, o.biasCorrection = bc;
      auto fused = [&](const ParamList& l, float* const* const* st) {
        lambStep(o, l, st[0], st[1]);
      };
      auto ref = [&](std::vector<double>& p, const std::vector<double>& g,
                     reference::LambState& s) { reference::lambStep(o, p, g, s); };
      EXPECT_TRUE(compareWithReference<reference::LambState>(fused, ref, kSteps, 1.0f) <=
                  kTolerance);
    }
  }
}

NODECCL_TEST(optim_lion_by_hand) {
  // p = 1, g = 0.5, m = 0, lr 0.1, betas (0.9, 0.99), wd 0.5:
  //   c = 0.1 * 0.5 = 0.05 > 0, p = 1 * (1 - 0.05) - 0.1 = 0.85, m = 0.01 * 0.5 = 0.005.
  // A gradient of 0 with m = 0 gives c = 0, sign 0: p only decays (2 * 0.95 = 1.9).
  LionOptions o;
  o.lr = 0.1, o.beta1 = 0.9, o.beta2 = 0.99, o.weightDecay = 0.5;
  One t({1.0f, 2.0f});
  ParamList l = t.list({0.5f, 0.0f});
  lionStep(o, l, &t.b0);
  EXPECT_NEAR(t.p[0], 0.85, 1e-7);
  EXPECT_NEAR(t.p[1], 1.9, 1e-7);
  EXPECT_NEAR(t.s0[0], 0.005, 1e-9);
  EXPECT_EQ(t.step, 1.0);
}

NODECCL_TEST(optim_lamb_by_hand) {
  // One element, first step, lr 0.1, no decay: m^ = g, v^ = g^2, u = g / (|g| + eps) ~ 1 for
  // g = 2; ||p|| = 3, ||u|| ~ 1, so r = 3 and p = 3 - 0.1 * 3 * 1 = 2.7.
  LambOptions o;
  o.lr = 0.1, o.eps = 0;
  One t({3.0f});
  ParamList l = t.list({2.0f});
  lambStep(o, l, &t.b0, &t.b1);
  EXPECT_NEAR(t.p[0], 2.7, 1e-6);
}

namespace {

// Every optimizer once over the same tensors; returns all parameter bits.
std::vector<uint32_t> runEveryOptimizer(const StepControl& c, size_t n) {
  std::mt19937 rng(99);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> p(n), g(n), s0(n, 0.0f), s1(n, 0.0f), s2(n, 0.0f);
  for (size_t i = 0; i < n; ++i) p[i] = normal(rng), g[i] = normal(rng);
  float* pp = p.data();
  const float* gp = g.data();
  float *b0 = s0.data(), *b1 = s1.data(), *b2 = s2.data();
  double step = 0;
  ParamList l{1, &pp, &gp, &n, &step};
  std::vector<uint32_t> bits;
  for (int round = 0; round < 2; ++round) {
    SgdOptions sgd;
    sgd.momentum = 0.9, sgd.weightDecay = 0.01, sgd.nesterov = true;
    sgdStep(sgd, l, &b0, c);
    RmspropOptions rms;
    rms.centered = true, rms.momentum = 0.5;
    rmspropStep(rms, l, &b0, &b1, &b2, c);
    AdamOptions adam = adamwDefaults();
    adam.amsgrad = true;
    adamStep(adam, l, &b0, &b1, &b2, c);
    AdamOptions adamL2;
    adamL2.weightDecay = 0.1;
    adamStep(adamL2, l, &b0, &b1, nullptr, c);
    lionStep(LionOptions(), l, &b0, c);
    lambStep(LambOptions(), l, &b0, &b1, c);
  }
  for (float x : p) bits.push_back(bitsOf(x));
  return bits;
}

}  // namespace

NODECCL_TEST(optim_isa_levels_give_identical_bits) {
  // The baseline, AVX2 and AVX-512 copies of every kernel (those this CPU has) must agree bit
  // for bit, including the scalar tails (n = 1037 is odd and not a multiple of any width).
  using simd::Isa;
  StepControl c;
  c.maxGradNorm = 10;
  simd::setIsaForTesting(true, Isa::kBaseline);
  std::vector<uint32_t> base = runEveryOptimizer(c, 1037);
  for (Isa level : {Isa::kAvx2, Isa::kAvx512}) {
    if (static_cast<int>(level) > static_cast<int>(simd::detectedIsa())) continue;
    simd::setIsaForTesting(true, level);
    EXPECT_TRUE(runEveryOptimizer(c, 1037) == base);
  }
  simd::setIsaForTesting(false, Isa::kBaseline);
}

NODECCL_TEST(optim_threads_give_identical_bits) {
  StepControl one, two;
  two.threads = 2;
  size_t n = (1 << 20) + 12345;  // above the 1 Mi threshold, chunks plus a ragged end
  EXPECT_TRUE(runEveryOptimizer(one, n) == runEveryOptimizer(two, n));
}

NODECCL_TEST(optim_clip_by_global_norm) {
  // Two tensors with gradients 3 and 4: global norm 5; clipping to 1 scales them by
  // 1 / (5 + 1e-6), so plain SGD with lr 1 from p = 0 gives -0.6 and -0.8.
  std::vector<float> p0 = {0.0f}, p1 = {0.0f}, g0 = {3.0f}, g1 = {4.0f};
  float* ps[2] = {p0.data(), p1.data()};
  const float* gs[2] = {g0.data(), g1.data()};
  size_t sizes[2] = {1, 1};
  double steps[2] = {0, 0};
  ParamList l{2, ps, gs, sizes, steps};
  SgdOptions o;
  o.lr = 1;
  StepControl c;
  c.maxGradNorm = 1;
  StepReport r = sgdStep(o, l, nullptr, c);
  EXPECT_NEAR(r.gradNorm, 5.0, 1e-12);
  EXPECT_NEAR(r.clipScale, 1.0 / (5.0 + 1e-6), 1e-12);
  EXPECT_NEAR(p0[0], -0.6, 1e-6);
  EXPECT_NEAR(p1[0], -0.8, 1e-6);

  // A norm below the limit leaves gradients alone (scale exactly 1).
  c.maxGradNorm = 100;
  r = sgdStep(o, l, nullptr, c);
  EXPECT_EQ(r.clipScale, 1.0);
  EXPECT_NEAR(p1[0], -4.8, 1e-6);
}

NODECCL_TEST(optim_skip_non_finite_reports_the_parameter) {
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    std::vector<float> p0(5, 1.0f), p1(7, 1.0f), g0(5, 0.5f), g1(7, 0.5f), m0(5), m1(7), v0(5),
        v1(7);
    g1[3] = bad;
    float* ps[2] = {p0.data(), p1.data()};
    const float* gs[2] = {g0.data(), g1.data()};
    float* ms[2] = {m0.data(), m1.data()};
    float* vs[2] = {v0.data(), v1.data()};
    size_t sizes[2] = {5, 7};
    double steps[2] = {4, 4};
    ParamList l{2, ps, gs, sizes, steps};
    StepControl c;
    c.skipNonFinite = true;
    StepReport r = adamStep(AdamOptions(), l, ms, vs, nullptr, c);
    EXPECT_TRUE(r.skipped);
    EXPECT_EQ(r.nonFiniteParam, 1);
    EXPECT_EQ(r.nonFiniteIndex, 3);
    EXPECT_EQ(steps[0], 4.0);
    EXPECT_EQ(p0[0], 1.0f);
    EXPECT_EQ(p1[6], 1.0f);
    EXPECT_EQ(m0[0], 0.0f);

    // Without skipping, the step runs and the report still names the parameter.
    c.skipNonFinite = false;
    c.maxGradNorm = 1;
    r = adamStep(AdamOptions(), l, ms, vs, nullptr, c);
    EXPECT_TRUE(!r.skipped);
    EXPECT_EQ(r.nonFiniteParam, 1);
    EXPECT_EQ(steps[0], 5.0);
  }
}

namespace {

struct State8 {
  std::vector<uint8_t> mc, vc;
  std::vector<float> ma, va;
  explicit State8(size_t n)
      : mc(n), vc(n), ma(adam8bitBlocks(n)), va(adam8bitBlocks(n)) {}
};

}  // namespace

NODECCL_TEST(optim_adam8bit_first_step_by_hand) {
  // First step from zero state: m = 0.1 g, v = 0.001 g^2, bias-corrected m^ = g and v^ = g^2,
  // so every element moves by lr * g / (|g| + eps) = lr * sign(g), up to the quantization of
  // m and v (|g| within a factor 10 of the block maximum: m to ~0.7%, v to ~1.5%).
  size_t n = 5000;  // two full blocks and a partial one
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0.1f, 1.0f);
  std::vector<float> p(n, 0.0f), g(n);
  for (size_t i = 0; i < n; ++i) g[i] = (i % 3 ? 1 : -1) * u(rng);
  State8 s(n);
  float* pp = p.data();
  const float* gp = g.data();
  double step = 0;
  ParamList l{1, &pp, &gp, &n, &step};
  uint8_t* mc = s.mc.data();
  uint8_t* vc = s.vc.data();
  float* ma = s.ma.data();
  float* va = s.va.data();
  AdamOptions o;
  o.lr = 0.01;
  adam8bitStep(o, l, Adam8bitState{&mc, &ma, &vc, &va});
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    double want = -0.01 * (g[i] > 0 ? 1 : -1);
    worst = std::max(worst, std::fabs(p[i] - want) / 0.01);
  }
  EXPECT_TRUE(worst < 0.03);
  EXPECT_EQ(step, 1.0);
  // The first block's scale is its largest |m| = 0.1 max |g|.
  float maxM = 0;
  for (size_t i = 0; i < 2048; ++i) maxM = std::max(maxM, std::fabs(0.1f * g[i]));
  EXPECT_NEAR(s.ma[0], maxM, 1e-7);
}

NODECCL_TEST(optim_adam8bit_tracks_32bit_adam) {
  // Minimizing sum (p - target)^2 / 2 for 200 steps: the 8-bit run ends within a few percent of
  // the 32-bit one (quantization noise, not a different algorithm), and both near the target.
  size_t n = 6000;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> target(n), p32(n, 0.0f), p8(n, 0.0f), g(n), m(n, 0.0f), v(n, 0.0f);
  for (float& x : target) x = normal(rng);
  State8 s(n);
  double step32 = 0, step8 = 0;
  AdamOptions o = adamwDefaults();
  o.lr = 0.05;
  for (int it = 0; it < 200; ++it) {
    for (int which = 0; which < 2; ++which) {
      std::vector<float>& p = which ? p8 : p32;
      for (size_t i = 0; i < n; ++i) g[i] = p[i] - target[i];
      float* pp = p.data();
      const float* gp = g.data();
      if (which == 0) {
        float *mp = m.data(), *vp = v.data();
        adamStep(o, ParamList{1, &pp, &gp, &n, &step32}, &mp, &vp, nullptr);
      } else {
        uint8_t *mc = s.mc.data(), *vc = s.vc.data();
        float *ma = s.ma.data(), *va = s.va.data();
        adam8bitStep(o, ParamList{1, &pp, &gp, &n, &step8}, Adam8bitState{&mc, &ma, &vc, &va});
      }
    }
  }
  double err32 = 0, err8 = 0, diff = 0;
  for (size_t i = 0; i < n; ++i) {
    err32 += std::pow(p32[i] - target[i], 2);
    err8 += std::pow(p8[i] - target[i], 2);
    diff += std::pow(p8[i] - p32[i], 2);
  }
  EXPECT_TRUE(std::sqrt(err8 / n) < 0.1);
  EXPECT_TRUE(std::sqrt(err32 / n) < 0.1);
  EXPECT_TRUE(std::sqrt(diff / n) < 0.1);
}

NODECCL_TEST(optim_adam8bit_rejects_amsgrad) {
  AdamOptions o;
  o.amsgrad = true;
  EXPECT_THROWS_CODE(adam8bitStep(o, ParamList{}, Adam8bitState{}), ErrorCode::kInvalidArgument,
                     "amsgrad");
}

namespace {

// p, codes and scales after a few 8-bit Adam steps on random gradients (the third step's
// gradients span 1e-18 to 1e18, so codes land at both ends of the maps), as one byte string.
std::vector<uint8_t> runAdam8bit(const AdamOptions& o, size_t n, bool nonFinite) {
  std::mt19937 rng(31);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> p(n), g(n);
  for (float& x : p) x = normal(rng);
  State8 s(n);
  double step = 0;
  for (int it = 0; it < 5; ++it) {
    for (size_t i = 0; i < n; ++i) {
      g[i] = normal(rng) * (it == 2 ? std::pow(10.0f, static_cast<float>(i % 37) - 18) : 1);
    }
    if (nonFinite && it == 3) g[n / 2] = INFINITY, g[n / 3] = NAN, g[n - 1] = 1e30f;
    float* pp = p.data();
    const float* gp = g.data();
    uint8_t *mc = s.mc.data(), *vc = s.vc.data();
    float *ma = s.ma.data(), *va = s.va.data();
    adam8bitStep(o, ParamList{1, &pp, &gp, &n, &step}, Adam8bitState{&mc, &ma, &vc, &va});
  }
  std::vector<uint8_t> out(s.mc);
  out.insert(out.end(), s.vc.begin(), s.vc.end());
  auto addFloats = [&](const std::vector<float>& f) {
    const uint8_t* b = reinterpret_cast<const uint8_t*>(f.data());
    out.insert(out.end(), b, b + 4 * f.size());
  };
  addFloats(p), addFloats(s.ma), addFloats(s.va);
  return out;
}

}  // namespace

NODECCL_TEST(optim_adam8bit_isa_levels_give_identical_bits) {
  // The gather-based AVX2/AVX-512 encoders (compact bucket table, clamped indices) against the
  // scalar lookup: same codes, scales and parameters, for Adam, Adam with L2 and AdamW, with
  // tails that are not a multiple of 8 or 16.
  using simd::Isa;
  AdamOptions l2;
  l2.weightDecay = 0.1;
  for (const AdamOptions& o : {AdamOptions(), l2, adamwDefaults()}) {
    for (size_t n : {size_t(1), size_t(23), size_t(5000 + 13)}) {
      simd::setIsaForTesting(true, Isa::kBaseline);
      std::vector<uint8_t> base = runAdam8bit(o, n, false);
      for (Isa level : {Isa::kAvx2, Isa::kAvx512}) {
        if (static_cast<int>(level) > static_cast<int>(simd::detectedIsa())) continue;
        simd::setIsaForTesting(true, level);
        EXPECT_TRUE(runAdam8bit(o, n, false) == base);
      }
      simd::setIsaForTesting(false, Isa::kBaseline);
    }
  }
}

NODECCL_TEST(optim_adam8bit_non_finite_gradients_give_nan_blocks) {
  // inf * 0 makes a negative NaN on x86; its code must come from inside the tables (the sign
  // bit is dropped before the lookup) and the blocks that saw it decode to NaN at every level.
  using simd::Isa;
  size_t n = 3 * kAdam8bitBlock + 5;
  for (Isa level : {Isa::kBaseline, Isa::kAvx2, Isa::kAvx512}) {
    if (static_cast<int>(level) > static_cast<int>(simd::detectedIsa())) continue;
    simd::setIsaForTesting(true, level);
    std::vector<uint8_t> out = runAdam8bit(AdamOptions(), n, true);
    const float* p = reinterpret_cast<const float*>(out.data() + 2 * n);
    EXPECT_TRUE(std::isnan(p[n / 2]));
    EXPECT_TRUE(std::isnan(p[n / 3]));
    EXPECT_TRUE(std::isfinite(p[0]));  // block 0 held no non-finite gradient
  }
  simd::setIsaForTesting(false, Isa::kBaseline);
}
