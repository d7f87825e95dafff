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

#include <torch/library.h>

#include "cpu_common.h"

#include <tuple>

namespace {

using namespace quasirnn_cpu;

template <typename T, bool ACT, bool HAS_I, bool HAS_O, bool HAS_M>
void forward_kernel(View<T> z, View<T> f, View<T> i, View<T> o, const T* c0, View<T> m, T* c, T* h,
                    int64_t T_, int64_t B, int64_t H) {
  scan<false>(T_, B, H, c0, static_cast<T*>(nullptr), [&](int64_t t, const Item& item, T* prev) {  // prev: c_{t-1}
    const auto [b, h0, len] = item;
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
  });
}

template <typename T, bool ACT, bool HAS_I, bool HAS_O, bool HAS_M, bool HAS_GC>
void backward_kernel(View<T> gh, View<T> gc, const T* g_last, View<T> z, View<T> f, View<T> i, View<T> o, const T* c0, View<T> m,
                     const T* c, View<T> dz, View<T> df, View<T> di, View<T> dout, T* dc0, int64_t T_, int64_t B,
                     int64_t H) {
  scan<true>(T_, B, H, g_last, dc0, [&](int64_t t, const Item& item, T* carry) {  // carry: f_{t+1} * dL/dc_{t+1}
    const auto [b, h0, len] = item;
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
  });
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
