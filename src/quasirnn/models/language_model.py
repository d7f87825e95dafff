"""Word-level recurrent language model: the QRNN paper's §3.2 setup in AWD-QRNN form.

Embedding → a stack of single-layer recurrent modules (``QRNN``, ``SRU`` or ``nn.LSTM``) → linear
decoder over the vocabulary, as in Bradbury et al. (2016, §3.2, Penn Treebank) and the
AWD-QRNN / AWD-LSTM models of Merity et al. (2017, arXiv 1708.02182; 2018, arXiv 1803.08240):

- the last layer's hidden size equals the embedding size so the decoder can share the
  embedding matrix (weight tying, Inan et al. 2016; Press & Wolf 2016; AWD-LSTM §4.5);
- embedding dropout on word types, and locked (variational) dropout on the embedding output,
  between layers and on the last layer's output (AWD-LSTM §4.2–4.3); weight drop (DropConnect,
  AWD-LSTM §2) on each layer's weight matrix of :data:`WEIGHT_DROP` (``wdrop``);
- a QRNN's first layer uses a convolution window of 2 and the others 1 (AWD-QRNN, the default
  :data:`~quasirnn.models.paper_windows.AWD_QRNN_WINDOWS`), and
  zoneout (QRNN §2.1) acts inside the QRNN layers in training mode.

With ``softmax="adaptive"`` the decoder is an adaptive softmax over the frequency-ranked
vocabulary (:class:`quasirnn.models.softmax.AdaptiveSoftmax`; Grave et al. 2017), tied to the
embedding as in AWD-QRNN's split softmax (Merity et al. 2018) or torch's untied
``AdaptiveLogSoftmaxWithLoss``; its perplexities are exact (normalised over all V words).

Weight decay (L2) is left to the optimizer.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from quasirnn._checks import check_int, check_qrnn_only
from quasirnn.models.dropout import LockedDropout, embedded_dropout, weight_drop
from quasirnn.models.paper_windows import AWD_QRNN_WINDOWS, layer_windows
from quasirnn.models.sampling import check_sampling, sample_next
from quasirnn.models.softmax import AdaptiveSoftmax
from quasirnn.nn.windows import Windows

__all__ = ["CELLS", "SOFTMAXES", "WEIGHT_DROP", "LanguageModel", "detach_hidden"]

#: Recurrent cells a :class:`LanguageModel` can stack.
CELLS = ("qrnn", "lstm", "sru")
#: Output layers of a :class:`LanguageModel`.
SOFTMAXES = ("full", "adaptive")
#: :meth:`LanguageModel.generate` reads a prompt of at most this many words on its Steppers (a matrix
#: product per layer, then the recurrence step by step, in PyTorch), a longer one through the layers'
#: kernels: a short prompt then costs no kernel loaded (the numba kernels' first use in a process
#: took 0.8 s of `lm generate`'s 2.0 s to its first word).
STEPPED_PROMPT = 256
#: The weight of each layer that ``wdrop`` drops, by cell (a parameter name inside the layer):
#: the QRNN's gate projection, as awd-lstm-lm wraps ``QRNNLayer.linear``; the LSTM's hidden-to-hidden
#: matrix, as awd-lstm-lm wraps ``weight_hh_l0``; for the SRU, which has no hidden-to-hidden matrix
#: (its recurrence is element-wise), its one matrix, the input projection to x̃, f, r: the QRNN's analogue.
WEIGHT_DROP = {"qrnn": ("layers.0.linear.weight",), "sru": ("layers.0.linear.weight",), "lstm": ("weight_hh_l0",)}

Hidden = tuple[Any, ...]


def detach_hidden(hidden: Any) -> Any:
    """Detaches a recurrent state from the graph, for truncated BPTT.

    Works on anything a :class:`LanguageModel` returns as its state: a tuple of per-layer
    states, each a ``QRNNState`` (which has its own ``detach``), an LSTM ``(h, c)`` pair of
    tensors (1, B, H), or None.

    Returns:
        The same structure with every tensor detached (None stays None).
    """
    if hidden is None:
        return None
    if isinstance(hidden, Tensor):
        return hidden.detach()
    if hasattr(hidden, "detach"):  # QRNNState and the like
        return hidden.detach()
    if isinstance(hidden, (tuple, list)):
        return type(hidden)(detach_hidden(h) for h in hidden)
    raise TypeError(f"cannot detach a recurrent state of type {type(hidden).__name__}")


def _plain(state: Any) -> Any:
    """Nested tuples of tensors (no NamedTuple) holding ``state``; None stays None."""
    if state is None or isinstance(state, Tensor):
        return state
    if hasattr(state, "inputs") and hasattr(state, "c"):  # a QRNNState: (c, inputs, h), the history kept
        return (_plain(state.c), _plain(state.inputs), _plain(state.h))
    if isinstance(state, (tuple, list)):
        return tuple(_plain(s) for s in state)
    raise TypeError(f"cannot pack a recurrent state of type {type(state).__name__}")


class LanguageModel(nn.Module):
    """Recurrent word-level language model with tied weights (QRNN §3.2; AWD-LSTM).

    Layer ``l`` maps ``emb_size`` (l = 0) or ``hidden_size`` (l > 0) features to
    ``hidden_size`` features, except the last layer, which outputs ``emb_size`` features when
    ``tie_weights`` is True so that the decoder reuses the embedding matrix (V, E).

    Args:
        vocab_size: V, the number of word types.
        emb_size: E, the embedding size.
        hidden_size: H, the size of every layer but the last (when tied).
        num_layers: L ≥ 1 recurrent layers, each its own single-layer module.
        cell: ``"qrnn"`` (``quasirnn.QRNN`` with fo-pooling), ``"lstm"`` (``nn.LSTM``) or
            ``"sru"`` (``quasirnn.SRU`` with its defaults: recurrent gates, identity g).
        window: QRNN convolution widths (:func:`~quasirnn.nn.resolve_windows`): an int for
            every layer, or a sequence of L ints, one per layer; None (default): AWD-QRNN's
            :data:`~quasirnn.models.paper_windows.AWD_QRNN_WINDOWS` (2 in the first layer,
            1 above; :func:`~quasirnn.models.paper_windows.layer_windows`). Checked, then
            ignored by ``"lstm"`` and ``"sru"`` (they read one step at a time; ``windows`` is
            then None).
        zoneout: QRNN zoneout probability (QRNN §2.1), active in training mode only;
            must be 0 for ``"lstm"`` and ``"sru"``.
        dropout: locked dropout on the last layer's output (AWD-LSTM ``dropout``).
        dropouth: locked dropout between recurrent layers (``dropouth``).
        dropouti: locked dropout on the embedding output (``dropouti``).
        dropoute: embedding (word-type) dropout (``dropoute``).
        wdrop: weight drop (AWD-LSTM ``wdrop``): each entry of every layer's :data:`WEIGHT_DROP`
            weight is dropped with this probability, one mask per forward call (per BPTT window),
            in training mode only (:func:`~quasirnn.models.dropout.weight_drop`); the state dict
            is that of the model without it.
        tie_weights: share the embedding and decoder weights (last layer outputs E features).
        softmax: ``"full"`` (a linear decoder over V words and ``F.cross_entropy``) or
            ``"adaptive"`` (:class:`~quasirnn.models.softmax.AdaptiveSoftmax`, tied when
            ``tie_weights``).
        cutoffs: the adaptive softmax's cluster boundaries, in frequency ranks (see
            :func:`~quasirnn.models.softmax.default_cutoffs`); must be empty for ``"full"``.
        word_order: LongTensor (V,), the word ids by decreasing training frequency (the
            adaptive softmax's ranks); None = the id order. Stored in the state dict.
        backend: the recurrence kernel of the ``"qrnn"`` and ``"sru"`` layers, passed to
            :class:`~quasirnn.QRNN` / :class:`~quasirnn.SRU`, which check it; unused by ``"lstm"``.

    Shape:
        - ids: LongTensor (T, B).
        - hidden: None (zero state) or the tuple of L per-layer states returned by a
          previous call: a ``QRNNState`` per QRNN or SRU layer, an ``(h, c)`` pair of (1, B, H_l)
          tensors per LSTM layer.
        - Output: ``(logits, hidden)`` with logits (T, B, V), unnormalised log-probabilities
          (use ``F.cross_entropy`` or ``log_softmax``), in the dtype of the parameters (the
          adaptive softmax returns normalised log-probabilities, at least float32); with
          ``targets`` (T, B), ``(loss, hidden)``: the NLL in nats, mean or sum over T·B tokens.

    Raises:
        ValueError: unknown cell or softmax, invalid sizes, windows, cutoffs, dropout
            probabilities or backend, zoneout with a cell other than ``"qrnn"``.

    Example::

        >>> model = LanguageModel(100, 16, 32, num_layers=2, cell="lstm", softmax="adaptive", cutoffs=[20, 60])
        >>> ids = torch.randint(0, 100, (5, 3))
        >>> loss, hidden = model(ids, targets=ids)
        >>> model(ids)[0].shape
        torch.Size([5, 3, 100])
    """

    def __init__(
        self,
        vocab_size: int,
        emb_size: int = 400,
        hidden_size: int = 1550,
        num_layers: int = 4,
        cell: str = "qrnn",
        window: Optional[Windows] = None,
        zoneout: float = 0.0,
        dropout: float = 0.4,
        dropouth: float = 0.3,
        dropouti: float = 0.4,
        dropoute: float = 0.1,
        wdrop: float = 0.0,
        tie_weights: bool = True,
        softmax: str = "full",
        cutoffs: Sequence[int] = (),
        word_order: Optional[Tensor] = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
        for name, value in (("vocab_size", vocab_size), ("emb_size", emb_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not 0.0 <= dropoute < 1.0:
            raise ValueError(f"dropoute must be in [0, 1), got {dropoute}")
        if not 0.0 <= wdrop < 1.0:
            raise ValueError(f"wdrop must be in [0, 1), got {wdrop}")
        if softmax not in SOFTMAXES:
            raise ValueError(f"softmax must be one of {', '.join(SOFTMAXES)}, got {softmax!r}")
        if softmax == "full" and cutoffs:
            raise ValueError(f"cutoffs are for the adaptive softmax; got {list(cutoffs)} with softmax='full'")
        check_qrnn_only("zoneout", zoneout, cell)
        windows = layer_windows(window, AWD_QRNN_WINDOWS, num_layers)

        self.vocab_size = vocab_size
        self.emb_size = emb_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell = cell
        self.windows = tuple(windows) if cell == "qrnn" else None
        self.zoneout = zoneout
        self.dropoute = dropoute
        self.wdrop = wdrop
        self.tie_weights = tie_weights
        self.softmax_kind = softmax
        self.backend = backend

        self.encoder = nn.Embedding(vocab_size, emb_size)
        self.rnns = nn.ModuleList()
        self.output_sizes = []
        for layer in range(num_layers):
            n_in = emb_size if layer == 0 else hidden_size
            n_out = emb_size if (layer == num_layers - 1 and tie_weights) else hidden_size
            self.rnns.append(self._make_layer(n_in, n_out, windows[layer]))
            self.output_sizes.append(n_out)
        self.lockdrop_in = LockedDropout(dropouti)
        self.lockdrop_h = LockedDropout(dropouth)
        self.lockdrop_out = LockedDropout(dropout)
        if softmax == "adaptive":
            self.softmax = AdaptiveSoftmax(self.output_sizes[-1], vocab_size, cutoffs, order=word_order,
                                           weight=self.encoder.weight if tie_weights else None)
        else:
            self.decoder = nn.Linear(self.output_sizes[-1], vocab_size)
            if tie_weights:
                self.decoder.weight = self.encoder.weight
        self.reset_parameters()

    def _make_layer(self, n_in: int, n_out: int, window: int) -> nn.Module:
        if self.cell == "lstm":
            return nn.LSTM(n_in, n_out, num_layers=1)
        from quasirnn import QRNN, SRU  # the layers live in quasirnn.nn; imported late to keep "lstm" independent

        if self.cell == "sru":
            return SRU(n_in, n_out, num_layers=1, backend=self.backend)
        return QRNN(n_in, n_out, num_layers=1, window=window, pooling="fo", zoneout=self.zoneout, backend=self.backend)

    def reset_parameters(self) -> None:
        """AWD-LSTM initialisation: embedding (and untied decoder) U(−0.1, 0.1), decoder bias 0.

        The untied adaptive softmax keeps torch's initialisation."""
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        if self.softmax_kind == "adaptive":
            return
        if not self.tie_weights:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    @property
    def tied(self) -> bool:
        """True when the decoder weight is the embedding weight (same Parameter)."""
        if self.softmax_kind == "adaptive":
            return self.softmax.tied and self.softmax.weight is self.encoder.weight
        return self.decoder.weight is self.encoder.weight

    def init_hidden(self, batch_size: int) -> Hidden:
        """The zero state for B = ``batch_size`` sequences.

        Returns:
            A tuple of L per-layer states: None for a QRNN or SRU layer (its zero state), a
            pair of zero tensors (1, B, H_l) for an LSTM layer, on the parameters' device/dtype.
        """
        weight = self.encoder.weight
        states = []
        for size in self.output_sizes:
            if self.cell == "lstm":
                zeros = weight.new_zeros(1, batch_size, size)
                states.append((zeros, zeros.clone()))
            else:
                states.append(None)
        return tuple(states)

    def features(self, ids: Tensor, hidden: Optional[Hidden] = None) -> tuple[Tensor, Tensor, Hidden]:
        """The last layer's outputs for every position, before and after its output dropout: what
        the decoder reads, what AWD-LSTM's activation regularisers (AR, TAR) and the neural
        cache (Grave et al. 2017) read.

        Args:
            ids: LongTensor (T, B) of word ids.
            hidden: None or the L per-layer states from the previous window.

        Returns:
            ``(raw, dropped, new hidden)``: raw (T, B, E_out) the last layer's output, dropped
            (T, B, E_out) the same after the locked output dropout (equal to raw in eval mode),
            in the parameters' dtype (or autocast's); E_out = ``output_sizes[-1]``.

        Example::

            >>> model = LanguageModel(50, 8, 16, num_layers=2, cell="lstm").eval()
            >>> raw, dropped, hidden = model.features(torch.randint(0, 50, (4, 2)))
            >>> raw.shape, torch.equal(raw, dropped), len(hidden)
            (torch.Size([4, 2, 8]), True, 2)
        """
        x = embedded_dropout(self.encoder, ids, self.dropoute, self.training)  # (T, B, E)
        x = self.lockdrop_in(x)
        new_hidden = []
        for layer, rnn in enumerate(self.rnns):
            state = None if hidden is None else hidden[layer]
            # (T, B, H_l); weight drop: a plain call in eval mode or with wdrop 0
            x, state = weight_drop(rnn, WEIGHT_DROP[self.cell], self.wdrop, x, state, training=self.training)
            new_hidden.append(state)
            if layer < self.num_layers - 1:
                x = self.lockdrop_h(x)
        return x, self.lockdrop_out(x), tuple(new_hidden)

    def _steppers(self) -> Optional[list]:
        """A :class:`~quasirnn.nn.streaming.Stepper` per QRNN/SRU layer for :meth:`generate`'s
        words after the prompt, or None (an LSTM runs :meth:`features`)."""
        if self.cell == "lstm":
            return None
        from quasirnn.nn.streaming import Stepper  # imported late, as the layers (see _make_layer)

        return [Stepper(rnn) for rnn in self.rnns]

    def _step(self, steppers: list, ids: Tensor, hidden: Hidden) -> tuple[Tensor, Hidden]:
        """:meth:`features` of the words ``ids`` (T, 1) in eval mode on the Steppers, one step each
        for T = 1, else a chunk: (the last layer's output after the last word (E_out,), the new
        per-layer states)."""
        one = ids.shape[0] == 1
        x = embedded_dropout(self.encoder, ids[0] if one else ids, self.dropoute, False)  # undropped in eval mode
        new_hidden = []
        for stepper, state in zip(steppers, hidden or (None,) * len(steppers)):
            x, state = stepper.step(x, state) if one else stepper.chunk(x, state)
            new_hidden.append(state)
        return (x[-1] if one else x[-1, 0]), tuple(new_hidden)

    def decode(self, x: Tensor, targets: Optional[Tensor] = None, reduction: str = "mean") -> Tensor:
        """The output layer on the last layer's (dropped) outputs ``x`` (..., E_out).

        Returns:
            Without ``targets``: scores (..., V), the full softmax's logits or the adaptive
            softmax's log-probabilities (see :meth:`forward`). With ``targets`` (the shape of
            ``x`` without its last dimension): the NLL in nats, mean or sum over the targets.

        Raises:
            ValueError: ``targets`` not of the shape of ``x[..., 0]``, or an unknown reduction.
        """
        if targets is None:
            if self.softmax_kind == "adaptive":
                return self.softmax.log_prob(x.reshape(-1, x.size(-1))).view(*x.shape[:-1], -1)
            return self.decoder(x)
        if targets.shape != x.shape[:-1] or reduction not in ("mean", "sum"):
            raise ValueError(f"targets must have the shape of ids {tuple(x.shape[:-1])} and reduction be mean or sum, "
                             f"got {tuple(targets.shape)} and {reduction!r}")
        flat = x.reshape(-1, x.size(-1))
        if self.softmax_kind == "adaptive":
            nll = self.softmax(flat, targets.reshape(-1))
            return nll.mean() if reduction == "mean" else nll.sum()
        return F.cross_entropy(self.decoder(flat), targets.reshape(-1), reduction=reduction)

    def forward(self, ids: Tensor, hidden: Optional[Hidden] = None, targets: Optional[Tensor] = None,
                reduction: str = "mean", return_features: bool = False) -> tuple[Any, ...]:
        """Next-word logits for every position, or the loss of ``targets``: :meth:`decode` of
        :meth:`features`'s dropped outputs.

        Args:
            ids: LongTensor (T, B) of word ids.
            hidden: None or the L per-layer states from the previous window.
            targets: None, or LongTensor (T, B) of the next words: then the negative
                log-likelihood is returned instead of the logits (the adaptive softmax never
                builds the (T, B, V) scores on this path).
            reduction: ``"mean"`` or ``"sum"`` over the T·B targets.
            return_features: also return :meth:`features`'s raw and dropped outputs (what the
                activation regularisers read: awd-lstm-lm's ``return_h``), through the one call a
                DistributedDataParallel wrapper makes.

        Returns:
            (logits (T, B, V), or the scalar loss with ``targets``; new hidden: tuple of L per-layer states),
            followed by (raw, dropped), both (T, B, E_out), with ``return_features``.

        Raises:
            ValueError: ``targets`` not of the shape of ``ids``, or an unknown reduction.
        """
        if targets is not None and (targets.shape != ids.shape or reduction not in ("mean", "sum")):
            raise ValueError(f"targets must have the shape of ids {tuple(ids.shape)} and reduction be mean or sum, "
                             f"got {tuple(targets.shape)} and {reduction!r}")
        raw, x, new_hidden = self.features(ids, hidden)
        if return_features:
            return self.decode(x, targets, reduction), new_hidden, raw, x
        return self.decode(x, targets, reduction), new_hidden

    def pack_hidden(self, hidden: Optional[Hidden]) -> Any:
        """The state as nested tuples of tensors, storable with ``torch.save`` and loadable with
        ``weights_only=True``; see :meth:`unpack_hidden`. A ``QRNNState`` becomes
        ``(c, inputs, h)`` (checkpoints before h_n was kept hold ``(c, inputs)``)."""
        return _plain(hidden)

    def unpack_hidden(self, packed: Any) -> Optional[Hidden]:
        """Inverse of :meth:`pack_hidden`: rebuilds ``QRNNState``s for a QRNN or SRU model."""
        if packed is None:
            return None
        if self.cell == "lstm":
            return tuple(None if s is None else tuple(s) for s in packed)
        from quasirnn import QRNNState

        return tuple(None if s is None else QRNNState(s[2] if len(s) > 2 else None, s[0], tuple(s[1]))
                     for s in packed)

    def num_parameters(self) -> int:
        """Number of trainable scalars (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @torch.inference_mode()
    def generate(self, prompt_ids: Union[Tensor, Sequence[int]], max_words: int, temperature: float = 1.0,
                 top_k: Optional[int] = None, top_p: Optional[float] = None,
                 generator: Optional[torch.Generator] = None, hidden: Optional[Hidden] = None) -> Iterator[int]:
        """Samples a continuation of ``prompt_ids``, one word id at a time (a generator: callers can stream).

        The prompt is read in one pass over its T words; then each new word is one step of every
        layer from the carried state (a QRNN's convolution history included), never a re-run of the
        prefix: the scores of each step equal those of a forward pass over the whole prefix. With
        QRNN/SRU layers (float32, 16-bit or int8 weights) the steps, and a prompt of at most
        :data:`STEPPED_PROMPT` words, run on a :class:`~quasirnn.nn.streaming.Stepper` per layer
        (one matrix product and a few in-place ops per layer; same scores to float rounding); a
        longer prompt or an LSTM runs :meth:`features`. Each word is drawn by
        :func:`~quasirnn.models.sampling.sample_next` from the step's scores (temperature, then
        top-k, then top-p); ``top_k=1`` is greedy and draws nothing from ``generator``. The model
        runs in eval mode (a model in training mode is switched for each step and back) under
        ``torch.inference_mode`` (only while the generator runs, not between its words).

        Args:
            prompt_ids: T ≥ 1 word ids in [0, V): a LongTensor (T,) or a sequence of ints. The
                model continues after the last one (a corpus's ``<eos>`` first starts a sentence).
            max_words: N ≥ 1, the number of words generated.
            temperature, top_k, top_p: see :func:`~quasirnn.models.sampling.sample_next`.
            generator: the random generator of the draws (on the model's device); None = torch's
                default. The same seed gives the same words.
            hidden: None (zero state) or the L per-layer states of a previous call of
                :meth:`forward` or :meth:`features` with B = 1, which the prompt continues.

        Yields:
            N ints, the generated word ids.

        Raises:
            ValueError: an empty prompt or an id outside [0, V), ``max_words`` < 1, or sampling
                settings out of range (:func:`~quasirnn.models.sampling.check_sampling`); raised
                at the first ``next``.

        Example::

            >>> model = LanguageModel(50, 8, 16, num_layers=2, cell="qrnn", window=2)
            >>> words = list(model.generate([3, 7, 1], max_words=5, top_k=1))
            >>> len(words), all(0 <= w < 50 for w in words)
            (5, True)
            >>> g = torch.Generator().manual_seed(0)
            >>> first = list(model.generate([3], 4, temperature=0.8, top_p=0.9, generator=g))
            >>> first == list(model.generate([3], 4, temperature=0.8, top_p=0.9, generator=g.manual_seed(0)))
            True
        """
        check_int("max_words", max_words)
        check_sampling(temperature, top_k, top_p)
        ids = torch.as_tensor(prompt_ids, dtype=torch.long, device=self.encoder.weight.device).reshape(-1, 1)  # (T, 1)
        if ids.numel() == 0 or ids.min() < 0 or ids.max() >= self.vocab_size:
            raise ValueError(f"prompt_ids must be T >= 1 ids in [0, {self.vocab_size}), got "
                             f"{ids.flatten().tolist()[:10]}{' ...' if ids.numel() > 10 else ''}")
        training = self.training
        steppers = self._steppers()
        for n in range(max_words):
            if training:
                self.train(False)
            try:
                if steppers is None or len(ids) > STEPPED_PROMPT:
                    _, x, hidden = self.features(ids, hidden)
                    x = x[-1, 0]
                else:  # each layer's Stepper, on the state carried (eval mode: no dropout)
                    x, hidden = self._step(steppers, ids, hidden)
                # (V,): the next word's scores after the last id read; a 1-D input is a matrix-vector
                # product (torch's addmv), a (1, E) one a matrix product, about twice as slow
                scores = self.decode(x)
            finally:
                if training:
                    self.train(True)
            chosen = sample_next(scores, temperature, top_k, top_p, generator)  # a 0-d LongTensor
            yield int(chosen)
            ids = chosen.view(1, 1)
