"""The plain-loop definition of the SRU recurrence (``backend="reference"``).

What the fast kernels are tested against: a Python loop over time, differentiated by autograd.
Slow, and meant to be read, not used.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


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
        >>> from quasirnn.ops import sru_recurrence, sru_recurrence_reference
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
