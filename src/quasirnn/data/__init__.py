"""Corpora for the paper's experiments.

Word-level language modeling (QRNN paper §3.2): :func:`load_corpus` reads a directory of
``{train,valid,test}`` files in Mikolov's format, :func:`batchify` and :func:`bptt_batches`
cut the id streams into (T, B) batches, and :func:`resolve_data_dir` finds (or downloads)
the Penn Treebank.

Document classification (QRNN paper §3.1): :mod:`quasirnn.data.imdb` reads the IMDb archive
or an extracted ``aclImdb/``, tokenizes, builds the vocabulary and makes padded batches.

Character-level translation (QRNN paper §3.3): :mod:`quasirnn.data.bitext` reads parallel
text files (plain or gzip; Multi30k stands in for IWSLT), builds character vocabularies
(:class:`CharVocab`) and makes length-bucketed padded batches.
"""

from quasirnn.data.download import PTB_SHA256, PTB_URLS, cache_dir, download_ptb, resolve_data_dir
from quasirnn.data.bitext import CharVocab, ParallelSplit, read_parallel
from quasirnn.data.lm_corpus import (
    EOS,
    SPLITS,
    UNK,
    Corpus,
    Vocabulary,
    batchify,
    bptt_batches,
    encode_file,
    find_split_file,
    get_batch,
    load_corpus,
    read_tokens,
    sample_seq_len,
)

__all__ = [
    "EOS",
    "CharVocab",
    "ParallelSplit",
    "PTB_SHA256",
    "PTB_URLS",
    "SPLITS",
    "UNK",
    "Corpus",
    "Vocabulary",
    "batchify",
    "bptt_batches",
    "cache_dir",
    "download_ptb",
    "encode_file",
    "find_split_file",
    "get_batch",
    "load_corpus",
    "read_parallel",
    "read_tokens",
    "resolve_data_dir",
    "sample_seq_len",
]
