// The SRU recurrence on the CPU, forward and backward (Lei et al. 2017, arXiv 1709.02755, §2,
// with the element-wise recurrent gate terms of the published version):
//
//   f_t = sigmoid(F_t + v_f * c_{t-1} + b_f)
//   r_t = sigmoid(R_t + v_r * c_{t-1} + b_r)
//   c_t = f_t * c_{t-1} + (1 - f_t) * x~_t
//   h_t = r_t * g(c_t) + (1 - r_t) * x_t          g = identity, or tanh with use_tanh
//
// x~, F, R are the projection outputs of x_t and x_t the highway input; every one of them is a
// (T, B, H) operand that may be a strided view (slices of one projection tensor) as long as
// its last dimension is contiguous. v = [v_f; v_r] and b = [b_f; b_r] are (2, H).
// The backward pass recomputes f, r and g(c) from the saved c instead of storing them and
// returns gradients with respect to x~, F, R (pre-activations), x (unless not wanted), c_0, v
// and b. Upstream
// gradients arrive for h (T, B, H), optionally for c at every step (T, B, H) and for the final
// memory c_T (B, H).
//
// Parallel layout as in pooling_cpu.cpp (cpu_common.h: scan): the B x H channels are
// cut into blocks spread over threads, time is the outer loop, the inner loop over a block's
// channels is contiguous and vectorised. The v and b gradients are sums over t and b: each
// work item owns one batch row and channel range, so it accumulates its partial sums over t
// into its own (b, h) slots of a (4, B, H) buffer without races; the sum over B comes last.
//
// Registered as torch.ops.quasirnn_cpu.sru_forward / sru_backward; called only from the Python
// custom ops in quasirnn/ops/sru.py, which own validation and autograd.

#include <torch/library.h>

#include "cpu_common.h"

namespace {

using namespace quasirnn_cpu;

template <typename T, bool TANH>
void sru_forward_kernel(View<T> xt, View<T> f, View<T> r, View<T> xh, const T* v, const T* bias, const T* c0, T* c,
                        T* h, int64_t T_, int64_t B, int64_t H) {
  scan<false>(T_, B, H, c0, static_cast<T*>(nullptr), [&](int64_t t, const Item& item, T* prev) {  // prev: c_{t-1}
    const auto [b, h0, len] = item;
    const T* xtp = xt.ptr(t, b) + h0;
    const T* fp = f.ptr(t, b) + h0;
    const T* rp = r.ptr(t, b) + h0;
    const T* xhp = xh.ptr(t, b) + h0;
    const T* vfp = v + h0;  // v = [v_f; v_r], b = [b_f; b_r]: (2, H) each
    const T* vrp = v + H + h0;
    const T* bfp = bias + h0;
    const T* brp = bias + H + h0;
    T* cp = c + (t * B + b) * H + h0;
    T* hp = h + (t * B + b) * H + h0;
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) {
      const T p = prev[j];
      const T ff = sigmoid(fp[j] + vfp[j] * p + bfp[j]);
      const T rr = sigmoid(rp[j] + vrp[j] * p + brp[j]);
      const T cc = ff * p + (T(1) - ff) * xtp[j];
      const T gc = TANH ? tanh_(cc) : cc;
      prev[j] = cc;
      cp[j] = cc;
      hp[j] = rr * gc + (T(1) - rr) * xhp[j];
    }
  });
}

