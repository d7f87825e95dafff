// QRNN pooling on the CPU: forward and backward recurrences (Bradbury et al. 2016, §2, eq. 3-5).
//
//   c_t = f_t * c_{t-1} + (1 - f_t) * z_t        (f / fo pooling)
//   c_t = f_t * c_{t-1} + i_t * z_t              (ifo pooling)
//   h_t = o_t * c_t                              (fo / ifo)
//
// With `activate`, the gate inputs are pre-activations and the kernel applies tanh (z) and
// sigmoid (f, o, i) itself, plus the zoneout keep-mask m on the forget gate:
// f = 1 - m * (1 - sigmoid(F)), and for ifo also on the input term (m * i * z), so that a
// zoned-out channel (m = 0) keeps its memory exactly in every pooling form. The backward pass recomputes the activations instead of
// storing them and returns gradients with respect to the pre-activations. Upstream gradients
// may arrive for h (T, B, H), for c at every step (T, B, H) and for the final memory c_T
// (B, H) alone; absent ones cost nothing.
//
// Layout: every (T, B, H) operand may be a strided view (the Z/F/O/I slices of one gate
// tensor) as long as its last dimension is contiguous. The B x H channels are cut into blocks,
// spread over threads with at::parallel_for; time is the outer loop over a group of blocks, and
// each block's inner loop over H is contiguous so the compiler vectorises it.
//
// Registered as torch.ops.quasirnn_cpu.pool_forward / pool_backward; called only from the
// Python custom ops in quasirnn/ops/pooling.py, which own validation and autograd.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <cmath>
#include <vector>

namespace {

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

template <typename T, bool ACT, bool HAS_I, bool HAS_O, bool HAS_M>
void forward_kernel(View<T> z, View<T> f, View<T> i, View<T> o, const T* c0, View<T> m, T* c, T* h,
                    int64_t T_, int64_t B, int64_t H) {
  for_each_group(T_, B, H, [&](const Item* items, int64_t n) {
    T state[kGroup * kBlock];  // c_{t-1} of item k at state[k * kBlock + j]
    for (int64_t k = 0; k < n; ++k) {
      const auto [b, h0, len] = items[k];
      for (int64_t j = 0; j < len; ++j) state[k * kBlock + j] = c0[b * H + h0 + j];
    }
    for (int64_t t = 0; t < T_; ++t) {
      for (int64_t k = 0; k < n; ++k) {
        const auto [b, h0, len] = items[k];
        T* prev = state + k * kBlock;
        const T* zp = z.ptr(t, b) + h0;
        const T* fp = f.ptr(t, b) + h0;
        const T* ip = HAS_I ? i.ptr(t, b) + h0 : nullptr;
        const T* op = HAS_O ? o.ptr(t, b) + h0 : nullptr;
        const T* mp = HAS_M ? m.ptr(t, b) + h0 : nullptr;
        T* cp = c + (t * B + b) * H + h0;
        T* hp = HAS_O ? h + (t * B + b) * H + h0 : nullptr;
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) {
          T zz = ACT ? tanh_(zp[j]) : zp[j];
          T ff = ACT ? sigmoid(fp[j]) : fp[j];
          if (HAS_M) ff = T(1) - mp[j] * (T(1) - ff);
          T upd;
          if (HAS_I) {
            upd = (ACT ? sigmoid(ip[j]) : ip[j]) * zz;
            if (HAS_M) upd *= mp[j];  // a zoned-out channel takes no input either
          } else {
            upd = (T(1) - ff) * zz;
          }
          const T cc = ff * prev[j] + upd;
          prev[j] = cc;
          cp[j] = cc;
          if (HAS_O) hp[j] = (ACT ? sigmoid(op[j]) : op[j]) * cc;
        }
      }
    }
  });
}

