"""Export of a trained ``lm`` run to a Hugging Face folder (``quasirnn lm export --checkpoint RUN --hf DIR``).

The folder holds ``config.json`` (:class:`~quasirnn.hf.QRNNConfig`), ``model.safetensors`` (the
weights the run's test used: :meth:`~quasirnn.experiments.language_model.generate.TextGenerator.load`)
and a tokenizer: a ``tokenizers`` WordLevel model over the run's vocabulary, split on whitespace as
the Penn Treebank is, unknown words read as ``<unk>``, and ``<eos>`` put before the text (every
corpus line starts after one, as ``lm generate`` reads a prompt), saved as a
``PreTrainedTokenizerFast``. After ``import quasirnn.hf``, ``AutoTokenizer.from_pretrained(DIR)``,
``AutoModelForCausalLM.from_pretrained(DIR)`` and ``pipeline("text-generation", model=DIR)`` load it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedTokenizerFast

from quasirnn.data.vocabulary import EOS_TOKEN, UNK_TOKEN
from quasirnn.errors import ConfigError
from quasirnn.experiments.language_model.generate import TextGenerator
from quasirnn.hf.modeling import QRNNForCausalLM

__all__ = ["export_language_model", "word_tokenizer"]


def word_tokenizer(words: Sequence[str]) -> PreTrainedTokenizerFast:
    """The tokenizer of a word vocabulary (``words[i]`` is id i): whitespace split, ``<unk>`` for a word
    outside it (when the vocabulary has one), ``<eos>`` first (the sentence start), as the LM reads text.

    Raises:
        ConfigError: a vocabulary without ``<eos>``.

    Example::

        >>> tok = word_tokenizer(["<eos>", "the", "cat", "<unk>"])
        >>> tok("the dog  cat")["input_ids"]
        [0, 1, 3, 2]
        >>> tok.decode([1, 2, 0], skip_special_tokens=True)
        'the cat'
    """
    stoi = {word: i for i, word in enumerate(words)}
    if EOS_TOKEN not in stoi:
        raise ConfigError(f"the vocabulary must hold {EOS_TOKEN}, the sentence boundary")
    unk = UNK_TOKEN if UNK_TOKEN in stoi else None
    tokenizer = Tokenizer(WordLevel(stoi, unk_token=unk))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    tokenizer.post_processor = TemplateProcessing(single=f"{EOS_TOKEN} $A", special_tokens=[(EOS_TOKEN, stoi[EOS_TOKEN])])
    special = {"unk_token": unk} if unk else {}
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=EOS_TOKEN, eos_token=EOS_TOKEN, **special)


def export_language_model(run: Union[str, Path], folder: Union[str, Path]) -> Path:
    """Writes the Hugging Face folder of a trained ``lm`` run (see the module docstring); returns it.

    ``run`` is the run's output directory or checkpoint file. The generation configuration has no end
    token: ``generate`` writes ``max_new_tokens`` words, ``<eos>`` among them, as ``lm generate`` does.

    Raises:
        CheckpointError: no run there, or not a language model's (the checkpoint loader's message).
        ConfigError: ``folder`` exists and is not an empty directory (nothing is overwritten).
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"{folder} exists and is not an empty directory: give a new folder for the export")
    generator = TextGenerator.load(run, "cpu")
    eos = generator.vocab.stoi[EOS_TOKEN]
    model = QRNNForCausalLM.from_language_model(generator.model, bos_token_id=eos)
    model.generation_config.eos_token_id = None
    model.generation_config.bos_token_id = eos
    model.save_pretrained(folder)
    word_tokenizer(generator.vocab.itos).save_pretrained(folder)
    return folder
