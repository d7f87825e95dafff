"""Plain PyTorch reference implementations of QRNN pooling and of the SRU recurrence.

These are the definitions the fast kernels are tested against: a Python loop over
time, differentiated by autograd. They are slow and meant to be read, not used.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def forget_mult_reference(f: Tensor, z: Tensor, c0: Optional[Tensor] = None, *, i: Optional[Tensor] = None) -> Tensor:
    """Reference f-pooling / ifo-pooling recurrence (QRNN paper §2, eq. 3–5).

    ``c_t = f_t ⊙ c_{t-1} + (1 − f_t) ⊙ z_t``, or ``c_t = f_t ⊙ c_{t-1} + i_t ⊙ z_t`` when ``i`` is given.

    Args:
        f: forget gate, (T, B, H), values in [0, 1].
        z: candidate, (T, B, H).
        c0: initial memory, (B, H), or None for zeros.
        i: input gate, (T, B, H), or None.

    Returns:
        c: (T, B, H), the memory at every step, same dtype as ``f``.

    Example::

        >>> import torch
        >>> from quasirnn.ops import forget_mult
        >>> f, z = torch.rand(5, 2, 4), torch.randn(5, 2, 4)
        >>> torch.allclose(forget_mult_reference(f, z), forget_mult(f, z), atol=1e-6)
        True
    """
    c = torch.zeros_like(f[0]) if c0 is None else c0
    out = []
    for t in range(f.shape[0]):
        update = (1 - f[t]) * z[t] if i is None else i[t] * z[t]
        c = f[t] * c + update
        out.append(c)
    return torch.stack(out) if out else f.new_empty(f.shape)


def qrnn_pooling_reference(
    gates: Tensor, c0: Optional[Tensor], pooling: str, zoneout_mask: Optional[Tensor] = None
) -> tuple[Tensor, Tensor]:
    """Reference gate activations + pooling of one QRNN layer (paper §2, eq. 1–5 and §2.1 zoneout).

    Args:
        gates: pre-activations (T, B, G·H) from the gate projection, split along the last
            dimension in the order Z, F, O, I (O for "fo"/"ifo", I for "ifo"); G = 2, 3, 4.
        c0: initial memory (B, H) or None.
        pooling: "f", "fo" or "ifo".
        zoneout_mask: (T, B, H) keep-mask m with values 0 or 1, or None; the forget gate becomes
            ``1 − m ⊙ (1 − σ(F))`` (paper §2.1) and, for ifo, the input gate ``m ⊙ σ(I)``: where
            m = 0 the channel keeps its previous memory exactly (zoneout), in every pooling form.

    Returns:
        (h, c): both (T, B, H). ``c`` is the memory; ``h = o ⊙ c`` for "fo"/"ifo" and ``h = c`` for "f".

    Example::

        >>> import torch
        >>> from quasirnn.ops import qrnn_pooling
        >>> gates = torch.randn(5, 2, 4 * 3)  # ifo-pooling, H = 3
        >>> h, c = qrnn_pooling_reference(gates, None, "ifo")
        >>> torch.allclose(h, qrnn_pooling(gates, pooling="ifo")[0], atol=1e-6)
        True
    """
    num_gates = {"f": 2, "fo": 3, "ifo": 4}[pooling]
    parts = gates.chunk(num_gates, dim=-1)
    z = torch.tanh(parts[0])
    f = torch.sigmoid(parts[1])
    if zoneout_mask is not None:
        f = 1 - zoneout_mask * (1 - f)
    i = torch.sigmoid(parts[3]) if pooling == "ifo" else None
    if i is not None and zoneout_mask is not None:
        i = i * zoneout_mask
    c = forget_mult_reference(f, z, c0, i=i)
    h = c if pooling == "f" else torch.sigmoid(parts[2]) * c
    return h, c


def sru_recurrence_reference(
    u: Tensor,
    v: Optional[Tensor],
    b: Tensor,
    c0: Optional[Tensor] = None,
    *,
    x: Optional[Tensor] = None,
    use_tanh: bool = False,
) -> tuple[Tensor, Tensor]:
    """Reference SRU recurrence (Lei et al. 2017, arXiv 1709.02755, §2 eq. 3–7, with the
    element-wise recurrent gate terms of the published version):

    ``f_t = σ(F_t + v_f ⊙ c_{t−1} + b_f)``, ``r_t = σ(R_t + v_r ⊙ c_{t−1} + b_r)``,
    ``c_t = f_t ⊙ c_{t−1} + (1 − f_t) ⊙ x̃_t``, ``h_t = r_t ⊙ g(c_t) + (1 − r_t) ⊙ x_t``,
    with g the identity, or tanh when ``use_tanh``.

    Args:
        u: projection outputs (T, B, 3H) split as [x̃, F, R], or (T, B, 4H) as [x̃, F, R, x]
            when the highway input is a projection too (``x`` None).
        v: recurrent gate weights (2, H) = [v_f; v_r], or None for gates without recurrent
            terms (the SRU of the 2017 text, ``recurrent_gate=False``).
        b: gate biases (2, H) = [b_f; b_r].
        c0: initial memory (B, H), or None for zeros.
        x: highway input (T, B, H) when ``u`` has 3H features; None when it has 4H.
        use_tanh: g = tanh instead of the identity.

    Returns:
        (h, c): both (T, B, H) in the dtype of ``u``.

    Example::

        >>> import torch
        >>> from quasirnn.ops import sru_recurrence
        >>> u, x = torch.randn(5, 2, 3 * 4), torch.randn(5, 2, 4)  # (T, B, 3H) and the highway input
        >>> v, b = torch.randn(2, 4), torch.randn(2, 4)
        >>> h, c = sru_recurrence_reference(u, v, b, x=x)
        >>> torch.allclose(h, sru_recurrence(u, v, b, x=x)[0], atol=1e-6)
        True
    """
    parts = u.chunk(u.shape[-1] // b.shape[-1], dim=-1)
    xt, F, R = parts[0], parts[1], parts[2]
    highway = parts[3] if x is None else x
    c = torch.zeros_like(xt[0]) if c0 is None else c0
    hs, cs = [], []
    for t in range(u.shape[0]):
        f_pre, r_pre = F[t] + b[0], R[t] + b[1]
        if v is not None:
            f_pre, r_pre = f_pre + v[0] * c, r_pre + v[1] * c
        f, r = torch.sigmoid(f_pre), torch.sigmoid(r_pre)
        c = f * c + (1 - f) * xt[t]
        g = torch.tanh(c) if use_tanh else c
        hs.append(r * g + (1 - r) * highway[t])
        cs.append(c)
    return torch.stack(hs), torch.stack(cs)