template <typename T, bool ACT, bool HAS_I, bool HAS_O, bool HAS_M, bool HAS_GC>
void backward_kernel(View<T> gh, View<T> gc, const T* g_last, View<T> z, View<T> f, View<T> i, View<T> o, const T* c0, View<T> m,
                     const T* c, View<T> dz, View<T> df, View<T> di, View<T> dout, T* dc0, int64_t T_, int64_t B,
                     int64_t H) {
  for_each_group(T_, B, H, [&](const Item* items, int64_t n) {
    T state[kGroup * kBlock];  // dL/dc_t of item k flowing back from step t+1: f_{t+1} * G_{t+1}
    for (int64_t k = 0; k < n; ++k) {
      const auto [b, h0, len] = items[k];
      for (int64_t j = 0; j < len; ++j) state[k * kBlock + j] = g_last ? g_last[b * H + h0 + j] : T(0);
    }
    for (int64_t t = T_ - 1; t >= 0; --t) {
      for (int64_t k = 0; k < n; ++k) {
        const auto [b, h0, len] = items[k];
        T* carry = state + k * kBlock;
        const T* zp = z.ptr(t, b) + h0;
        const T* fp = f.ptr(t, b) + h0;
        const T* ip = HAS_I ? i.ptr(t, b) + h0 : nullptr;
        const T* op = HAS_O ? o.ptr(t, b) + h0 : nullptr;
        const T* mp = HAS_M ? m.ptr(t, b) + h0 : nullptr;
        const T* ghp = HAS_O ? gh.ptr(t, b) + h0 : nullptr;
        const T* gcp = HAS_GC ? gc.ptr(t, b) + h0 : nullptr;
        const T* cp = c + (t * B + b) * H + h0;
        const T* pp = t > 0 ? c + ((t - 1) * B + b) * H + h0 : c0 + b * H + h0;
        T* dzp = dz.ptr(t, b) + h0;
        T* dfp = df.ptr(t, b) + h0;
        T* dip = HAS_I ? di.ptr(t, b) + h0 : nullptr;
        T* dop = HAS_O ? dout.ptr(t, b) + h0 : nullptr;
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) {
          const T zz = ACT ? tanh_(zp[j]) : zp[j];
          const T fs = ACT ? sigmoid(fp[j]) : fp[j];
          const T ff = HAS_M ? T(1) - mp[j] * (T(1) - fs) : fs;
          T g = HAS_GC ? carry[j] + gcp[j] : carry[j];
          if (HAS_O) {
            const T oo = ACT ? sigmoid(op[j]) : op[j];
            const T gdo = ghp[j] * cp[j];
            dop[j] = ACT ? gdo * oo * (T(1) - oo) : gdo;
            g += ghp[j] * oo;
          }
          T gz, gf;
          if (HAS_I) {
            const T ii = ACT ? sigmoid(ip[j]) : ip[j];
            const T gu = HAS_M ? g * mp[j] : g;  // gradient of the (masked) update i * z
            gz = gu * ii;
            gf = g * pp[j];
            const T gi = gu * zz;
            dip[j] = ACT ? gi * ii * (T(1) - ii) : gi;
          } else {
            gz = g * (T(1) - ff);
            gf = g * (pp[j] - zz);
          }
          if (HAS_M) gf *= mp[j];
          dzp[j] = ACT ? gz * (T(1) - zz * zz) : gz;
          dfp[j] = ACT ? gf * fs * (T(1) - fs) : gf;
          carry[j] = g * ff;
        }
      }
    }
    for (int64_t k = 0; k < n; ++k) {
      const auto [b, h0, len] = items[k];
      for (int64_t j = 0; j < len; ++j) dc0[b * H + h0 + j] = state[k * kBlock + j];
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

bool present(const c10::optional<at::Tensor>& x) { return x.has_value() && x->defined(); }

void check_operand(const at::Tensor& x, const at::Tensor& like, const char* name) {
  TORCH_CHECK(x.dim() == 3 && x.size(0) == like.size(0) && x.size(1) == like.size(1) && x.size(2) == like.size(2),
              "quasirnn_cpu: ", name, " must have shape (T, B, H) = ", like.sizes(), ", got ", x.sizes());
  TORCH_CHECK(x.stride(2) == 1, "quasirnn_cpu: ", name, " must be contiguous in its last dimension");
  TORCH_CHECK(x.scalar_type() == like.scalar_type() && x.device().is_cpu(), "quasirnn_cpu: ", name,
              " must be a CPU tensor of dtype ", like.scalar_type());
}

std::tuple<at::Tensor, at::Tensor> pool_forward(const at::Tensor& z, const at::Tensor& f,
                                                const c10::optional<at::Tensor>& i,
                                                const c10::optional<at::Tensor>& o, const at::Tensor& c0,
                                                const c10::optional<at::Tensor>& mask, bool activate) {
  check_operand(z, z, "z");
  check_operand(f, z, "f");
  if (present(i)) check_operand(*i, z, "i");
  if (present(o)) check_operand(*o, z, "o");
  if (present(mask)) check_operand(*mask, z, "mask");
  const int64_t T_ = z.size(0), B = z.size(1), H = z.size(2);
  auto c0c = c0.contiguous();
  TORCH_CHECK(c0c.numel() == B * H, "quasirnn_cpu: c0 must have B*H elements");
  auto c = at::empty({T_, B, H}, z.options());
  auto h = present(o) ? at::empty({T_, B, H}, z.options()) : at::empty({0}, z.options());
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "quasirnn_pool_forward", [&] {
    using T = scalar_t;
    auto run = [&](auto A, auto I, auto O, auto M) {
      forward_kernel<T, decltype(A)::value, decltype(I)::value, decltype(O)::value, decltype(M)::value>(
          View<T>(z), View<T>(f), view_or_null<T>(i), view_or_null<T>(o), c0c.data_ptr<T>(), view_or_null<T>(mask),
          c.data_ptr<T>(), present(o) ? h.data_ptr<T>() : nullptr, T_, B, H);
    };
    dispatch_bools(run, std::tuple<>{}, activate, present(i), present(o), present(mask));
  });
  return {c, h};
}

at::Tensor pool_backward(const c10::optional<at::Tensor>& grad_h, const c10::optional<at::Tensor>& grad_c,
                         const c10::optional<at::Tensor>& grad_last,
                         const at::Tensor& z, const at::Tensor& f, const c10::optional<at::Tensor>& i,
                         const c10::optional<at::Tensor>& o, const at::Tensor& c0,
                         const c10::optional<at::Tensor>& mask, const at::Tensor& c, bool activate, at::Tensor dz,
                         at::Tensor df, c10::optional<at::Tensor> di, c10::optional<at::Tensor> dout) {
  check_operand(z, z, "z");
  check_operand(f, z, "f");
  check_operand(dz, z, "dz");
  check_operand(df, z, "df");
  TORCH_CHECK(c.is_contiguous(), "quasirnn_cpu: c must be contiguous");
  check_operand(c, z, "c");
  TORCH_CHECK(present(i) == present(di) && present(o) == present(dout) && present(o) == present(grad_h),
              "quasirnn_cpu: i/di, o/do/grad_h must be given together");
  if (present(i)) check_operand(*i, z, "i"), check_operand(*di, z, "di");
  if (present(o)) check_operand(*o, z, "o"), check_operand(*dout, z, "do"), check_operand(*grad_h, z, "grad_h");
  if (present(mask)) check_operand(*mask, z, "mask");
  if (present(grad_c)) check_operand(*grad_c, z, "grad_c");
  const int64_t T_ = z.size(0), B = z.size(1), H = z.size(2);
  auto c0c = c0.contiguous();
  auto dc0 = at::empty({B, H}, z.options());
  c10::optional<at::Tensor> g_last;
  if (present(grad_last)) {
    g_last = grad_last->contiguous();
    TORCH_CHECK(g_last->numel() == B * H && g_last->scalar_type() == z.scalar_type(),
                "quasirnn_cpu: grad_last must be (B, H) of the same dtype");
  }
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "quasirnn_pool_backward", [&] {
    using T = scalar_t;
    auto run = [&](auto A, auto I, auto O, auto M, auto GC) {
      backward_kernel<T, decltype(A)::value, decltype(I)::value, decltype(O)::value, decltype(M)::value,
                      decltype(GC)::value>(
          view_or_null<T>(grad_h), view_or_null<T>(grad_c), g_last.has_value() ? g_last->data_ptr<T>() : nullptr, View<T>(z), View<T>(f), view_or_null<T>(i),
          view_or_null<T>(o), c0c.data_ptr<T>(), view_or_null<T>(mask), c.data_ptr<T>(), View<T>(dz), View<T>(df),
          view_or_null<T>(di), view_or_null<T>(dout), dc0.data_ptr<T>(), T_, B, H);
    };
    dispatch_bools(run, std::tuple<>{}, activate, present(i), present(o), present(mask), present(grad_c));
  });
  return dc0;
}

}  // namespace

TORCH_LIBRARY(quasirnn_cpu, m) {
  m.def("pool_forward(Tensor z, Tensor f, Tensor? i, Tensor? o, Tensor c0, Tensor? mask, bool activate)"
        " -> (Tensor, Tensor)",
        &pool_forward);
  m.def("pool_backward(Tensor? grad_h, Tensor? grad_c, Tensor? grad_last, Tensor z, Tensor f, Tensor? i, Tensor? o, Tensor c0,"
        " Tensor? mask, Tensor c, bool activate, Tensor(a!) dz, Tensor(b!) df, Tensor(c!)? di, Tensor(d!)? do_)"
        " -> Tensor",
        &pool_backward);
}