// dparams: (4, B, H), zero on entry; rows are the partial sums over t of dv_f, dv_r, db_f, db_r.
// Without HAS_DX the highway gradient is not written (the highway input needs none).
template <typename T, bool TANH, bool HAS_GC, bool HAS_DX>
void sru_backward_kernel(View<T> gh, View<T> gc, const T* g_last, View<T> xt, View<T> f, View<T> r, View<T> xh,
                         const T* v, const T* bias, const T* c0, const T* c, View<T> dxt, View<T> df, View<T> dr,
                         View<T> dxh, T* dc0, T* dparams, int64_t T_, int64_t B, int64_t H) {
  const int64_t BH = B * H;
  scan<true>(T_, B, H, g_last, dc0, [&](int64_t t, const Item& item, T* carry) {  // carry: dL/dc_t from step t+1
    const auto [b, h0, len] = item;
    const T* ghp = gh.ptr(t, b) + h0;
    const T* gcp = HAS_GC ? gc.ptr(t, b) + h0 : nullptr;
    const T* xtp = xt.ptr(t, b) + h0;
    const T* fp = f.ptr(t, b) + h0;
    const T* rp = r.ptr(t, b) + h0;
    const T* xhp = xh.ptr(t, b) + h0;
    const T* vfp = v + h0;  // v = [v_f; v_r], b = [b_f; b_r]: (2, H) each
    const T* vrp = v + H + h0;
    const T* bfp = bias + h0;
    const T* brp = bias + H + h0;
    const T* cp = c + (t * B + b) * H + h0;
    const T* pp = t > 0 ? c + ((t - 1) * B + b) * H + h0 : c0 + b * H + h0;
    T* dxtp = dxt.ptr(t, b) + h0;
    T* dfp = df.ptr(t, b) + h0;
    T* drp = dr.ptr(t, b) + h0;
    T* dxhp = HAS_DX ? dxh.ptr(t, b) + h0 : nullptr;
    T* dvf = dparams + b * H + h0;
    T* dvr = dvf + BH;
    T* dbf = dvr + BH;
    T* dbr = dbf + BH;
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) {
      const T p = pp[j];
      const T ff = sigmoid(fp[j] + vfp[j] * p + bfp[j]);
      const T rr = sigmoid(rp[j] + vrp[j] * p + brp[j]);
      const T cc = cp[j];
      const T gcc = TANH ? tanh_(cc) : cc;
      const T g_h = ghp[j];
      // dL/dc_t: from step t+1, from c_t's own use, and through h_t = r * g(c_t) + ...
      T g = HAS_GC ? carry[j] + gcp[j] : carry[j];
      g += TANH ? g_h * rr * (T(1) - gcc * gcc) : g_h * rr;
      const T gr = g_h * (gcc - xhp[j]) * rr * (T(1) - rr);  // pre-activation of r
      const T gf = g * (p - xtp[j]) * ff * (T(1) - ff);      // pre-activation of f
      if (HAS_DX) dxhp[j] = g_h * (T(1) - rr);
      dxtp[j] = g * (T(1) - ff);
      dfp[j] = gf;
      drp[j] = gr;
      dvf[j] += gf * p;
      dvr[j] += gr * p;
      dbf[j] += gf;
      dbr[j] += gr;
      carry[j] = g * ff + gf * vfp[j] + gr * vrp[j];
    }
  });
}

void check_params(const at::Tensor& p, const at::Tensor& like, const char* name) {
  TORCH_CHECK(p.dim() == 2 && p.size(0) == 2 && p.size(1) == like.size(2) && p.is_contiguous(), "quasirnn_cpu: ", name,
              " must be a contiguous (2, H) tensor with H = ", like.size(2), ", got ", p.sizes());
  TORCH_CHECK(p.scalar_type() == like.scalar_type() && p.device().is_cpu(), "quasirnn_cpu: ", name,
              " must be a CPU tensor of dtype ", like.scalar_type());
}

void check_inputs(const at::Tensor& xt, const at::Tensor& f, const at::Tensor& r, const at::Tensor& xh,
                  const at::Tensor& v, const at::Tensor& bias, const at::Tensor& c0) {
  check_operand(xt, xt, "x~");
  check_operand(f, xt, "f");
  check_operand(r, xt, "r");
  check_operand(xh, xt, "x");
  check_params(v, xt, "v");
  check_params(bias, xt, "b");
  TORCH_CHECK(c0.is_contiguous() && c0.numel() == xt.size(1) * xt.size(2) && c0.scalar_type() == xt.scalar_type(),
              "quasirnn_cpu: c0 must be a contiguous (B, H) tensor of the same dtype");
}

std::tuple<at::Tensor, at::Tensor> sru_forward(const at::Tensor& xt, const at::Tensor& f, const at::Tensor& r,
                                               const at::Tensor& xh, const at::Tensor& v, const at::Tensor& bias,
                                               const at::Tensor& c0, bool use_tanh) {
  check_inputs(xt, f, r, xh, v, bias, c0);
  const int64_t T_ = xt.size(0), B = xt.size(1), H = xt.size(2);
  auto c = at::empty({T_, B, H}, xt.options());
  auto h = at::empty({T_, B, H}, xt.options());
  AT_DISPATCH_FLOATING_TYPES(xt.scalar_type(), "quasirnn_sru_forward", [&] {
    using T = scalar_t;
    auto run = [&](auto TANH) {
      sru_forward_kernel<T, decltype(TANH)::value>(View<T>(xt), View<T>(f), View<T>(r), View<T>(xh), v.data_ptr<T>(),
                                                   bias.data_ptr<T>(), c0.data_ptr<T>(), c.data_ptr<T>(),
                                                   h.data_ptr<T>(), T_, B, H);
    };
    dispatch_bools(run, std::tuple<>{}, use_tanh);
  });
  return {h, c};
}

