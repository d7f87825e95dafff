"""Weights from other QRNN implementations: salesforce ``pytorch-qrnn`` and AWD-QRNN.

``pytorch-qrnn`` (the library behind AWD-QRNN) differs from :class:`quasirnn.QRNN` in two
conventions, which :func:`convert_linear` undoes:

* Its gate F multiplies the *new candidate*: ``c_t = F_t ⊙ z_t + (1 − F_t) ⊙ c_{t−1}``, so its F is
  1 − the paper's forget gate f. Since ``1 − σ(a) = σ(−a)``, the F rows of the weight and bias
  are negated.
* Its window-2 input is ``[x_t, x_{t−1}]`` (current step first); ours is oldest first,
  ``[x_{t−1}, x_t]``, so the column blocks of the weight are reversed.

The gate order Z, F, O and the activations (tanh, sigmoid, sigmoid) are the same. Zoneout carries
no weights, but pytorch-qrnn also applies it at evaluation, as F × (1 − p); ``from_torchqrnn(...,
zoneout=p)`` gives a model with ``zoneout=p, zoneout_eval=True``, which does the same (f = 1 − (1 −
p)(1 − f) at evaluation) and trains with the same zoneout.
"""

from __future__ import annotations

import re
from typing import Mapping, Optional

import torch
from torch import Tensor

from .nn import QRNN, SRU

__all__ = ["convert_linear", "from_torchqrnn", "from_sru", "sru_state_to_quasirnn", "quasirnn_state_to_sru"]

# Where pytorch-qrnn layers keep their projection: plain, or wrapped by AWD-LSTM's WeightDrop
# (which stores the un-dropped weight as ``weight_raw``, under ``module.`` in some versions).
_WEIGHT_NAMES = ("linear.weight", "linear.weight_raw", "linear.module.weight_raw", "linear.module.weight")
_BIAS_NAMES = ("linear.bias", "linear.module.bias")


