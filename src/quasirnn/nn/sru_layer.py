"""One direction of one Simple Recurrent Unit layer (Lei, Zhang, Wang, Dai & Artzi 2017, arXiv
1709.02755): :class:`SRULayer`, with the options of the ``sru`` package's ``SRUCell``."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .._checks import check_int, check_probability
from ..ops import SRU_BACKENDS, forget_mult_unchecked, sru_recurrence_unchecked
from ..ops.backends import check_backend
from ..ops.inputs import check_memory
from .plain_linear import plain_linear

__all__ = ["SRULayer", "SRU_INITS", "SKIP_TERMS"]

SRU_INITS = ("quasirnn", "sru")
#: What a layer's skip term x'_t (the ``sru`` package's name for the highway input) is.
SKIP_TERMS = ("identity", "projection", "none")


class SRULayer(nn.Module):
    r"""A single-direction SRU layer (Lei et al. 2017, §2, eq. 3–7).

    One projection of the input gives the candidate and both gate pre-activations for all t
    at once; only an element-wise recurrence walks time:

    .. math::
        [\tilde x_t; F_t; R_t\,(; x'_t)] = W\, P\, \mathrm{LN}(x_t) \\
        f_t = \sigma(F_t + v_f \odot c_{t-1} + b_f), \quad
        r_t = \sigma(R_t + v_r \odot c_{t-1} + b_r) \\
        c_t = f_t \odot c_{t-1} + (1 - f_t) \odot \tilde x_t, \quad
        h_t = x'_t + m \odot r_t \odot (g(c_t) - x'_t)

    g is the identity (as in the ``sru`` package) or tanh with ``use_tanh=True`` (the 2017
    text); P is an optional low-rank factor (``projection_size``); m is 1 except for the
    ``sru``-style ``dropout`` in training. The skip term :math:`x'_t` (the highway input; the ``sru``
package's name) is, by ``skip_term``:

    * ``"identity"``: features [d·H, (d+1)·H) of the (un-normalised) layer input, d =
      ``direction`` (so the layer input itself when N = H; the half of a D·H input that belongs
      to this direction in an ``sru`` bidirectional layer), times the ``scale_x`` buffer with
      ``rescale=True``;
    * ``"projection"``: a fourth block of the projection;
    * ``"none"``: no skip term, h_t = m ⊙ r_t ⊙ g(c_t) (``sru``'s ``has_skip_term=False``).

    The default (None) is "identity" when N = H, else "projection". With
    ``recurrent_gate=False`` the gates have no :math:`v \odot c_{t-1}` terms (the 2017 text,
    ``sru``'s ``v1=True``): the recurrence is then QRNN f-pooling of window 1 and runs on
    :func:`quasirnn.ops.forget_mult`; otherwise on the fused :func:`quasirnn.ops.sru_recurrence`.

    Args:
        input_size: N, features per input step.
        hidden_size: H, features of the memory and output.
        highway_bias: initial value of :math:`b_r` (negative values favour the highway path).
        layer_norm: LayerNorm over the N input features before the projection (``sru``'s
            pre-normalisation); the skip term keeps the un-normalised input.
        recurrent_gate: include the element-wise recurrent terms :math:`v \odot c_{t-1}`.
        use_tanh: g = tanh instead of the identity.
        skip_term: "identity", "projection", "none" or None (see above). ``highway``, its former
            name, is still accepted.
        direction: d, which H features of the input the identity skip term reads (0 or 1).
        rescale: multiply the identity skip term by ``scale_x`` = √(1 + 2·e^{highway_bias})
            (``sru``'s ``rescale``); a projected skip-term block is scaled so at initialisation.
        projection_size: P > 0 factors the projection as ``linear(proj(x))`` through P features
            (``sru``'s ``projection_size``/``n_proj``); 0 for none.
        dropout: ``sru``'s in-layer dropout: in training, one mask m of shape (B, H) per
            sequence on r ⊙ (g(c) − x'), so the skip term itself is never dropped.
        rnn_dropout: ``sru``'s deprecated variational dropout: in training, one mask (B, N) per
            sequence on the (normalised) input of the projection.
        weight_c_init: if given, v starts U(±weight_c_init) instead of U(±√1.5).
        init: "quasirnn" (default) or "sru": the ``sru`` package's extra rules, W × 0.1 with
            ``layer_norm``, the x̃ block × √(1 − dropout), W × √(1 − rnn_dropout), and no √½ on
            the F and R blocks without ``recurrent_gate`` (``v1``).
        backend: recurrence kernel: "auto", "cpu", "triton", "torch" or "reference" (see :mod:`quasirnn.ops.backends`).
        device, dtype: factory arguments of the parameters, as for ``nn.Linear``.

    Attributes:
        linear: ``nn.Linear(N or P, 3H)`` without bias, output split as [x̃, F, R], or
            ``(N or P, 4H)`` as [x̃, F, R, x'] with a projected skip term. Initialised
            U(±√(3/fan_in)) (variance 1/fan_in), the F and R rows × √½.
        proj: ``nn.Linear(N, P)`` without bias, U(±√(3/N)), or None.
        v: (2, H) parameter [v_f; v_r], U(±√1.5) (variance ½); None when ``recurrent_gate=False``.
        bias: (2, H) parameter [b_f; b_r], b_f = 0 and b_r = ``highway_bias`` initially.
        norm: ``nn.LayerNorm(N)``, or None without ``layer_norm``.
        scale_x: () buffer with ``rescale=True`` (absent otherwise).
        window: always 1 (no input history), for the shared stack logic.

    Shapes: input (T, B, N); ``c0`` (B, H).

    Mixed precision: under ``torch.autocast`` the projection runs in 16 bits; the recurrence
    reads those outputs, with the skip term, ``v``, ``bias`` and ``c0`` cast to match.

    Raises:
        ValueError: sizes that are not positive integers, an unknown backend, skip term or init,
            an identity skip term whose H features do not fit the input, a dropout outside [0, 1).

    Example::

        >>> layer = SRULayer(4, 4, skip_term="identity", rescale=True, dropout=0.1)
        >>> h, c_last, _ = layer(torch.randn(7, 2, 4))
        >>> h.shape, c_last.shape
        (torch.Size([7, 2, 4]), torch.Size([2, 4]))
    """

    window = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        highway_bias: float = 0.0,
        layer_norm: bool = False,
        recurrent_gate: bool = True,
        use_tanh: bool = False,
        *,
        skip_term: Optional[str] = None,
        direction: int = 0,
        rescale: bool = False,
        projection_size: int = 0,
        dropout: float = 0.0,
        rnn_dropout: float = 0.0,
        weight_c_init: Optional[float] = None,
        init: str = "quasirnn",
        backend: str = "auto",
        device=None,
        dtype=None,
        highway: Optional[str] = None,
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            check_int(name, value)
        check_int("projection_size", projection_size, minimum=0)
        check_probability("dropout", dropout)
        check_probability("rnn_dropout", rnn_dropout)
        check_backend(backend, SRU_BACKENDS)  # once, here: the recurrence is then called unchecked
        if init not in SRU_INITS:
            raise ValueError(f"init must be one of {SRU_INITS}, got {init!r}")
        name = "skip_term"
        if highway is not None:  # the former name
            if skip_term is not None:
                raise ValueError("give skip_term or its former name highway, not both")
            name, skip_term = "highway", highway
        if skip_term is None:
            skip_term = "identity" if input_size == hidden_size else "projection"
        if skip_term not in SKIP_TERMS:
            raise ValueError(f"{name} must be one of {SKIP_TERMS} or None, got {skip_term!r}")
        if direction not in (0, 1):
            raise ValueError(f"direction must be 0 or 1, got {direction!r}")
        if skip_term == "identity" and (direction + 1) * hidden_size > input_size:
            raise ValueError(
                f"an identity skip term reads input features [{direction}*H, {direction + 1}*H) = "
                f"[{direction * hidden_size}, {(direction + 1) * hidden_size}), but input_size is {input_size}"
            )
        factory = dict(device=device, dtype=dtype)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.highway_bias = float(highway_bias)
        self.recurrent_gate = bool(recurrent_gate)
        self.use_tanh = bool(use_tanh)
        self.skip_term = skip_term
        self.direction = direction
        self.rescale = bool(rescale)
        self.projection_size = projection_size
        self.dropout = float(dropout)
        self.rnn_dropout = float(rnn_dropout)
        self.weight_c_init = None if weight_c_init is None else float(weight_c_init)
        self.init = init
        self.backend = backend
        self.projects_skip = skip_term == "projection"
        fan_in = projection_size or input_size
        self.proj = nn.Linear(input_size, projection_size, bias=False, **factory) if projection_size else None
        self.linear = nn.Linear(fan_in, (4 if self.projects_skip else 3) * hidden_size, bias=False, **factory)
        if self.recurrent_gate:
            self.v = nn.Parameter(torch.empty(2, hidden_size, **factory))
        else:
            self.register_parameter("v", None)
        self.bias = nn.Parameter(torch.empty(2, hidden_size, **factory))
        self.norm = nn.LayerNorm(input_size, **factory) if layer_norm else None
        if self.rescale:  # a buffer, as in sru (saved, moved and cast with the module)
            self.register_buffer("scale_x", torch.empty((), **factory))
        else:
            self.scale_x = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The initialisation described under Attributes and ``init`` (the ``sru`` package's
        variances; ``init="sru"`` adds its remaining rules)."""
        H = self.hidden_size
        sru = self.init == "sru"
        scale = math.sqrt(1.0 + 2.0 * math.exp(self.highway_bias))
        with torch.no_grad():
            w = self.linear.weight
            bound = math.sqrt(3.0 / self.linear.in_features)
            w.uniform_(-bound, bound)
            if self.proj is not None:
                bound = math.sqrt(3.0 / self.input_size)
                self.proj.weight.uniform_(-bound, bound)
            if sru and self.dropout > 0:
                w[:H].mul_(math.sqrt(1.0 - self.dropout))
            if sru and self.rnn_dropout > 0:
                w.mul_(math.sqrt(1.0 - self.rnn_dropout))
            if sru and self.norm is not None:
                w.mul_(0.1)
            if self.rescale and self.projects_skip:
                w[3 * H :].mul_(scale)
            if self.recurrent_gate or not sru:
                w[H : 3 * H].mul_(math.sqrt(0.5))
            if self.v is not None:
                a = math.sqrt(1.5) if self.weight_c_init is None else self.weight_c_init
                self.v.uniform_(-a, a)
            self.bias[0].zero_()
            self.bias[1].fill_(self.highway_bias)
            if self.scale_x is not None:
                self.scale_x.fill_(scale)
        if self.norm is not None:
            self.norm.reset_parameters()

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.highway_bias:
            s += f", highway_bias={self.highway_bias}"
        if not self.recurrent_gate:
            s += ", recurrent_gate=False"
        if self.use_tanh:
            s += ", use_tanh=True"
        s += f", skip_term={self.skip_term!r}" + (f", direction={self.direction}" if self.direction else "")
        for name in ("rescale",):
            if getattr(self, name):
                s += f", {name}=True"
        for name in ("projection_size", "dropout", "rnn_dropout"):
            if getattr(self, name):
                s += f", {name}={getattr(self, name)}"
        if self.init != "quasirnn":
            s += f", init={self.init!r}"
        return s

    def _sequence_mask(self, like: Tensor, size: int, p: float) -> Tensor:
        """One dropout mask (B, size) per sequence, values 0 or 1/(1 − p)."""
        return like.new_empty(like.shape[1], size).bernoulli_(1.0 - p).div_(1.0 - p)

    def forward(
        self, input: Tensor, c0: Optional[Tensor] = None, prev_inputs: Optional[Tensor] = None,
        valid: Optional[Tensor] = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Run the layer over a whole sequence.

        Args:
            input: (T, B, N) float tensor, T ≥ 1.
            c0: (B, H) initial memory, or None for zeros.
            prev_inputs: ignored (an SRU reads no input history); accepted so that the layer
                has the calling convention of :class:`~quasirnn.QRNNLayer`.
            valid: (T, B) bool, True on each sequence's real steps (right padding), or None.
                On padded steps the forget gate is saturated to exactly 1, so the memory stays
                that of the last real step, and the output is zero.

        Returns:
            ``(output, c_last, last_inputs)``: output h (T, B, H); the final memory c_T (B, H);
            an empty (0, B, N) tensor (no input history to carry).
        """
        T, B, _ = input.shape
        H = self.hidden_size
        z = input if self.norm is None else self.norm(input)
        if self.training and self.rnn_dropout > 0:
            z = z * self._sequence_mask(z, self.input_size, self.rnn_dropout)
        if self.proj is not None:
            z = self.proj(z)
        linear = self._modules["linear"]  # bias-free; called as F.linear unless hooked or replaced
        u = F.linear(z, linear._parameters["weight"]) if plain_linear(linear) else linear(z)  # (T, B, 3H or 4H)
        dtype = u.dtype  # 16-bit under torch.autocast
        pad = None if valid is None else ~valid[..., None]  # (T, B, 1)
        if pad is not None:  # σ(F + 1e4 + …) is exactly 1 in every float type: c_t = c_{t-1}
            # in place (the projection's backward does not read its output): one pass over the
            # F slice instead of a copy of all of u
            u[..., H : 2 * H].masked_fill_(pad, 1e4)
        if self.skip_term == "identity":
            d = self.direction
            skip = input if input.shape[-1] == H else input[..., d * H : (d + 1) * H]
            skip = skip if self.scale_x is None else skip * self.scale_x
            skip = skip if skip.dtype == dtype else skip.to(dtype)
        elif self.skip_term == "none":
            skip = u.new_zeros(T, B, H)
        else:
            skip = None  # the fourth block of u
        bias = self.bias if self.bias.dtype == dtype else self.bias.to(dtype)
        if c0 is not None:
            c0 = check_memory(c0, u, H, "the projection")
        if self.recurrent_gate:  # u, the skip term, v and b are this layer's own: no checks
            v = self.v if self.v.dtype == dtype else self.v.to(dtype)
            h, _, c_last = sru_recurrence_unchecked(u, v, bias, c0, skip, self.use_tanh, self.backend)
        else:
            parts = u.split(H, dim=-1)
            f = torch.sigmoid(parts[1] + bias[0])
            r = torch.sigmoid(parts[2] + bias[1])
            c = forget_mult_unchecked(f, parts[0], c0, None, self.backend)
            g = torch.tanh(c) if self.use_tanh else c
            h = torch.lerp(parts[3] if skip is None else skip, g, r)  # r ⊙ g + (1 − r) ⊙ x'
            c_last = c[-1]
        if self.training and self.dropout > 0:  # h = x' + m ⊙ r ⊙ (g − x'), the skip term undropped
            mask = self._sequence_mask(h, H, self.dropout)
            x_prime = u[..., 3 * H :] if skip is None else skip
            h = torch.addcmul(x_prime, h - x_prime, mask) if self.skip_term != "none" else h * mask
        if pad is not None:
            h = h.masked_fill(pad, 0.0)
        return h, c_last, input.new_empty(0, B, self.input_size)