// Returns (dc0 (B, H), dv (2, H), db (2, H)); writes dx~, dF, dR and (when given) dx into the
// given views.
std::tuple<at::Tensor, at::Tensor, at::Tensor> sru_backward(
    const at::Tensor& grad_h, const c10::optional<at::Tensor>& grad_c, const c10::optional<at::Tensor>& grad_last,
    const at::Tensor& xt, const at::Tensor& f, const at::Tensor& r, const at::Tensor& xh, const at::Tensor& v,
    const at::Tensor& bias, const at::Tensor& c0, const at::Tensor& c, bool use_tanh, at::Tensor dxt, at::Tensor df,
    at::Tensor dr, c10::optional<at::Tensor> dxh) {
  check_inputs(xt, f, r, xh, v, bias, c0);
  check_operand(grad_h, xt, "grad_h");
  TORCH_CHECK(c.is_contiguous(), "quasirnn_cpu: c must be contiguous");
  check_operand(c, xt, "c");
  check_operand(dxt, xt, "dx~");
  check_operand(df, xt, "df");
  check_operand(dr, xt, "dr");
  if (present(dxh)) check_operand(*dxh, xt, "dx");
  if (present(grad_c)) check_operand(*grad_c, xt, "grad_c");
  const int64_t T_ = xt.size(0), B = xt.size(1), H = xt.size(2);
  c10::optional<at::Tensor> g_last;
  if (present(grad_last)) {
    g_last = grad_last->contiguous();
    TORCH_CHECK(g_last->numel() == B * H && g_last->scalar_type() == xt.scalar_type(),
                "quasirnn_cpu: grad_last must be (B, H) of the same dtype");
  }
  auto dc0 = at::empty({B, H}, xt.options());
  auto dparams = at::zeros({4, B, H}, xt.options());
  AT_DISPATCH_FLOATING_TYPES(xt.scalar_type(), "quasirnn_sru_backward", [&] {
    using T = scalar_t;
    auto run = [&](auto TANH, auto GC, auto DX) {
      sru_backward_kernel<T, decltype(TANH)::value, decltype(GC)::value, decltype(DX)::value>(
          View<T>(grad_h), view_or_null<T>(grad_c), g_last.has_value() ? g_last->data_ptr<T>() : nullptr,
          View<T>(xt), View<T>(f), View<T>(r), View<T>(xh), v.data_ptr<T>(), bias.data_ptr<T>(), c0.data_ptr<T>(),
          c.data_ptr<T>(), View<T>(dxt), View<T>(df), View<T>(dr), view_or_null<T>(dxh), dc0.data_ptr<T>(),
          dparams.data_ptr<T>(), T_, B, H);
    };
    dispatch_bools(run, std::tuple<>{}, use_tanh, present(grad_c), present(dxh));
  });
  auto sums = dparams.sum(1);  // (4, H): dv_f, dv_r, db_f, db_r
  return {dc0, sums.narrow(0, 0, 2).clone(), sums.narrow(0, 2, 2).clone()};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(quasirnn_cpu, m) {
  m.def("sru_forward(Tensor xt, Tensor f, Tensor r, Tensor xh, Tensor v, Tensor b, Tensor c0, bool use_tanh)"
        " -> (Tensor, Tensor)",
        &sru_forward);
  m.def("sru_backward(Tensor grad_h, Tensor? grad_c, Tensor? grad_last, Tensor xt, Tensor f, Tensor r, Tensor xh,"
        " Tensor v, Tensor b, Tensor c0, Tensor c, bool use_tanh, Tensor(a!) dxt, Tensor(b!) df, Tensor(c!) dr,"
        " Tensor(d!)? dxh) -> (Tensor, Tensor, Tensor)",
        &sru_backward);
}
