"""Corpora for the paper's experiments.

Word-level language modeling (QRNN paper §3.2): :func:`load_corpus` reads a directory of
``{train,valid,test}`` files in Mikolov's format, :func:`batchify` and :func:`bptt_batches`
cut the id streams into (T, B) batches, and :func:`resolve_data_dir` finds (or downloads)
the Penn Treebank. :mod:`quasirnn.data.paths` says where corpora are looked for and where the
caches go (the user cache, :func:`cache_dir`; never the data's directory).

Document classification (QRNN paper §3.1): :mod:`quasirnn.data.imdb_reader` reads the IMDb
archive or an extracted ``aclImdb/``; :mod:`quasirnn.data.imdb` tokenizes, builds the vocabulary
and encodes the reviews.

Character-level translation (QRNN paper §3.3): :mod:`quasirnn.data.bitext` reads parallel
text files (plain or gzip; Multi30k stands in for IWSLT).

Vocabularies (:mod:`quasirnn.data.vocabulary`): :class:`Vocabulary` (words, for the LM corpus and
IMDb) and :class:`CharVocab` (characters, for translation).

Batches of variable-length sequences (classification, translation): :mod:`quasirnn.data.batching`
groups them by length (:func:`length_batches`) and right-pads them (:func:`pad_batch`).
"""

from quasirnn.data.download import PTB_SHA256, PTB_URLS, download_ptb, resolve_data_dir
from quasirnn.data.paths import cache_dir
from quasirnn.data.batching import length_batches, pad_batch
from quasirnn.data.bitext import ParallelSplit, read_parallel
from quasirnn.data.lm_corpus import (
    EOS_TOKEN,
    SPLITS,
    UNK_TOKEN,
    Corpus,
    batchify,
    bptt_batches,
    encode_file,
    find_split_file,
    get_batch,
    load_corpus,
    read_tokens,
    sample_seq_len,
)
from quasirnn.data.vocabulary import CharVocab, Vocabulary

__all__ = [
    "EOS_TOKEN",
    "CharVocab",
    "ParallelSplit",
    "PTB_SHA256",
    "PTB_URLS",
    "SPLITS",
    "UNK_TOKEN",
    "Corpus",
    "Vocabulary",
    "batchify",
    "bptt_batches",
    "cache_dir",
    "download_ptb",
    "encode_file",
    "find_split_file",
    "get_batch",
    "length_batches",
    "load_corpus",
    "pad_batch",
    "read_parallel",
    "read_tokens",
    "resolve_data_dir",
    "sample_seq_len",
]
