"""The AWD-QRNN language-model recipes as :class:`~quasirnn.experiments.language_model.config.LMConfig` values (``lm train --preset``).

Each preset is one QRNN command of the salesforce/awd-lstm-lm README (Merity, Keskar & Socher
2017, arXiv 1708.02182; 2018, arXiv 1803.08240), read option by option (:func:`awd_values`) over
that repository's ``main.py`` defaults (:data:`AWD_MAIN_DEFAULTS`) and what its code fixes
(:data:`AWD_FIXED`), with nothing replaced: 4 QRNN layers (window 2, then 1), weight drop on
their gate projections, AR/TAR, embedding and locked dropouts, variable-length BPTT with the
learning rate scaled by the window length, SGD at lr 30 switching to averaged SGD by the
non-monotone trigger (NT-ASGD, ``nonmono`` 5) or Adam with the step decay ``--when``, the best
validation's weights tested with batch size 1. ``lm finetune`` follows the preset's fine-tuning
command (:attr:`LMPreset.finetune`, awd-lstm-lm's ``finetune.py``). Any option given on the
command line overrides the preset's value.

What differs from awd-lstm-lm's code, none of it a hyper-parameter: the random streams (torch
generators, not numpy's), a sampled window length rounded rather than truncated and kept within
[5, 2·bptt] (main.py only floors it at 5; finetune.py also caps it at bptt + 10), and with
``--when`` the run's learning rate, not param group 0's. The runs are long (hundreds of epochs),
so presets lift the 20-minute ``time_budget`` (0 = none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from quasirnn.errors import ConfigError
from quasirnn.experiments.language_model.cache_pointer import NeuralCache
from quasirnn.experiments.language_model.config import LMConfig

__all__ = ["AWD_FIXED", "AWD_MAIN_DEFAULTS", "CACHE_DEFAULTS", "LMPreset", "PRESETS", "awd_values",
           "cache_defaults", "new_run_defaults"]

#: awd-lstm-lm ``main.py``'s (and ``finetune.py``'s) defaults, under this project's names: emsize
#: 400, nhid 1150, nlayers 3, lr 30, clip 0.25, epochs 8000, batch_size 80, bptt 70, dropout 0.4,
#: dropouth 0.3, dropouti 0.65, dropoute 0.1, wdrop 0.5, seed 1111, nonmono 5, alpha 2, beta 1,
#: wdecay 1.2e-6, optimizer sgd, when -1 (never).
AWD_MAIN_DEFAULTS: dict[str, Any] = {
    "emb_size": 400, "hidden_size": 1150, "num_layers": 3, "lr": 30.0, "clip": 0.25, "epochs": 8000,
    "batch_size": 80, "bptt": 70, "dropout": 0.4, "dropouth": 0.3, "dropouti": 0.65, "dropoute": 0.1,
    "wdrop": 0.5, "seed": 1111, "nonmono": 5, "alpha": 2.0, "beta": 1.0, "wdecay": 1.2e-6, "optimizer": "sgd",
    "when": [],
}
#: What awd-lstm-lm's code fixes for a QRNN model: tied weights, QRNN windows 2 then 1 (None: the
#: paper's :data:`~quasirnn.models.paper_windows.AWD_QRNN_WINDOWS`), no zoneout, variable BPTT,
#: validation batch 10 and test batch 1, the best validation's model tested, a full softmax up to
#: 75,000 words (its split softmax above), float32; here also no plateau decay and no time budget
#: (``--precision auto`` would train in bf16 on a CPU with bfloat16 instructions).
AWD_FIXED: dict[str, Any] = {
    "cell": "qrnn", "window": None, "zoneout": 0.0, "tie_weights": True, "variable_bptt": True,
    "eval_batch_size": 10, "test_batch_size": 1, "keep_best": True, "softmax": "full", "cutoffs": None,
    "precision": "32", "lr_decay": 1.0, "lr_patience": 0, "time_budget": 0.0,
}
#: awd-lstm-lm option → LMConfig field (options of the README's QRNN commands; data and save paths
#: are the run's own).
_AWD_NAMES = {"emsize": "emb_size", "nhid": "hidden_size", "nlayers": "num_layers"}
_IGNORED = ("data", "save", "model")


def awd_values(command: str) -> dict[str, Any]:
    """The LMConfig values an awd-lstm-lm command line gives (``--model QRNN`` is the cell; ``--data``
    and ``--save`` are left out).

    Raises:
        ValueError: an option this mapping does not know, or a model other than QRNN.

    Example::

        >>> awd_values("main.py --model QRNN --nhid 1550 --wdrop 0.1 --when 12 --optimizer adam --save x.pt")
        {'hidden_size': 1550, 'wdrop': 0.1, 'when': [12], 'optimizer': 'adam'}
    """
    values: dict[str, Any] = {}
    words = command.split()[1:]
    i = 0
    while i < len(words):
        flag = words[i]
        args = []
        i += 1
        while i < len(words) and not words[i].startswith("--"):
            args.append(words[i])
            i += 1
        name = flag[2:]
        if name == "model" and args != ["QRNN"]:
            raise ValueError(f"the presets are QRNN recipes, got --model {' '.join(args)}")
        if name in _IGNORED:
            continue
        key = _AWD_NAMES.get(name, name)
        if key not in AWD_MAIN_DEFAULTS:
            raise ValueError(f"unknown awd-lstm-lm option --{name}")
        default = AWD_MAIN_DEFAULTS[key]
        if isinstance(default, list):
            values[key] = [int(a) for a in args]
        else:
            values[key] = type(default)(args[0]) if not isinstance(default, str) else args[0]
    return values


@dataclass(frozen=True)
class LMPreset:
    """One recipe: the config values it sets, and what the awd-lstm-lm README reports for it.

    Attributes:
        name: the ``--preset`` value.
        command: the README's ``main.py`` command line it follows.
        config: the recipe's configuration (``preset`` is its name).
        reported: name → perplexity reported by the README (valid/test, finetuned where given).
        finetune_command: the README's ``finetune.py`` command ("" where it gives none).
        finetune: what ``lm finetune`` sets besides averaged SGD: the values in which
            :attr:`finetune_command` differs from :attr:`command` (e.g. PTB's seed 404 and 300 epochs).
    """

    name: str
    command: str
    config: LMConfig
    reported: dict[str, float] = field(default_factory=dict)
    finetune_command: str = ""
    finetune: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: the preset and its reported perplexities, e.g. for a run's first log line."""
        reported = ", ".join(f"{k} {v}" for k, v in self.reported.items())
        return f"preset {self.name} (AWD-QRNN reports {reported})"


def _preset(name: str, command: str, reported: dict[str, float], finetune_command: str = "",
            extra: Mapping[str, Any] = ()) -> LMPreset:
    trained = awd_values(command)
    values = {**AWD_MAIN_DEFAULTS, **AWD_FIXED, **dict(extra), **trained}
    finetune = {k: v for k, v in awd_values(finetune_command).items() if trained.get(k) != v} if finetune_command else {}
    return LMPreset(name, command, LMConfig().replace(**values, preset=name), reported, finetune_command, finetune)


PRESETS: dict[str, LMPreset] = {
    preset.name: preset
    for preset in (
        _preset(
            "awd-qrnn-ptb",
            "main.py --model QRNN --batch_size 20 --clip 0.2 --wdrop 0.1 --nhid 1550 --nlayers 4 --emsize 400 "
            "--dropouth 0.3 --seed 9001 --dropouti 0.4 --epochs 550 --save PTB.pt",
            {"valid": 60.6, "test": 58.3, "finetuned test": 56.7},
            "finetune.py --model QRNN --batch_size 20 --clip 0.2 --wdrop 0.1 --nhid 1550 --nlayers 4 --emsize 400 "
            "--dropouth 0.3 --seed 404 --dropouti 0.4 --epochs 300 --save PTB.pt",
        ),
        _preset(
            "awd-qrnn-wt2",
            "main.py --epochs 500 --data data/wikitext-2 --clip 0.25 --dropouti 0.4 --dropouth 0.2 --nhid 1550 "
            "--nlayers 4 --seed 4002 --model QRNN --wdrop 0.1 --batch_size 40 --save WT2.pt",
            {"valid": 69.3, "test": 66.8, "finetuned test": 65.9},
            "finetune.py --epochs 500 --data data/wikitext-2 --clip 0.25 --dropouti 0.4 --dropouth 0.2 --nhid 1550 "
            "--nlayers 4 --seed 4002 --model QRNN --wdrop 0.1 --batch_size 40 --save WT2.pt",
        ),
        _preset(
            "awd-qrnn-wt103",
            "main.py --epochs 14 --nlayers 4 --emsize 400 --nhid 2500 --alpha 0 --beta 0 --dropoute 0 "
            "--dropouth 0.1 --dropouti 0.1 --dropout 0.1 --wdrop 0 --wdecay 0 --bptt 140 --batch_size 60 "
            "--optimizer adam --lr 1e-3 --data data/wikitext-103 --save WT103.12hr.QRNN.pt --when 12 --model QRNN",
            {"test": 33.0},
            # awd-lstm-lm's split softmax for 75,000-500,000 words, tied to the embedding
            extra={"softmax": "adaptive", "cutoffs": [2800, 20000, 76000]},
        ),
    )
}


def new_run_defaults(given: Mapping[str, Any]) -> LMConfig:
    """The configuration a new run's options (``given``, flat) replace: the recipe of ``given["preset"]``
    (without its cutoffs when another ``softmax`` is given without cutoffs: they belong to its
    softmax), else :class:`LMConfig`'s defaults.

    Raises:
        ConfigError: a ``window`` given with a cell other than qrnn (which reads one step at a time).

    Example::

        >>> config = new_run_defaults({"preset": "awd-qrnn-wt103", "softmax": "full"})
        >>> config.model.emb_size, config.model.cutoffs
        (400, None)
    """
    defaults = LMConfig()
    if given.get("preset") is not None:
        defaults = PRESETS[given["preset"]].config
        if given.get("softmax") is not None and given.get("cutoffs") is None:
            defaults = defaults.replace(cutoffs=None)
    cell = given.get("cell") or defaults.model.cell
    if given.get("window") is not None and cell != "qrnn":
        raise ConfigError(f"--window is the qrnn convolution width; --cell {cell} reads one step at a time, so leave it out")
    return defaults


#: The neural cache's settings of each preset's run (``lm eval --cache-pointer``): the ``pointer.py``
#: commands of the awd-lstm-lm README (PTB: ``--window 500 --theta 1.0 --lambdasm 0.1``, which took
#: its QRNN from 56.7 to 52.6 test perplexity; WikiText-2: ``--window 3785 --theta 0.662 --lambdasm
#: 0.1279``, 65.9 to 52.1). The README has no cache command for WikiText-103: the WikiText-2 values
#: (the same Wikipedia text; ``pointer.py``'s own defaults).
CACHE_DEFAULTS: dict[str, NeuralCache] = {
    "awd-qrnn-ptb": NeuralCache(window=500, theta=1.0, lambd=0.1),
    "awd-qrnn-wt2": NeuralCache(window=3785, theta=0.662, lambd=0.1279),
    "awd-qrnn-wt103": NeuralCache(window=3785, theta=0.662, lambd=0.1279),
}


def cache_defaults(preset: Optional[str]) -> NeuralCache:
    """The neural cache's settings for a run trained from ``preset``: :data:`CACHE_DEFAULTS`'
    entry, else (no preset, or one without an entry) the PTB values.

    Example::

        >>> cache_defaults("awd-qrnn-wt2").window, cache_defaults(None).as_dict()
        (3785, {'window': 500, 'theta': 1.0, 'lambda': 0.1})
    """
    return CACHE_DEFAULTS.get(preset or "", CACHE_DEFAULTS["awd-qrnn-ptb"])
