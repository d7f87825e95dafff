"""``quasirnn lm export`` and ``quasirnn classify export``: a trained run as a Hugging Face folder
(:mod:`quasirnn.hf.export`; ``pip install 'quasirnn[hf]'``, imported only when the command runs)."""

from __future__ import annotations

import argparse

from quasirnn.errors import ConfigError
from quasirnn.training.launch import checkpoint_path

__all__ = ["EXPORTERS", "add_export_parser", "run_export"]

#: The function of :mod:`quasirnn.hf.export` each command group's ``export`` runs, and what it loads the folder with.
EXPORTERS = {"lm": ("export_language_model", "AutoModelForCausalLM, AutoTokenizer and pipeline('text-generation')"),
             "classify": ("export_classifier",
                          "AutoModelForSequenceClassification, AutoTokenizer and pipeline('text-classification')")}


def add_export_parser(sub: argparse._SubParsersAction, group: str, what: str, contents: str) -> None:
    """Registers ``GROUP export --checkpoint RUN --hf DIR`` on ``group``'s sub-commands (a key of
    :data:`EXPORTERS`); ``what`` names the model, ``contents`` the weights and tokenizer written."""
    x = sub.add_parser("export", help=f"write a trained {what} as a Hugging Face folder",
                       description=f"Write a trained run as a Hugging Face transformers folder: config.json, "
                                   f"{contents}. After `import quasirnn.hf`, {EXPORTERS[group][1]} load it. Needs "
                                   f"pip install 'quasirnn[hf]'.")
    x.set_defaults(func=run_export, export_group=group)
    x.add_argument("--checkpoint", required=True, metavar="RUN", help="checkpoint file, or a run's output directory")
    x.add_argument("--hf", required=True, metavar="DIR", help="the folder to write (new, or empty)")


def run_export(args: argparse.Namespace) -> int:
    """``quasirnn lm|classify export --hf DIR``: writes the run as a Hugging Face folder.

    Raises:
        ConfigError: transformers is not installed, or DIR is not new or empty; CheckpointError: see the message.
    """
    try:
        from quasirnn.hf import export
    except ImportError as exc:
        raise ConfigError(f"{args.export_group} export needs {exc.name}: pip install 'quasirnn[hf]'") from None
    folder = getattr(export, EXPORTERS[args.export_group][0])(checkpoint_path(args.checkpoint), args.hf)
    print(f"wrote {folder} (config.json, model.safetensors, tokenizer.json)")
    return 0
