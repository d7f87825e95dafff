"""Export of a trained run to a Hugging Face folder (``quasirnn lm export`` and ``quasirnn classify export``,
``--checkpoint RUN --hf DIR``).

The folder holds ``config.json`` (:class:`~quasirnn.hf.QRNNConfig`), ``model.safetensors`` (the
weights the run's test used: :meth:`~quasirnn.experiments.language_model.generate.TextGenerator.load`)
and a tokenizer: a ``tokenizers`` WordLevel model over the run's vocabulary, split on whitespace as
the Penn Treebank is, unknown words read as ``<unk>``, and ``<eos>`` put before the text (every
corpus line starts after one, as ``lm generate`` reads a prompt), saved as a
``PreTrainedTokenizerFast``. After ``import quasirnn.hf``, ``AutoTokenizer.from_pretrained(DIR)``,
``AutoModelForCausalLM.from_pretrained(DIR)`` and ``pipeline("text-generation", model=DIR)`` load it.

A classifier's folder (:func:`export_classifier`) holds its weights (the best validation's, those
``classify predict`` uses), its labels (``negative``, ``positive``) and a tokenizer that splits a
review as :func:`quasirnn.data.imdb.tokenize` does (lower case, ``<br />`` as a space, words with
inner apostrophes, each other non-space character alone; a combining mark after a letter differs:
Rust's regular expressions count it in a word, Python's do not), for
``pipeline("text-classification", model=DIR)``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence, Union

import torch
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedTokenizerFast

from quasirnn.data.imdb import BREAK_PATTERN, TOKEN_PATTERN
from quasirnn.data.imdb_reader import LABELS
from quasirnn.data.vocabulary import EOS_TOKEN, PAD_TOKEN, UNK_TOKEN
from quasirnn.errors import ConfigError
from quasirnn.experiments.classification import load_for_inference
from quasirnn.experiments.language_model.generate import TextGenerator
from quasirnn.hf.configuration import QRNNConfig
from quasirnn.hf.modeling import QRNNForCausalLM, QRNNForSequenceClassification
from quasirnn.training.launch import checkpoint_path

__all__ = ["export_classifier", "export_language_model", "review_tokenizer", "word_tokenizer"]

#: The classifier's label names, by class id (``classify predict``'s).
LABEL_NAMES = {"neg": "negative", "pos": "positive"}


def word_tokenizer(words: Sequence[str]) -> PreTrainedTokenizerFast:
    """The tokenizer of a word vocabulary (``words[i]`` is id i): whitespace split, ``<unk>`` for a word
    outside it (when the vocabulary has one), ``<eos>`` first (the sentence start), as the LM reads text.
    Decoding puts a space before every word (as GPT-2's tokens carry theirs), so that the text of new
    words follows a prompt's (``pipeline("text-generation")`` joins them). A batch is padded on the
    left with ``<eos>`` (``padding=True``), which its attention mask hides from the model.

    A vocabulary without ``<unk>`` (PTB's has one) makes a word outside it an error when text is
    tokenised (``tokenizers``' "Missing [UNK] token"), as ``lm generate`` refuses it.

    Raises:
        ConfigError: a vocabulary without ``<eos>``.

    Example::

        >>> tok = word_tokenizer(["<eos>", "the", "cat", "<unk>"])
        >>> tok("the dog  cat")["input_ids"]
        [0, 1, 3, 2]
        >>> tok.decode([1, 2, 0], skip_special_tokens=True)
        ' the cat'
    """
    stoi = {word: i for i, word in enumerate(words)}
    if EOS_TOKEN not in stoi:
        raise ConfigError(f"the vocabulary must hold {EOS_TOKEN}, the sentence boundary")
    unk = UNK_TOKEN if UNK_TOKEN in stoi else None
    tokenizer = Tokenizer(WordLevel(stoi, unk_token=unk))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.Replace(Regex("^"), " ")
    tokenizer.post_processor = TemplateProcessing(single=f"{EOS_TOKEN} $A",
                                                  special_tokens=[(EOS_TOKEN, stoi[EOS_TOKEN])])
    special = {"unk_token": unk} if unk else {}
    # padding (a batch of prompts) on the left with <eos>, which the attention mask hides
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=EOS_TOKEN, eos_token=EOS_TOKEN,
                                   pad_token=EOS_TOKEN, padding_side="left", **special)


def export_language_model(run: Union[str, Path], folder: Union[str, Path]) -> Path:
    """Writes the Hugging Face folder of a trained ``lm`` run (see the module docstring); returns it.

    ``run`` is the run's output directory or checkpoint file. The generation configuration has no end
    token: ``generate`` writes ``max_new_tokens`` words, ``<eos>`` among them, as ``lm generate`` does.

    Raises:
        CheckpointError: no run there, or not a language model's (the checkpoint loader's message).
        ConfigError: ``folder`` exists and is not an empty directory (nothing is overwritten).
    """
    folder = _new_folder(folder)
    generator = TextGenerator.load(run, "cpu")
    eos = generator.vocab.stoi[EOS_TOKEN]
    model = QRNNForCausalLM.from_language_model(generator.model, bos_token_id=eos)
    model.generation_config.eos_token_id = None
    model.generation_config.bos_token_id = eos
    model.save_pretrained(folder)
    word_tokenizer(generator.vocab.itos).save_pretrained(folder)
    return folder


def review_tokenizer(words: Sequence[str]) -> PreTrainedTokenizerFast:
    """The tokenizer of a classifier's vocabulary (``<pad>`` id 0, ``<unk>``): a review split as
    :func:`quasirnn.data.imdb.tokenize` splits it, right-padded with ``<pad>``.

    Raises:
        ConfigError: a vocabulary without ``<pad>`` at id 0 or without ``<unk>``.

    Example::

        >>> tok = review_tokenizer(["<pad>", "<unk>", "great", "film", "!", "don't"])
        >>> tok("Great film!<br />I don't know")["input_ids"]
        [2, 3, 4, 1, 5, 1]
    """
    stoi = {word: i for i, word in enumerate(words)}
    if stoi.get(PAD_TOKEN) != 0 or UNK_TOKEN not in stoi:
        raise ConfigError(f"a classifier's vocabulary has {PAD_TOKEN} at id 0 and {UNK_TOKEN}")
    tokenizer = Tokenizer(WordLevel(stoi, unk_token=UNK_TOKEN))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Lowercase(),
                                                 normalizers.Replace(Regex(BREAK_PATTERN), " ")])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                       pre_tokenizers.Split(Regex(TOKEN_PATTERN), "isolated")])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token=UNK_TOKEN, pad_token=PAD_TOKEN,
                                   padding_side="right")


def export_classifier(run: Union[str, Path], folder: Union[str, Path]) -> Path:
    """Writes the Hugging Face folder of a trained ``classify`` run (see the module docstring); returns it.

    Raises:
        CheckpointError: no run there, or not a classifier's (the checkpoint loader's message).
        ConfigError: ``folder`` exists and is not an empty directory (nothing is overwritten).
    """
    folder = _new_folder(folder)
    config, vocab, classifier = load_for_inference(checkpoint_path(run), torch.device("cpu"))
    options = dataclasses.asdict(config.model)
    if classifier.windows is not None:
        options["window"] = list(classifier.windows)
    hf_config = QRNNConfig(vocab_size=len(vocab), **options, max_len=config.max_len, tie_word_embeddings=False,
                           pad_token_id=0, id2label={i: LABEL_NAMES[name] for i, name in enumerate(LABELS)})
    model = QRNNForSequenceClassification(hf_config)
    model.classifier.load_state_dict(classifier.state_dict())
    model.save_pretrained(folder)
    review_tokenizer(vocab.itos).save_pretrained(folder)
    return folder


def _new_folder(folder: Union[str, Path]) -> Path:
    """``folder`` as a Path, when it does not exist or is an empty directory.

    Raises:
        ConfigError: it holds files, or is a file.
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"{folder} exists and is not an empty directory: give a new folder for the export")
    return folder
