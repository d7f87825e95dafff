"""One QRNN layer in one direction: masked convolution over time, then fused pooling."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .._checks import check_int, check_probability, check_proj_size
from ..ops import BACKENDS, GATE_COUNTS, qrnn_pooling_unchecked
from ..ops.backends import check_backend
from ..ops.inputs import check_memory
from .plain_linear import plain_linear


class QRNNLayer(nn.Module):
    r"""A single-direction Quasi-Recurrent layer (Bradbury et al. 2016, §2).

    The gate pre-activations come from a causal (masked) convolution of width ``window`` (k)
    over time, implemented as one linear map of the concatenated window
    :math:`[x_{t-k+1}, \dots, x_t]` (oldest first):

    .. math::
        [Z; F; O; I] = W [x_{t-k+1}; \dots; x_t] + b, \quad
        z = \tanh(Z),\ f = \sigma(F),\ o = \sigma(O),\ i = \sigma(I)

    followed by pooling (eq. 3–5): f-pooling :math:`h_t = f_t \odot h_{t-1} + (1-f_t) \odot z_t`;
    fo-pooling :math:`c_t = f_t \odot c_{t-1} + (1-f_t) \odot z_t,\ h_t = o_t \odot c_t`;
    ifo-pooling :math:`c_t = f_t \odot c_{t-1} + i_t \odot z_t,\ h_t = o_t \odot c_t`.
    With ``zoneout`` p > 0, in training mode :math:`f = 1 - m \odot (1 - f)` with
    :math:`m \sim \text{Bernoulli}(1-p)` per element (§2.1; unscaled, so f stays in [0, 1]);
    for ifo-pooling the input gate becomes :math:`m \odot i` too, so that a zoned-out channel
    keeps its previous memory exactly in every pooling form.

    Args:
        input_size: N, features per input step.
        hidden_size: H, features of the memory and output.
        window: k ≥ 1, the convolution width in time steps.
        pooling: "f", "fo" or "ifo".
        zoneout: probability p ∈ [0, 1) that a channel keeps its previous memory (training only).
        bias: whether ``linear`` has a bias.
        backend: pooling kernel: "auto", "cpu", "triton", "torch" or "reference" (see :mod:`quasirnn.ops.backends`).
        proj_size: P > 0 projects the output, h_t = W_hr (o_t ⊙ c_t) with ``proj`` (P, H) and no
            bias, as ``nn.LSTM``'s ``proj_size`` (the memory stays H wide); 0 (default): none.
        zoneout_eval: at evaluation, replace zoneout's random keep-mask m by its expectation
            1 − p: f = 1 − (1 − p)(1 − f) (and i scaled by 1 − p for ifo), as salesforce
            pytorch-qrnn evaluates (its F × (1 − p)); default False: no zoneout at evaluation.
        device, dtype: factory arguments of the parameters, as for ``nn.Linear``.

    Attributes:
        linear: ``nn.Linear(window * input_size, G * hidden_size)``; its output splits as
            Z, F, O, I (G = 2, 3, 4 for f, fo, ifo). This layout is fixed so weights stay portable.
        proj: ``nn.Linear(H, P, bias=False)`` with ``proj_size`` P, else None.

    Shapes: input (T, B, N); ``c0`` (B, H); ``prev_inputs`` (k−1, B, N).

    Mixed precision: under ``torch.autocast`` the gate projection runs in float16/bfloat16 and
    the pooling kernel reads those gates, accumulates the recurrence in float32 and returns
    16-bit outputs; ``c0`` and ``prev_inputs`` are cast to match.

    Example::

        >>> import torch
        >>> layer = QRNNLayer(4, 6, window=2, pooling="fo")
        >>> h, c_last, last_inputs = layer(torch.randn(5, 3, 4))
        >>> h.shape, c_last.shape, last_inputs.shape
        (torch.Size([5, 3, 6]), torch.Size([3, 6]), torch.Size([1, 3, 4]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        window: int = 1,
        pooling: str = "fo",
        zoneout: float = 0.0,
        bias: bool = True,
        *,
        backend: str = "auto",
        proj_size: int = 0,
        zoneout_eval: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("window", window)):
            check_int(name, value)
        if pooling not in GATE_COUNTS:
            raise ValueError(f"pooling must be one of {tuple(GATE_COUNTS)}, got {pooling!r}")
        check_probability("zoneout", zoneout)
        check_backend(backend, BACKENDS)  # once, here: the pooling is then called unchecked
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.window = window
        self.pooling = pooling
        self.zoneout = float(zoneout)
        self.backend = backend
        self.proj_size = check_proj_size(proj_size, hidden_size)
        self.zoneout_eval = bool(zoneout_eval)
        factory = {"device": device, "dtype": dtype}
        self.linear = nn.Linear(window * input_size, GATE_COUNTS[pooling] * hidden_size, bias=bias, **factory)
        self.proj = nn.Linear(hidden_size, proj_size, bias=False, **factory) if proj_size else None

    def __prepare_scriptable__(self):
        from .stack import _no_script

        _no_script(type(self).__name__)

    def extra_repr(self) -> str:
        s = (f"{self.input_size}, {self.hidden_size}, window={self.window}, pooling={self.pooling!r}, "
             f"zoneout={self.zoneout}")
        if self.zoneout_eval:
            s += ", zoneout_eval=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        return s

    def forward(
        self, input: Tensor, c0: Optional[Tensor] = None, prev_inputs: Optional[Tensor] = None,
        valid: Optional[Tensor] = None, gate_bias: Optional[Tensor] = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Run the layer over a whole sequence.

        Args:
            input: (T, B, N) float tensor, T ≥ 1.
            c0: (B, H) initial memory, or None for zeros.
            prev_inputs: (k−1, B, N) the inputs just before ``input[0]`` (oldest first), or None
                for zeros (the start of a sequence).
            valid: (T, B) bool, True on each sequence's real steps (a prefix of every column:
                right padding), or None when every step is real. Padded steps keep the memory
                exactly (the zoneout mechanism with the keep-mask 0) and output zeros.
            gate_bias: (B, G·H) added to the gate pre-activations of every step before the
                activations (order Z, F, O, I like ``linear``'s output), or None. The decoder of
                the paper's encoder–decoder (§2.1) adds V^l h̃_T^l this way.

        Returns:
            ``(output, c_last, last_inputs)``: output h (T, B, H), (T, B, P) with ``proj_size``; the final memory (B, H) at each
            sequence's last real step; the last k−1 real inputs of each sequence (k−1, B, N), which
            continue the sequence exactly when passed back as ``prev_inputs``.
        """
        # the convolution's bias goes to the pooling kernel, which adds it in its own pass
        bias = self._fused_bias()
        gates, last_inputs = self._gates(input, prev_inputs, valid, gate_bias, bias is None)
        mask = keep = None
        if valid is not None or self.zoneout > 0:  # else there is no mask: skip the call
            mask, keep = self.zoneout_mask(gates, valid)
        if c0 is not None:
            c0 = self._memory(c0, gates)
        h, _, c_last = qrnn_pooling_unchecked(gates, c0, self.pooling, mask, self.backend, bias)
        if self.proj is not None:
            h = self.proj(h)  # h_t = W_hr (o_t ⊙ c_t), nn.LSTM's proj_size
        if keep is not None:
            h = h * keep
        return h, c_last, last_inputs

    def memory_and_gate(
        self, input: Tensor, c0: Optional[Tensor] = None, prev_inputs: Optional[Tensor] = None,
        valid: Optional[Tensor] = None, gate_bias: Optional[Tensor] = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        r"""Run an fo-pooling layer but return the un-gated memory c and the output gate o apart,
        instead of h = o ⊙ c: what the attention decoder's last layer needs (paper §2.1,
        :math:`h_t^L = o_t \odot (W_k k_t + W_c c_t^L)`, with k_t the attention over c_t^L).

        The memory is the same recurrence as :meth:`forward`'s (f-pooling of Z, F, the same
        zoneout mask and padding), so ``o * c`` equals ``forward``'s h for the same mask.

        Args:
            input, c0, prev_inputs, valid, gate_bias: as for :meth:`forward`.

        Returns:
            ``(c, o, c_last, last_inputs)``: the memories c (T, B, H) of every step, the output
            gate o = σ(O) (T, B, H), the final memory (B, H) and the last k−1 inputs
            (k−1, B, N), as :meth:`forward` returns them. ``proj`` is not applied.

        Raises:
            ValueError: a layer whose pooling is not "fo".

        Example::

            >>> import torch
            >>> layer = QRNNLayer(4, 6, window=2)
            >>> c, o, c_last, last_inputs = layer.memory_and_gate(torch.randn(5, 3, 4))
            >>> c.shape, o.shape, c_last.shape, last_inputs.shape
            (torch.Size([5, 3, 6]), torch.Size([5, 3, 6]), torch.Size([3, 6]), torch.Size([1, 3, 4]))
        """
        if self.pooling != "fo":
            raise ValueError(f"memory_and_gate needs an fo-pooling layer, got pooling={self.pooling!r}")
        gates, last_inputs = self.gates(input, prev_inputs, valid, gate_bias)
        mask, _ = self.zoneout_mask(gates, valid)
        H = self.hidden_size
        c, _, c_last = qrnn_pooling_unchecked(gates[..., : 2 * H], self._memory(c0, gates), "f", mask, self.backend)
        return c, torch.sigmoid(gates[..., 2 * H : 3 * H]), c_last, last_inputs

    def _memory(self, c0: Optional[Tensor], gates: Tensor) -> Optional[Tensor]:
        """``c0`` checked as (B, H) on the gates' device and cast to their dtype (16-bit gates under
        ``torch.autocast``); the gates and the mask are this layer's own, so the pooling op is
        called without its checks."""
        if c0 is None:
            return None
        return check_memory(c0, gates, self.hidden_size, "the gates")

    def zoneout_mask(self, gates: Tensor, valid: Optional[Tensor] = None) -> tuple[Optional[Tensor], Optional[Tensor]]:
        """The keep-mask m (T, B, H) the pooling reads (§2.1), and the padding mask it contains.

        In training with zoneout p > 0, m ~ Bernoulli(1 − p) per element; at evaluation with
        ``zoneout_eval``, its expectation 1 − p; else none. Padded steps (``valid`` False) get
        m = 0, so they keep the memory exactly.

        Args:
            gates: (T, B, G·H) the gate pre-activations (gives the shape, dtype and device).
            valid: (T, B) bool or None.

        Returns:
            ``(mask, keep)``: mask (T, B, H) or None; keep (T, B, 1) the valid steps in the gates'
            dtype, or None without ``valid``.
        """
        T, B = gates.shape[:2]
        mask = None
        if self.training and self.zoneout > 0:
            mask = torch.empty(T, B, self.hidden_size, dtype=gates.dtype, device=gates.device)
            mask.bernoulli_(1.0 - self.zoneout)
        elif self.zoneout_eval and self.zoneout > 0:  # the mask's expectation (pytorch-qrnn at eval)
            mask = torch.full((T, B, self.hidden_size), 1.0 - self.zoneout, dtype=gates.dtype, device=gates.device)
        keep = None
        if valid is not None:
            keep = valid[..., None].to(gates.dtype)  # (T, B, 1)
            mask = keep.expand(T, B, self.hidden_size) if mask is None else mask * keep
        return mask, keep

    def _fused_bias(self) -> Optional[Tensor]:
        """The bias of ``linear`` when :meth:`forward` leaves it to the CPU pooling kernel (which adds
        it as it reads the gates, so the projection skips its copy of the bias into the output):
        a plain ``nn.Linear`` without hooks, on the CPU, with the "auto" or "cpu" backend. Else
        None: a replaced or wrapped module (quantised, parametrised, hooked) runs as a module,
        bias included, and on a GPU the matrix product adds it as before."""
        linear = self._modules["linear"]
        if not plain_linear(linear):
            return None
        bias = linear._parameters["bias"]
        if bias is None or bias.device.type != "cpu" or self.backend not in ("auto", "cpu"):
            return None
        return bias

    def gates(
        self, input: Tensor, prev_inputs: Optional[Tensor] = None, valid: Optional[Tensor] = None,
        gate_bias: Optional[Tensor] = None,
    ) -> tuple[Tensor, Tensor]:
        """The gate pre-activations of every step (paper eq. 1–2, before the activations).

        Args:
            input, prev_inputs, valid: as for :meth:`forward`.
            gate_bias: (B, G·H) added to every step's pre-activations, or None.

        Returns:
            ``(gates, last_inputs)``: gates (T, B, G·H) in the order Z, F, O, I; the last k−1
            real inputs of each sequence (k−1, B, N), as :meth:`forward` returns them.

        Raises:
            ValueError: ``gate_bias`` not of shape (B, G·H).
        """
        return self._gates(input, prev_inputs, valid, gate_bias, True)

    def _gates(self, input: Tensor, prev_inputs: Optional[Tensor], valid: Optional[Tensor],
               gate_bias: Optional[Tensor], with_bias: bool) -> tuple[Tensor, Tensor]:
        """:meth:`gates`; without ``with_bias``, those of a plain ``nn.Linear`` (:meth:`_fused_bias`)
        leave out its bias."""
        T, B, _ = input.shape
        k = self.window
        if k == 1:
            windowed = input
            last_inputs = input.new_empty(0, B, self.input_size)
        else:
            if prev_inputs is None:
                prev_inputs = input.new_zeros(k - 1, B, self.input_size)
            extended = torch.cat([prev_inputs.to(input.dtype), input], 0)  # (T + k - 1, B, N)
            windowed = torch.cat([extended[j : j + T] for j in range(k)], dim=-1)  # oldest first
            if valid is None:
                last_inputs = extended[T:]
            else:  # x_t sits at extended[t + k - 1]: each sequence's last k-1 real inputs
                idx = valid.sum(0)[None, :] + torch.arange(k - 1, device=input.device)[:, None]
                last_inputs = extended.gather(0, idx[..., None].expand(k - 1, B, self.input_size))
        # (T, B, G*H): Z, F, O, I; _modules is where self.linear lives (Module.__getattr__ costs ~0.5 µs a call)
        linear = self._modules["linear"]
        gates = linear(windowed) if with_bias else F.linear(windowed, linear._parameters["weight"])
        if gate_bias is not None:
            if tuple(gate_bias.shape) != (B, self.linear.out_features):
                raise ValueError(f"gate_bias must have shape (B, G*H) = {(B, self.linear.out_features)}, "
                                 f"got {tuple(gate_bias.shape)}")
            gates = gates + gate_bias.to(gates.dtype)
        return gates, last_inputs
