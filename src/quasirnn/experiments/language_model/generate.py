"""Text from a trained language model (``quasirnn lm generate``): prompts in words, continuations out.

A prompt is split on whitespace into words, as the Penn Treebank is; a word outside the run's
vocabulary is read as ``<unk>`` (:meth:`TextGenerator.unknown_words` lists them, so that a command
can warn once). The model reads ``<eos>`` and then the prompt, so that a prompt starts a sentence as
every line of the corpus does (an empty prompt: a sentence from scratch), and continues it with
:meth:`quasirnn.models.LanguageModel.generate`: one step of every layer per word, the state carried.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

import torch

from quasirnn.data.vocabulary import EOS_TOKEN, UNK_TOKEN, Vocabulary
from quasirnn.errors import ConfigError
from quasirnn.experiments.language_model.config import build_model
from quasirnn.experiments.language_model.run import EXPERIMENT, tested_weights
from quasirnn.models import LanguageModel
from quasirnn.models.sampling import check_sampling
from quasirnn.training.launch import checkpoint_path, load_run, trained_model

__all__ = ["DTYPES", "TextGenerator", "check_sampling"]

#: The dtypes a generating model's weights can be held in (:meth:`TextGenerator.load`).
DTYPES = ("float32", "float16", "bfloat16")


class TextGenerator:
    """A trained language model with its vocabulary and a random generator: continues prompts word by word.

    Args:
        model: the :class:`~quasirnn.models.LanguageModel` (put in eval mode).
        vocab: its vocabulary (V words; must hold ``<eos>``).
        seed: the seed of the draws; None = a fresh random one. The same seed gives the same
            words for the same prompts in the same order (one generator for all of them).

    Attributes:
        eos: the end-of-sentence word ``<eos>``, as :meth:`continuation` yields it.
        unk: the word ``<unk>``, which prompt words outside the vocabulary are read as.

    Raises:
        ConfigError: a vocabulary of another size than the model's, or without ``<eos>``.

    Example::

        >>> from quasirnn.models import LanguageModel
        >>> vocab = Vocabulary(["<eos>", "the", "cat", "sat", "<unk>"])
        >>> gen = TextGenerator(LanguageModel(5, 8, 16, num_layers=2), vocab, seed=0)
        >>> gen.unknown_words(["the dog sat", "a cat"])
        ['dog', 'a']
        >>> words = list(gen.continuation("the cat", 6, top_k=1))
        >>> len(words), set(words) <= set(vocab.itos)
        (6, True)
    """

    def __init__(self, model: LanguageModel, vocab: Vocabulary, seed: Optional[int] = None) -> None:
        if len(vocab) != model.vocab_size or EOS_TOKEN not in vocab:
            raise ConfigError(f"the vocabulary ({len(vocab)} words) must be the model's ({model.vocab_size}) "
                              f"and hold {EOS_TOKEN}")
        self.model = model.eval()
        self.vocab = vocab
        self.eos, self.unk = EOS_TOKEN, UNK_TOKEN
        device = model.encoder.weight.device
        self.generator = torch.Generator(device)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    @classmethod
    def load(cls, path: Union[str, Path], device: Union[str, torch.device] = "cpu", seed: Optional[int] = None,
             dtype: str = "float32", backend: Optional[str] = None, quantize: Optional[str] = None) -> "TextGenerator":
        """The model of a run's checkpoint on ``device``, with the weights its test used
        (:func:`~quasirnn.experiments.language_model.run.tested_weights`: the best validation's with
        ``--keep-best``, else the last, averaged after NT-ASGD), in ``dtype``.

        ``path`` is the checkpoint file or the run's output directory.

        ``dtype`` is one of :data:`DTYPES`. At one word a step, a step reads every weight for a few
        flops each, so its time is that of reading the weights: ``"float16"`` halves it
        (benchmarks/generate_speed.py) and moves the log-probabilities by about 1e-3 (the
        recurrences still accumulate in float32, and the scores are sampled in float32).

        ``backend`` is the recurrence kernel of the QRNN and SRU layers (:mod:`quasirnn.ops`); None
        (default): the run's own (its ``--backend``). ``"torch"`` skips loading the compiled
        kernels (numba's import and its cache, up to a second before the first word) at a cost of
        a fraction of a millisecond a word (benchmarks/generate_speed.py).

        ``quantize`` "int8": the model :func:`quasirnn.quantize` makes (int8 gate projections and
        decoder; float32 ``dtype`` on the CPU only).

        Raises:
            CheckpointError: no file, a truncated or foreign checkpoint, or weights that do not fit
                the configuration (:func:`quasirnn.training.launch.load_run`).
            ConfigError: a saved configuration that no longer makes a valid model, a ``dtype``
                not in :data:`DTYPES`, or ``quantize`` with another dtype than float32 or a GPU.
        """
        if dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if quantize is not None and dtype != "float32":
            raise ConfigError(f"an {quantize} model takes float32 inputs: leave --dtype out, or give float32")
        path = checkpoint_path(path)
        checkpoint, config = load_run(path, EXPERIMENT, ("model", "vocab"))
        vocab = Vocabulary(checkpoint["vocab"])
        options = config.model if backend is None else dataclasses.replace(config.model, backend=backend)
        model = trained_model(build_model(options, len(vocab)), checkpoint, tested_weights(checkpoint, config), path,
                              torch.device(device), quantize)
        return cls(model.to(getattr(torch, dtype)), vocab, seed)

    def unknown_words(self, prompts: Iterable[str]) -> list[str]:
        """The words of ``prompts`` outside the vocabulary, each once, in order of appearance."""
        seen: dict[str, None] = {}
        for prompt in prompts:
            seen.update((w, None) for w in prompt.split() if w not in self.vocab)
        return list(seen)

    def prompt_ids(self, prompt: str) -> list[int]:
        """``<eos>`` and the ids of the prompt's words (unknown ones: ``<unk>``).

        Raises:
            ConfigError: an unknown word and a vocabulary without ``<unk>``.
        """
        stoi = self.vocab.stoi
        unknown = stoi.get(UNK_TOKEN)
        ids = [stoi[EOS_TOKEN]]
        for word in prompt.split():
            if word not in stoi and unknown is None:
                raise ConfigError(f"the prompt word {word!r} is not in the vocabulary, which has no {UNK_TOKEN}")
            ids.append(stoi.get(word, unknown))
        return ids

    def continuation(self, prompt: str, words: int, temperature: float = 1.0, top_k: Optional[int] = None,
                     top_p: Optional[float] = None) -> Iterator[str]:
        """The next ``words`` words after ``prompt``, one at a time (``<eos>`` included as :attr:`eos`).

        Each prompt starts from the zero state; the random generator goes on from the previous
        prompt's draws.

        Raises:
            ValueError: ``words`` < 1 or sampling settings out of range
                (:func:`~quasirnn.models.sampling.check_sampling`), at the first word.
            ConfigError: see :meth:`prompt_ids`.
        """
        itos = self.vocab.itos
        for word in self.model.generate(self.prompt_ids(prompt), words, temperature, top_k, top_p, self.generator):
            yield itos[word]
