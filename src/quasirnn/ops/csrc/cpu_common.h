// Shared pieces of the C++ CPU kernels (pooling_cpu.cpp, sru_cpu.cpp): vectorisable exp,
// sigmoid and tanh, strided (T, B, H) views, the parallel walk over channel blocks, and the
// run-time-flag-to-template dispatch. Everything here is inline or a template, so each
// translation unit that includes it gets its own copy and the library links cleanly.

#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <type_traits>

namespace quasirnn_cpu {

constexpr int64_t kBlock = 256;  // channels per work item

// exp for float that the compiler vectorises: Cody-Waite range reduction and a degree-6
// polynomial (Cephes expf), relative error about 2e-7; inputs clamped to the finite range, so
// there is no special-case path. Double precision keeps the library exp.
inline float exp_(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
}

inline double exp_(double x) { return std::exp(x); }

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + exp_(-x));
}

// tanh through one exp (vectorised tanh costs about three exps).
// Absolute error is that of exp (a few ulp of 1); saturates correctly to +-1.
template <typename T>
inline T tanh_(T x) {
  return T(2) / (T(1) + exp_(T(-2) * x)) - T(1);
}

// A (T, B, H) operand with a contiguous last dimension.
template <typename T>
struct View {
  T* data = nullptr;
  int64_t st = 0, sb = 0;
  View() = default;
  explicit View(const at::Tensor& x) : data(x.data_ptr<T>()), st(x.stride(0)), sb(x.stride(1)) {}
  inline T* ptr(int64_t t, int64_t b) const { return data + t * st + b * sb; }
};

template <typename T>
View<T> view_or_null(const c10::optional<at::Tensor>& x) {
  return (x.has_value() && x->defined()) ? View<T>(*x) : View<T>();
}

// Work items are blocks of up to kBlock channels of one batch row: item w is row w / nblk,
// channels [h0, h0 + len). Items are spread over threads with at::parallel_for; each thread
// takes its items in groups of up to kGroup and runs the time loop outside the group, so every
// time step reads the group's rows as one nearly contiguous stretch of memory (a time-outer,
// item-inner order keeps the hardware prefetcher and the TLB happy; one item at a time over all
// of T would jump B x G x H elements per step).
constexpr int64_t kGroup = 16;  // items per group: the carried state is kGroup * kBlock values

struct Item {
  int64_t b, h0, len;
};

// Runs body(items, n) for groups of n <= kGroup items, in parallel over groups.
template <typename Body>
void for_each_group(int64_t T_, int64_t B, int64_t H, const Body& body) {
  const int64_t nblk = (H + kBlock - 1) / kBlock;
  const int64_t items = B * nblk;
  // Keep tiny problems on one thread: about 32k element-steps per task.
  const int64_t per_item = std::max<int64_t>(1, T_ * std::min(H, kBlock));
  const int64_t grain = std::max<int64_t>(1, 32768 / per_item);
  at::parallel_for(0, items, grain, [&](int64_t begin, int64_t end) {
    Item group[kGroup];
    for (int64_t g0 = begin; g0 < end; g0 += kGroup) {
      const int64_t n = std::min(kGroup, end - g0);
      for (int64_t k = 0; k < n; ++k) {
        const int64_t w = g0 + k;
        const int64_t h0 = (w % nblk) * kBlock;
        group[k] = {w / nblk, h0, std::min(kBlock, H - h0)};
      }
      body(group, n);
    }
  });
}

// The time loop every recurrence kernel shares. Each work item carries one value per channel
// (c_{t-1} going forward, dL/dc_t going backward) in a per-group buffer; it starts from
// init[b * H + h] (zeros when init is null), step(t, item, carry) advances item's channels one
// step, t = 0 .. T-1 (t = T-1 .. 0 when REVERSE), and the values left at the end go to
// final[b * H + h] when final is not null. `carry` points at the item's kBlock slots.
template <bool REVERSE, typename T, typename Step>
void scan(int64_t T_, int64_t B, int64_t H, const T* init, T* final, const Step& step) {
  for_each_group(T_, B, H, [&](const Item* items, int64_t n) {
    T carry[kGroup * kBlock];
    for (int64_t k = 0; k < n; ++k) {
      const auto [b, h0, len] = items[k];
      for (int64_t j = 0; j < len; ++j) carry[k * kBlock + j] = init ? init[b * H + h0 + j] : T(0);
    }
    for (int64_t s = 0; s < T_; ++s) {
      const int64_t t = REVERSE ? T_ - 1 - s : s;
      for (int64_t k = 0; k < n; ++k) step(t, items[k], carry + k * kBlock);
    }
    if (final) {
      for (int64_t k = 0; k < n; ++k) {
        const auto [b, h0, len] = items[k];
        for (int64_t j = 0; j < len; ++j) final[b * H + h0 + j] = carry[k * kBlock + j];
      }
    }
  });
}

// Turn run-time flags into compile-time ones: fn(std::bool_constant<b1>{}, std::bool_constant<b2>{}, ...).
// Each flag becomes a template argument so the inner loops carry no branches and vectorise.
template <typename Fn, typename... Done>
void dispatch_bools(Fn& fn, std::tuple<Done...> done) {
  std::apply([&](auto... d) { fn(d...); }, done);
}

template <typename Fn, typename... Done, typename... Rest>
void dispatch_bools(Fn& fn, std::tuple<Done...> done, bool flag, Rest... rest) {
  if (flag) {
    dispatch_bools(fn, std::tuple_cat(done, std::tuple<std::true_type>{}), rest...);
  } else {
    dispatch_bools(fn, std::tuple_cat(done, std::tuple<std::false_type>{}), rest...);
  }
}

inline bool present(const c10::optional<at::Tensor>& x) { return x.has_value() && x->defined(); }

inline void check_operand(const at::Tensor& x, const at::Tensor& like, const char* name) {
  TORCH_CHECK(x.dim() == 3 && x.size(0) == like.size(0) && x.size(1) == like.size(1) && x.size(2) == like.size(2),
              "quasirnn_cpu: ", name, " must have shape (T, B, H) = ", like.sizes(), ", got ", x.sizes());
  TORCH_CHECK(x.stride(2) == 1, "quasirnn_cpu: ", name, " must be contiguous in its last dimension");
  TORCH_CHECK(x.scalar_type() == like.scalar_type() && x.device().is_cpu(), "quasirnn_cpu: ", name,
              " must be a CPU tensor of dtype ", like.scalar_type());
}

}  // namespace quasirnn_cpu
