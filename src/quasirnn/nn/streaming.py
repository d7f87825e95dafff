"""Streaming inference: a QRNN or an SRU run one step (or a few) at a time, at the cost of its
arithmetic: :class:`Stepper`.

A module's own forward is built for sequences: at T = 1 most of its time goes to checks, autograd
bookkeeping, the kernel's dispatch and fresh tensors for every intermediate. A :class:`Stepper`
reads the module's weights once and runs each step as one matrix product per layer (the
convolution of its window, bias fused) and a few in-place element-wise ops on buffers it keeps
for the batch size, without autograd.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..ops import GATE_COUNTS
from .plain_linear import plain_linear
from .qrnn_layer import QRNNLayer
from .sru_layer import SRULayer
from .stack import RecurrentState, StackedRecurrent, StateLike

__all__ = ["Stepper"]

#: Steps a layer's input history ring holds before it wraps (one copy of k − 1 inputs per wrap).
_SLOTS = 64


def _matrix(linear: nn.Module) -> Optional[Tensor]:
    """The weight of a plain ``nn.Linear`` as a (in, out) view for ``torch.addmm``, or None for a
    module that must be called (a quantised Linear of ``torch.ao`` or torchao, a hooked one)."""
    if not plain_linear(linear) or type(linear.weight) is not nn.Parameter:
        return None
    return linear.weight.detach().t()


def _project(linear: nn.Module, weight_t: Optional[Tensor], bias: Optional[Tensor], x: Tensor, out: Tensor) -> Tensor:
    """``out ← x Wᵀ + b`` for a plain Linear (``weight_t`` given), else ``linear(x)`` (its own bias)."""
    if weight_t is None:
        return linear(x)
    if bias is None:
        return torch.mm(x, weight_t, out=out)
    return torch.addmm(bias, x, weight_t, out=out)


class _History:
    """The last k − 1 inputs of one layer (its convolution's history) and the window x_{t−k+1..t},
    in a ring of ``_SLOTS`` + k − 1 input slots per batch row: the window of step ``pos`` is a
    precomputed view of slots pos … pos + k − 1, so a step costs one copy of x_t into its slot."""

    def __init__(self, k: int, n: int, batch: int, like: Tensor) -> None:
        self.k, self.n = k, n
        self.ring = like.new_zeros(batch, (k - 1 + _SLOTS) * n)
        r = self.ring
        self.windows = [r[:, p * n : (p + k) * n] for p in range(_SLOTS)]
        self.slots = [r[:, (p + k - 1) * n : (p + k) * n] for p in range(_SLOTS)]
        # after step p the history is slots p + 1 … p + k − 1, as the (k − 1, B, N) a layer returns
        self.after = [r[:, (p + 1) * n : (p + k) * n].view(batch, k - 1, n).transpose(0, 1) for p in range(_SLOTS)]
        self.start = r[:, : (k - 1) * n].view(batch, k - 1, n).transpose(0, 1)

    def load(self, prev: Optional[Tensor]) -> None:
        """History slots 0 … k − 2 ← ``prev`` (k − 1, B, N), or zeros for None."""
        if prev is None:
            self.start.zero_()
        else:
            self.start.copy_(prev)

    def wrap(self) -> None:
        """After the last slot: the current history moves back to slots 0 … k − 2."""
        self.start.copy_(self.after[_SLOTS - 1].clone())


class _QRNNStep:
    """One step of a :class:`QRNNLayer` (paper §2 eq. 1–5) on preallocated buffers."""

    def __init__(self, layer: QRNNLayer) -> None:
        self.layer = layer
        self.k, self.n, self.H, self.pooling = layer.window, layer.input_size, layer.hidden_size, layer.pooling
        self.weight_t = _matrix(layer.linear)
        bias = layer.linear.bias if self.weight_t is not None else None  # a called module adds its own
        self.bias = None if bias is None else bias.detach()
        self.proj_t = None if layer.proj is None else _matrix(layer.proj)
        # zoneout at evaluation with zoneout_eval: f = 1 − (1 − p)(1 − σ(F)) = (1 − p)·σ(F) + p, i × (1 − p)
        self.keep = 1.0 - layer.zoneout if (layer.zoneout_eval and layer.zoneout > 0) else None

    def alloc(self, batch: int, like: Tensor, h_out: Tensor, c: Tensor) -> None:
        H, G = self.H, GATE_COUNTS[self.pooling]
        self.h_out, self.c = h_out, c
        self.history = _History(self.k, self.n, batch, like) if self.k > 1 else None
        self.gates = like.new_empty(batch, G * H)
        self.h_pre = like.new_empty(batch, H) if self.layer.proj is not None else None
        self.empty = like.new_empty(0, batch, self.n)
        self.views = self._views(self.gates)

    def _views(self, g: Tensor) -> tuple:
        """(Z, σ-gates F…, F, O, I) views of the gates (B, G·H); O and I None where absent."""
        H = self.H
        return (g[:, :H], g[:, H:], g[:, H : 2 * H], g[:, 2 * H : 3 * H] if self.pooling != "f" else None,
                g[:, 3 * H :] if self.pooling == "ifo" else None)

    def inputs(self, pos: int) -> Tensor:
        return self.empty if self.history is None else self.history.after[pos]

    def run(self, x: Tensor, pos: int) -> None:
        c = self.c
        if self.history is not None:
            self.history.slots[pos].copy_(x)
            x = self.history.windows[pos]
        g = _project(self.layer.linear, self.weight_t, self.bias, x, self.gates)  # a called module: a new tensor
        z, gates, f, o, i = self.views if g is self.gates else self._views(g)
        z.tanh_()
        gates.sigmoid_()  # F, O (and I): one pass
        if self.keep is not None:
            f.mul_(self.keep).add_(1.0 - self.keep)
        if i is not None:
            if self.keep is not None:
                i.mul_(self.keep)
            c.mul_(f).addcmul_(i, z)  # c = f ⊙ c + i ⊙ z
        else:
            torch.lerp(z, c, f, out=c)  # c = f ⊙ c + (1 − f) ⊙ z
        h = self.h_out if self.h_pre is None else self.h_pre
        if o is None:
            h.copy_(c)
        else:
            torch.mul(o, c, out=h)
        if self.h_pre is not None:
            out = _project(self.layer.proj, self.proj_t, None, h, self.h_out)
            if out is not self.h_out:
                self.h_out.copy_(out)


    def run_chunk(self, x: Tensor, history: Optional[Tensor]) -> Tensor:
        """T steps (:meth:`Stepper.chunk`): x (T, B, N), ``history`` (k − 1, B, N) or None; one
        matrix product for all T, the activations in one pass each, the memory step by step.
        Leaves c_T in ``c``, h_T in ``h_out`` and the last k − 1 inputs in the history's start."""
        T, B, _ = x.shape
        H, c = self.H, self.c
        if self.history is not None:
            extended = torch.cat([history, x])  # (T + k − 1, B, N)
            x = torch.cat([extended[j : j + T] for j in range(self.k)], dim=-1)  # oldest first
            self.history.load(extended[T:])
        if self.weight_t is None:
            g = self.layer.linear(x)
        elif self.bias is None:
            g = torch.mm(x.reshape(T * B, -1), self.weight_t).view(T, B, -1)
        else:
            g = torch.addmm(self.bias, x.reshape(T * B, -1), self.weight_t).view(T, B, -1)
        z, f = g[..., :H].tanh_(), g[..., H : 2 * H]
        g[..., H:].sigmoid_()
        if self.keep is not None:
            f.mul_(self.keep).add_(1.0 - self.keep)
        i = g[..., 3 * H :] if self.pooling == "ifo" else None
        if i is not None and self.keep is not None:
            i.mul_(self.keep)
        cs = torch.empty_like(z)
        for t in range(T):
            if i is None:
                c = torch.lerp(z[t], c, f[t], out=cs[t])
            else:
                c = torch.addcmul(cs[t].copy_(c).mul_(f[t]), i[t], z[t], out=cs[t])
        self.c.copy_(c)
        h = cs if self.pooling == "f" else g[..., 2 * H : 3 * H] * cs
        if self.layer.proj is not None:
            h = self.layer.proj(h) if self.proj_t is None else torch.matmul(h, self.proj_t)
        self.h_out.copy_(h[-1])
        return h


class _SRUStep:
    """One step of an :class:`SRULayer` (Lei et al. 2017 eq. 3–7) on preallocated buffers."""

    k = 1  # no input history

    def __init__(self, layer: SRULayer) -> None:
        self.layer = layer
        H = self.H = layer.hidden_size
        self.n = layer.input_size
        self.weight_t = _matrix(layer.linear)
        rows = layer.linear.out_features
        bias = layer.bias.detach()
        self.fused = torch.cat([bias.new_zeros(H), bias.flatten(), bias.new_zeros(rows - 3 * H)])  # [0, b_f, b_r, (0)]
        self.fr_bias = bias.flatten()
        self.v = None if layer.v is None else layer.v.detach()  # (2, H)
        self.proj_t = None if layer.proj is None else _matrix(layer.proj)
        self.scale = None if layer.scale_x is None else layer.scale_x.detach()
        d = layer.direction
        self.skip_slice = None if layer.skip_term != "identity" or self.n == H else slice(d * H, (d + 1) * H)

    def alloc(self, batch: int, like: Tensor, h_out: Tensor, c: Tensor) -> None:
        H = self.H
        self.h_out, self.c = h_out, c
        self.c_rows = c.unsqueeze(1)  # (B, 1, H) against v (2, H)
        self.u = like.new_empty(batch, self.layer.linear.out_features)
        self.z = like.new_empty(batch, self.layer.projection_size) if self.layer.proj is not None else None
        self.g = like.new_empty(batch, H) if self.layer.use_tanh else c
        self.skip = like.new_empty(batch, H) if self.scale is not None else None
        self.empty = like.new_empty(0, batch, self.n)
        self.views = self._views(self.u)

    def _views(self, u: Tensor) -> tuple:
        """(x̃, [F; R] as (B, 2, H), F, R, projected x' or None) views of u (B, 3H or 4H)."""
        H = self.H
        fr = u[:, H : 3 * H].view(u.shape[0], 2, H)
        return u[:, :H], fr, fr[:, 0], fr[:, 1], u[:, 3 * H :] if self.layer.skip_term == "projection" else None

    def inputs(self, pos: int) -> Tensor:
        return self.empty

    def run(self, x: Tensor, pos: int) -> None:
        c, layer = self.c, self.layer
        z = x if layer.norm is None else layer.norm(x)
        if layer.proj is not None:
            z = _project(layer.proj, self.proj_t, None, z, self.z)
        if self.weight_t is None:  # a called module (quantised, hooked): the gate biases added here
            x_tilde, fr, f, r, skip = self._views(layer.linear(z))
            fr.add_(self.fr_bias.view(2, -1))
        else:
            torch.addmm(self.fused, z, self.weight_t, out=self.u)
            x_tilde, fr, f, r, skip = self.views
        if self.v is not None:
            fr.addcmul_(self.v, self.c_rows)  # + v ⊙ c_{t−1}
        fr.sigmoid_()
        torch.lerp(x_tilde, c, f, out=c)  # c = f ⊙ c + (1 − f) ⊙ x̃
        g = c if self.g is c else torch.tanh(c, out=self.g)
        if layer.skip_term == "none":
            torch.mul(r, g, out=self.h_out)
            return
        if skip is None:  # the identity skip term: the layer's input (its direction's H features)
            skip = x if self.skip_slice is None else x[:, self.skip_slice]
            if self.scale is not None:
                skip = torch.mul(skip, self.scale, out=self.skip)
        torch.lerp(skip, g, r, out=self.h_out)  # h = r ⊙ g(c) + (1 − r) ⊙ x'


    def run_chunk(self, x: Tensor, history: Optional[Tensor]) -> Tensor:
        """T steps (:meth:`Stepper.chunk`): x (T, B, N); one matrix product for all T, the
        recurrence step by step. Leaves c_T in ``c`` and h_T in ``h_out``."""
        T, B, _ = x.shape
        H, c, layer = self.H, self.c, self.layer
        z = x if layer.norm is None else layer.norm(x)
        if layer.proj is not None:
            z = layer.proj(z) if self.proj_t is None else torch.matmul(z, self.proj_t)
        if self.weight_t is None:
            u = layer.linear(z)
            u[..., H : 3 * H] += self.fr_bias
        else:
            u = torch.addmm(self.fused, z.reshape(T * B, -1), self.weight_t).view(T, B, -1)
        fr = u[..., H : 3 * H].view(T, B, 2, H)
        cs = torch.empty(T, B, H, dtype=u.dtype, device=u.device)
        for t in range(T):
            if self.v is not None:
                fr[t].addcmul_(self.v, c.unsqueeze(1))  # + v ⊙ c_{t−1}
            f = fr[t, :, 0].sigmoid_()
            c = torch.lerp(u[t, :, :H], c, f, out=cs[t])
        self.c.copy_(c)
        r = fr[..., 1, :].sigmoid_()  # its v ⊙ c_{t−1} added in the loop
        g = torch.tanh(cs) if layer.use_tanh else cs
        if layer.skip_term == "none":
            h = r * g
        else:
            if layer.skip_term == "projection":
                skip = u[..., 3 * H :]
            else:
                skip = x if self.skip_slice is None else x[..., self.skip_slice]
                if self.scale is not None:
                    skip = skip * self.scale
            h = torch.lerp(skip, g, r)
        self.h_out.copy_(h[-1])
        return h


class Stepper:
    r"""Runs a unidirectional :class:`~quasirnn.QRNN` or :class:`~quasirnn.SRU` one step at a time
    (or a few: :meth:`chunk`) for streaming inference, at close to the cost of the step's matrix
    products: each layer's convolution window (QRNN paper §2 eq. 1, bias fused) or projection
    (SRU eq. 3) is one ``torch.addmm`` into a buffer, and the pooling (QRNN eq. 3–5) or the SRU
    recurrence (eq. 4–7) a handful of in-place element-wise ops. No autograd, no kernel dispatch,
    and no tensor is allocated per step but the output.

    The results are those of the module in evaluation mode (no dropout, no sampled zoneout;
    ``zoneout_eval`` applied) to float rounding: stepping a sequence token by token, or in chunks,
    from zero or from a given state, gives the full-sequence ``module(x, state)``'s outputs and
    final state. A projection replaced by a quantised module (``torch.ao.quantization.quantize_dynamic``'s
    dynamic Linear, a torchao-quantised Linear) or a hooked one is called as a module, so int8
    models step too: as the quantised module run one step per call (its activations quantised
    with the step's own range), up to a quantisation level where float rounding crosses one.

    The state is the module's own :class:`~quasirnn.RecurrentState` (h_n, c_n and the
    convolution history), so a stream may switch between ``module(x, state)`` and the stepper in
    either direction. The state a step returns lives in the stepper's buffers and is overwritten
    by its next step: pass it back (or to the module) as it is, and copy it
    (``state.apply(torch.clone)``) to keep it. The returned output is a tensor of its own.

    Args:
        module: a ``QRNN`` or ``SRU``, unidirectional. Its weights are read once, here: build a
            new stepper after changing them other than in place. A stepper holds buffers for one
            batch size at a time (allocated at the first step, again when B changes).

    Raises:
        TypeError: ``module`` is not a QRNN or an SRU of this package.
        ValueError: a bidirectional module (its backward direction needs the whole sequence).

    Example::

        >>> import torch, quasirnn
        >>> from quasirnn.nn.streaming import Stepper
        >>> qrnn = quasirnn.QRNN(4, 8, num_layers=2, window=2).eval()
        >>> x = torch.randn(6, 3, 4)                         # (T, B, N)
        >>> stepper = Stepper(qrnn)
        >>> state = None
        >>> for t in range(6):
        ...     y, state = stepper.step(x[t], state)         # y (B, H)
        >>> full, full_state = qrnn(x)
        >>> torch.allclose(y, full[-1], atol=1e-6), torch.allclose(state.c, full_state.c, atol=1e-6)
        (True, True)
    """

    def __init__(self, module: StackedRecurrent) -> None:
        layers = list(getattr(module, "layers", ()))
        if not isinstance(module, StackedRecurrent) or not all(isinstance(m, (QRNNLayer, SRULayer)) for m in layers):
            raise TypeError(f"Stepper needs a quasirnn QRNN or SRU module, got {type(module).__name__}")
        if module.bidirectional:
            raise ValueError("Stepper needs a unidirectional module: a backward direction reads the sequence from "
                             "its end, so it cannot stream")
        self.module = module
        self._between = type(module)._between_layers is not StackedRecurrent._between_layers  # the SRU's options
        self._concat = module.dense
        self._steps = [_QRNNStep(m) if isinstance(m, QRNNLayer) else _SRUStep(m) for m in layers]
        # the dtype and device of the float parameters (a module quantised to int8 takes float32)
        weight = next((p for p in module.parameters() if p.is_floating_point()), torch.empty(0))
        self._dtype, self._device = weight.dtype, weight.device
        self._batch = None
        self._state = None  # the state the last step returned (its buffers are the stepper's)

    # ------------------------------------------------------------------ buffers and state

    def _alloc(self, batch: int) -> None:
        with torch.inference_mode(False):  # usable both inside and outside inference_mode
            like = torch.empty(0, dtype=self._dtype, device=self._device)
            m = self.module
            L, H = m.num_layers, m.hidden_size
            self._h = like.new_zeros(L, batch, m.proj_size or H)
            self._c = like.new_zeros(L, batch, H)
            for l, step in enumerate(self._steps):
                step.alloc(batch, like, self._h[l], self._c[l])
            self._states = [RecurrentState._of(self._h, self._c, tuple(s.inputs(p) for s in self._steps))
                            for p in range(_SLOTS)]
            self._start = RecurrentState._of(
                self._h, self._c,
                tuple(s.empty if getattr(s, "history", None) is None else s.history.start for s in self._steps))
        self._batch = batch
        self._pos = 0

    def _load(self, state: StateLike, batch: int) -> None:
        """Makes the buffers hold ``state`` (None: zeros) for a batch of ``batch``."""
        if self._batch != batch:
            self._alloc(batch)
        like = self._c
        c0s, prevs = self.module._parse_hx(state, batch, True, like)
        c0s = [None if c is None else c.clone() for c in c0s]  # a state of this stepper's may alias its buffers
        prevs = [None if p is None else p.clone() for p in prevs]
        for step, c0, prev in zip(self._steps, c0s, prevs):
            if c0 is None:
                step.c.zero_()
            else:
                step.c.copy_(c0)
            if getattr(step, "history", None) is not None:
                step.history.load(prev)
        h = state.h if isinstance(state, RecurrentState) else None
        if h is not None and tuple(h.shape) == tuple(self._h.shape):
            self._h.copy_(h)
        else:
            self._h.zero_()
        self._pos = 0
        self._state = self._start

    def _check(self, x: Tensor, dims: int, layout: str) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"Stepper input must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != dims or x.shape[-1] != self.module.input_size:
            raise ValueError(f"Stepper input must have shape {layout} with N = input_size = "
                             f"{self.module.input_size}, got shape {tuple(x.shape)}")
        if x.dtype != self._dtype:
            raise TypeError(f"Stepper input has dtype {x.dtype} but the module computes in {self._dtype}: "
                            f"convert the input (x.to({self._dtype}))")

    # ------------------------------------------------------------------ running

    def step(self, input: Tensor, state: StateLike = None) -> tuple[Tensor, RecurrentState]:
        """One time step of every layer.

        Args:
            input: x_t (B, N), float in the module's dtype (float32 for an int8 module).
            state: None (zero memories and history), the state of the previous step or
                :meth:`chunk`, or any state the module accepts as ``hx`` for a batch of B
                (a :class:`~quasirnn.RecurrentState` of ``module(x)``, a tensor of memories, …).

        Returns:
            ``(output, state)``: output (B, D_out) as one step of the module's output
            (``output_size`` features: the last layer's h_t, or with ``dense`` the concatenation);
            the state after the step (the stepper's buffers: see the class docstring).

        Raises:
            ValueError: ``input`` not (B, N); a ``state`` whose shapes do not fit B.
            TypeError: ``input`` not a tensor, or not in the module's dtype.
        """
        self._check(input, 2, "(B, N)")
        if torch.is_grad_enabled():  # no autograd (the caller's torch.inference_mode or no_grad saves this)
            with torch.no_grad():
                return self._step(input, state)
        return self._step(input, state)

    def _step(self, x: Tensor, state: StateLike) -> tuple[Tensor, RecurrentState]:
        if state is not self._state or state is None or x.shape[0] != self._batch:
            self._load(state, x.shape[0])
        return self._run(x)

    def _run(self, x: Tensor) -> tuple[Tensor, RecurrentState]:
        pos, module = self._pos, self.module
        if self._between or self._concat:
            x = self._run_layers(x, pos)
        else:
            for step in self._steps:
                step.run(x, pos)
                x = step.h_out
        output = x.clone() if x is self._steps[-1].h_out else x
        state = self._states[pos]
        pos += 1
        if pos == _SLOTS:
            for step in self._steps:
                if getattr(step, "history", None) is not None:
                    step.history.wrap()
            pos, state = 0, self._start
        self._pos, self._state = pos, state
        return output, state

    def _run_layers(self, x: Tensor, pos: int) -> Tensor:
        """The layers with the stack's between-layer options (the SRU's) and dense connections."""
        module, last = self.module, len(self._steps) - 1
        if self._between:
            x = module._between_layers(0, x, None)
        features = [x]
        for l, step in enumerate(self._steps):
            step.run(x, pos)
            x = step.h_out
            if self._between:
                x = module._between_layers(l + 1, x, None)
            if self._concat and (l < last or module.dense_output == "concat"):
                features.append(x)
                x = torch.cat(features, dim=-1)
        return x

    def chunk(self, input: Tensor, state: StateLike = None) -> tuple[Tensor, RecurrentState]:
        """T steps: each layer's matrix product for all T at once, then its recurrence step by step
        (for small T: a long sequence runs faster through the module's kernels).

        Args:
            input: (T, B, N), or (B, T, N) with the module's ``batch_first``.
            state: as for :meth:`step`.

        Returns:
            ``(output, state)``: output (T, B, D_out) (or (B, T, D_out) with ``batch_first``) and
            the state after the last step, as the module's forward returns them.

        Raises:
            ValueError, TypeError: as for :meth:`step`; T = 0.

        Example::

            >>> import torch, quasirnn
            >>> from quasirnn.nn.streaming import Stepper
            >>> sru = quasirnn.SRU(4, 8, num_layers=2).eval()
            >>> stepper, x = Stepper(sru), torch.randn(5, 2, 4)
            >>> y1, state = stepper.chunk(x[:2])
            >>> y2, state = stepper.chunk(x[2:], state)
            >>> torch.allclose(torch.cat([y1, y2]), sru(x)[0], atol=1e-6)
            True
        """
        layout = "(B, T, N)" if self.module.batch_first else "(T, B, N)"
        self._check(input, 3, layout)
        x = input.transpose(0, 1) if self.module.batch_first else input
        if x.shape[0] == 0:
            raise ValueError("Stepper.chunk input must have at least one time step (T >= 1)")
        if torch.is_grad_enabled():
            with torch.no_grad():
                out = self._chunk(x, state)
        else:
            out = self._chunk(x, state)
        return (out.transpose(0, 1) if self.module.batch_first else out), self._state

    def _chunk(self, x: Tensor, state: StateLike) -> Tensor:
        if state is not self._state or state is None or x.shape[1] != self._batch:
            self._load(state, x.shape[1])
        histories = self._state.inputs
        module, last = self.module, len(self._steps) - 1
        if self._between:
            x = module._between_layers(0, x, None)
        features = [x]
        for l, step in enumerate(self._steps):
            x = step.run_chunk(x, histories[l].clone() if step.k > 1 else None)
            if self._between:
                x = module._between_layers(l + 1, x, None)
            if self._concat and (l < last or module.dense_output == "concat"):
                features.append(x)
                x = torch.cat(features, dim=-1)
        self._pos, self._state = 0, self._start  # the histories are back at the ring's start
        return x