def convert_linear(weight: Tensor, bias: Optional[Tensor], window: int, output_gate: bool = True
                   ) -> tuple[Tensor, Optional[Tensor]]:
    """One pytorch-qrnn layer's ``linear`` as the :class:`quasirnn.QRNNLayer` ``linear``.

    Args:
        weight: (G·H, k·N) with G = 3 (Z, F, O; ``output_gate=True``) or 2 (Z, F), columns in
            pytorch-qrnn's window order ``[x_t, x_{t−1}, …]``.
        bias: (G·H,) or None.
        window: k, the layer's window (1 or 2 in pytorch-qrnn).
        output_gate: whether the layer has the O gate (fo-pooling) or not (f-pooling).

    Returns:
        ``(weight, bias)`` for quasirnn: F rows and bias negated (paper §2's forget gate
        f = 1 − pytorch-qrnn's F), columns oldest step first.

    Raises:
        ValueError: shapes that do not split into G gates or k window steps.
    """
    gates = 3 if output_gate else 2
    if weight.dim() != 2 or weight.shape[0] % gates or weight.shape[1] % window:
        raise ValueError(
            f"expected a linear weight of shape ({gates}*H, {window}*N) for window {window} "
            f"{'with' if output_gate else 'without'} output gate, got {tuple(weight.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"expected a bias of shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    H = weight.shape[0] // gates
    sign = torch.ones(weight.shape[0], dtype=weight.dtype, device=weight.device)
    sign[H : 2 * H] = -1.0  # F rows
    steps = weight.shape[1] // window
    blocks = weight.split(steps, dim=1)  # [x_t, x_{t-1}, ...]
    weight = torch.cat(blocks[::-1], dim=1) * sign[:, None]
    return weight, (None if bias is None else bias * sign)


def _find(state_dict: Mapping[str, Tensor], prefix: str, names) -> Optional[Tensor]:
    for name in names:
        if prefix + name in state_dict:
            return state_dict[prefix + name]
    return None


def from_torchqrnn(
    state_dict: Mapping[str, Tensor],
    *,
    input_size: Optional[int] = None,
    window: Optional[int] = None,
    output_gate: bool = True,
    prefix: str = "",
    zoneout: float = 0.0,
) -> QRNN:
    """A :class:`quasirnn.QRNN` with the weights of a pytorch-qrnn ``QRNN`` or ``QRNNLayer``.

    Accepts the state dict of a ``torchqrnn.QRNN`` (keys ``layers.{l}.linear.weight/bias``) or of
    one ``QRNNLayer`` (``linear.weight/bias``), under ``prefix`` — e.g. ``prefix="rnns.0."`` for
    the first layer of an AWD-QRNN language model, whose layers differ in size and window and
    are converted one at a time. WeightDrop's ``weight_raw`` names are understood.

    The result computes the same outputs and final memories as the original (fo-pooling with
    ``output_gate=True``, else f-pooling), in eval mode; the original's last memory per layer is
    ``state.c``. It has the dtype and device of the given weights.

    Args:
        state_dict: tensors by name.
        input_size: N of the first layer; needed (or ``window``) to tell the window of the first
            layer from its weight's width k·N. Upper layers' windows follow from their sizes.
        window: k of the first layer, the alternative to ``input_size``.
        output_gate: whether the layers have an output gate (pytorch-qrnn's default: True).
        prefix: the key prefix of the QRNN inside a larger model's state dict.
        zoneout: the ``zoneout`` p the pytorch-qrnn model was built with. pytorch-qrnn scales F by
            1 − p at evaluation, so its eval outputs depend on p; the result gets ``zoneout=p``
            and ``zoneout_eval=True`` and then matches them (and zones out alike in training).
            0 (default): no zoneout.

    Example::

        >>> import torch
        >>> from quasirnn.convert import from_torchqrnn
        >>> sd = {"layers.0.linear.weight": torch.randn(24, 2 * 5), "layers.0.linear.bias": torch.randn(24)}
        >>> qrnn = from_torchqrnn(sd, input_size=5, zoneout=0.25).eval()
        >>> qrnn(torch.randn(7, 2, 5))[0].shape
        torch.Size([7, 2, 8])

    Raises:
        KeyError: no pytorch-qrnn layer weights under ``prefix``.
        ValueError: sizes that do not fit together, or layers whose hidden sizes or windows differ
            (not expressible as one ``quasirnn.QRNN``; convert them one by one with ``prefix``);
            ``zoneout`` outside [0, 1).
    """
    layer_prefixes = []
    indices = sorted({int(m.group(1)) for k in state_dict if (m := re.match(re.escape(prefix) + r"layers\.(\d+)\.", k))})
    if indices:
        layer_prefixes = [f"{prefix}layers.{i}." for i in indices]
        if indices != list(range(len(indices))):
            raise ValueError(f"layer indices under {prefix!r} are not 0..L-1: {indices}")
    elif _find(state_dict, prefix, _WEIGHT_NAMES) is not None:
        layer_prefixes = [prefix]
    else:
        raise KeyError(f"no pytorch-qrnn layer weights (layers.N.linear.weight or linear.weight) under prefix {prefix!r}")
    if input_size is None and window is None:
        raise ValueError("give input_size or window: the first layer's weight width is window * input_size")

    gates = 3 if output_gate else 2
    converted, sizes, windows = [], [], []
    n_in = input_size
    for lp in layer_prefixes:
        weight = _find(state_dict, lp, _WEIGHT_NAMES)
        bias = _find(state_dict, lp, _BIAS_NAMES)
        if weight is None:
            raise KeyError(f"no linear weight under {lp!r}")
        if weight.dim() != 2 or weight.shape[0] % gates:
            raise ValueError(f"{lp}linear weight has shape {tuple(weight.shape)}, not ({gates}*H, k*N)")
        if n_in is None:  # first layer, window given
            if weight.shape[1] % window:
                raise ValueError(f"{lp}linear weight width {weight.shape[1]} is not a multiple of window {window}")
            n_in = weight.shape[1] // window
        if weight.shape[1] % n_in:
            raise ValueError(f"{lp}linear weight width {weight.shape[1]} is not a multiple of its input size {n_in}")
        k = weight.shape[1] // n_in
        converted.append(convert_linear(weight, bias, k, output_gate))
        sizes.append((n_in, weight.shape[0] // gates))
        windows.append(k)
        n_in = weight.shape[0] // gates
    hidden = {h for _, h in sizes}
    if len(hidden) > 1 or len(set(windows)) > 1:
        raise ValueError(
            f"the layers have hidden sizes {[h for _, h in sizes]} and windows {windows}; one quasirnn.QRNN needs "
            f"equal ones: convert each layer with prefix='...layers.N.' (or 'rnns.N.' for AWD-QRNN)"
        )
    qrnn = QRNN(sizes[0][0], sizes[0][1], num_layers=len(sizes), window=windows[0],
                pooling="fo" if output_gate else "f", bias=converted[0][1] is not None,
                zoneout=zoneout, zoneout_eval=zoneout > 0)
    qrnn.to(dtype=converted[0][0].dtype, device=converted[0][0].device)  # the weights' own precision
    with torch.no_grad():
        for layer, (weight, bias) in zip(qrnn.layers, converted):
            layer.linear.weight.copy_(weight)
            if bias is not None:
                layer.linear.bias.copy_(bias)
    return qrnn


# --------------------------------------------------------------------------- the sru package


def _move_directions(c: Tensor, num_directions: int, axis: int, layout: str) -> Tensor:
    """``c`` (3-D) with its D directions moved from dimension ``axis`` to the other end: axis -1
    turns (L, B, D·H) into (L·D, B, H), axis 0 the reverse; ``layout`` names ``c``'s in the error.

    Raises:
        ValueError: ``c`` is not 3-D, or its dimension ``axis`` is not divisible by ``num_directions``.
    """
    if c.dim() != 3 or c.shape[axis] % num_directions:
        raise ValueError(f"expected {layout} with D = {num_directions}, got shape {tuple(c.shape)}")
    A, B, C = c.shape
    D = num_directions
    if axis == 0:  # (L·D, B, H) -> (L, D, B, H) -> (L, B, D, H)
        return c.reshape(A // D, D, B, C).transpose(1, 2).reshape(A // D, B, -1)
    return c.reshape(A, B, D, C // D).transpose(1, 2).reshape(A * D, B, -1)  # (L, D, B, H) -> (L·D, B, H)


def sru_state_to_quasirnn(c: Tensor, num_directions: int) -> Tensor:
    """An ``sru.SRU`` memory tensor (L, B, D·H) as this package's ``hx`` / ``state.c`` (L·D, B, H).

    Raises:
        ValueError: ``c`` is not 3-D with a last dimension divisible by ``num_directions``.

    Example::

        >>> sru_state_to_quasirnn(torch.zeros(2, 3, 8), 2).shape
        torch.Size([4, 3, 4])
    """
    return _move_directions(c, num_directions, -1, "an sru state (L, B, D*H)")


def quasirnn_state_to_sru(c: Tensor, num_directions: int) -> Tensor:
    """``state.c`` (L·D, B, H) as ``sru.SRU``'s returned memories (L, B, D·H), [forward, backward].

    Raises:
        ValueError: ``c`` is not 3-D with a first dimension divisible by ``num_directions``.

    Example::

        >>> c = torch.randn(4, 3, 4)  # 2 layers x 2 directions, batch 3, H = 4
        >>> quasirnn_state_to_sru(c, 2).shape
        torch.Size([2, 3, 8])
        >>> torch.equal(sru_state_to_quasirnn(quasirnn_state_to_sru(c, 2), 2), c)  # the inverse
        True
    """
    return _move_directions(c, num_directions, 0, "a state (L*D, B, H)")


def _copy_norm(dst, src) -> None:
    dst.eps = src.eps
    if src.weight is not None:
        dst.weight.copy_(src.weight)
    if src.bias is not None:
        dst.bias.copy_(src.bias)


def from_sru(module) -> SRU:
    """A :class:`quasirnn.SRU` equal to an ``sru.SRU`` (the ``sru`` package, 2.x).

    The result computes the same outputs and final memories in eval mode, padded batches and
    bidirectional stacks included; it has the module's dtype, device and training mode, and
    trains alike (``dropout_mode="sru"``, ``init="sru"``). Mapping of the options:

    ===================================  ===========================================================
    ``sru.SRU``                          ``quasirnn.SRU``
    ===================================  ===========================================================
    positional arguments 1–13            the same, in the same order (``v1`` ≡ ``recurrent_gate=False``)
    N ≠ D·H → 4 matrices, else 3         ``skip_rule="sru"`` (an identity skip term reads, in direction
                                         d, input features [d·H, (d+1)·H))
    ``dropout`` (inside each layer)      ``dropout_mode="sru"``
    ``normalize_after``, ``rescale``,    the same keywords (``scale_x`` buffers copied)
    ``weight_c_init``,
    ``proj_input_to_hidden_first``
    ``nn_rnn_compatible_return``         none: ``state.c`` is always (L·D, B, H); see
                                         :func:`quasirnn_state_to_sru`
    ``amp_recurrence_fp16``              none (the recurrence follows the projection's dtype)
    ``custom_m``                         not convertible (ValueError)
    ===================================  ===========================================================

    Weights: ``rnn_lst[l].weight`` (N_l or P, D·H·k) viewed (·, D, H, k) gives, for direction d,
    ``layers[l·D + d].linear.weight`` (k·H, ·) with blocks [x̃, F, R, x'] = the k matrices;
    ``weight_proj`` (N_l, P) → ``proj.weight`` (P, N_l); ``weight_c`` and ``bias`` (2·D·H) viewed
    (2, D, H) → ``v`` and ``bias`` (2, H); the pre-norm ``layer_norm`` → ``norm`` of both
    directions, the post-norm → ``output_norms[l]``. ``sru`` shares ``weight_proj`` and the
    pre-norm between a layer's two directions; here each direction gets a copy (equal outputs;
    training updates the copies separately; likewise ``rnn_dropout`` draws one mask per
    direction where sru draws one per layer). ``v1`` layers whose ``weight_c`` is not all zero
    keep ``recurrent_gate=True`` with those weights.

    Calls: sru's ``c0`` (L, B, D·H) is ``hx = sru_state_to_quasirnn(c0, D)``; its returned memories
    are ``quasirnn_state_to_sru(state.c, D)``; its ``mask_pad`` (T, B), non-zero on padding, is
    ``lengths = (mask_pad == 0).sum(0)`` for right-padded batches (the only padding expressible
    here). Padded outputs: zero here; sru gives zero too, except LayerNorm's bias with
    ``normalize_after``.

    Args:
        module: an ``sru.SRU``.

    Returns:
        the converted :class:`quasirnn.SRU`.

    Raises:
        TypeError: ``module`` is not an ``sru.SRU`` (no ``rnn_lst`` of SRU cells).
        ValueError: ``custom_m`` layers, or cells whose options differ from one another or
            whose weights do not have the shapes their options imply.

    Example::

        >>> import importlib.util
        >>> if importlib.util.find_spec("sru") is None:  # the optional sru package is missing
        ...     print(True)
        ... else:
        ...     import sru
        ...     theirs = sru.SRU(8, 16, 2, bidirectional=True, layer_norm=True).eval()
        ...     ours = from_sru(theirs)
        ...     x = torch.randn(5, 3, 8)
        ...     with torch.no_grad():
        ...         print(torch.allclose(ours(x)[0], theirs(x)[0], atol=1e-5))
        True
    """
    cells = getattr(module, "rnn_lst", None)
    if cells is None or not hasattr(module, "num_directions") or not len(cells):
        raise TypeError(f"from_sru expects an sru.SRU module (with rnn_lst of SRUCell), got {type(module).__name__}")
    if any(getattr(cell, "custom_m", None) is not None for cell in cells):
        raise ValueError("sru layers with custom_m compute U with an arbitrary module: not convertible")
    first = cells[0]
    for name in ("activation_type", "highway_bias", "has_skip_term", "rescale", "v1", "normalize_after", "rnn_dropout"):
        values = {getattr(cell, name) for cell in cells}
        if len(values) > 1:
            raise ValueError(f"sru cells differ in {name} ({sorted(values)}): not one quasirnn.SRU")
    D, H, L = module.num_directions, module.hidden_size, module.num_layers
    v1 = bool(first.v1)
    recurrent_gate = not v1 or any(bool(cell.weight_c.detach().ne(0).any()) for cell in cells)
    ref = first.weight_c
    model = SRU(
        module.input_size, H, L, float(module.dropout), float(first.rnn_dropout), bool(module.bidirectional),
        int(module.projection_size), first.activation_type == 1, first.layer_norm is not None,
        float(first.highway_bias), bool(first.has_skip_term), bool(first.rescale),
        recurrent_gate=recurrent_gate, normalize_after=bool(first.normalize_after),
        weight_c_init=first.weight_c_init, proj_input_to_hidden_first=module.input_to_hidden is not None,
        skip_rule="sru", dropout_mode="sru", init="sru", device=ref.device, dtype=ref.dtype,
    )
    with torch.no_grad():
        if module.input_to_hidden is not None:
            model.input_to_hidden.weight.copy_(module.input_to_hidden.weight)
        for l, cell in enumerate(cells):
            k = cell.num_matrices
            w = cell.weight.reshape(cell.weight.shape[0], D, H, k)
            v = cell.weight_c.reshape(2, D, H)
            b = cell.bias.reshape(2, D, H)
            for d in range(D):
                layer = model.layers[l * D + d]
                want = w[:, d].permute(2, 1, 0).reshape(k * H, -1)
                if tuple(layer.linear.weight.shape) != tuple(want.shape):
                    raise ValueError(f"sru layer {l}: weight {tuple(cell.weight.shape)} does not fit a layer "
                                     f"with projection {tuple(layer.linear.weight.shape)}")
                layer.linear.weight.copy_(want)
                if layer.proj is not None:
                    layer.proj.weight.copy_(cell.weight_proj.t())
                if layer.v is not None:
                    layer.v.copy_(v[:, d])
                layer.bias.copy_(b[:, d])
                if layer.scale_x is not None:
                    layer.scale_x.copy_(cell.scale_x.reshape(()))
                if layer.norm is not None:
                    _copy_norm(layer.norm, cell.layer_norm)
            if model.output_norms is not None:
                _copy_norm(model.output_norms[l], cell.layer_norm)
    return model.train(module.training)
