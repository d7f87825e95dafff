"""Whether a layer may call its projection ``nn.Linear`` as ``F.linear`` instead of as a module."""

from __future__ import annotations

from torch import nn

__all__ = ["plain_linear"]


def plain_linear(module: nn.Module) -> bool:
    """True when ``module`` is an ``nn.Linear`` itself (not a subclass, a quantised or a
    parametrised one) with no forward hooks of its own: calling it is then exactly
    ``F.linear(x, module.weight, module.bias)``, which the SRU layer calls directly, and the QRNN
    layer on the CPU, without the bias, which its pooling kernel adds (a module call costs 1–2 µs
    of every step of step-by-step decoding).

    Example::

        >>> from torch import nn
        >>> plain_linear(nn.Linear(2, 3))
        True
        >>> hooked = nn.Linear(2, 3)
        >>> _ = hooked.register_forward_hook(lambda m, i, o: o * 2)
        >>> plain_linear(hooked)
        False
    """
    return type(module) is nn.Linear and not module._forward_hooks and not module._forward_pre_hooks
