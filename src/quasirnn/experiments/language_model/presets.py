"""The AWD-QRNN language-model recipes as :class:`~quasirnn.experiments.language_model.config.LMConfig` values (``lm train --preset``).

Each preset holds the values of one QRNN command of the salesforce/awd-lstm-lm README (Merity,
Keskar & Socher 2017, arXiv 1708.02182; 2018, arXiv 1803.08240), with the options that command
leaves out taken from that repository's ``main.py`` defaults (embedding 400, dropout 0.4,
dropoute 0.1, BPTT 70, SGD at lr 30, weight decay 1.2e-6), and the perplexities the README
reports beside the command. Any option given on the command line overrides the preset's value.

What ``lm train`` lacks, and what each preset uses instead:

- **NT-ASGD** (SGD that switches to iterate averaging when validation stops improving for
  ``nonmono`` = 5 epochs; PTB, WikiText-2): plain SGD at the same learning rate, halved when
  validation perplexity has not improved for 5 epochs (``lr_decay`` 0.5, ``lr_patience`` 5).
- **Fine-tuning** (``finetune.py``, a second ASGD run: PTB 56.7): not available; the preset
  trains the first stage only (58.3 is the number to compare with).
- **Weight drop** on the QRNN's weights (``wdrop``) and **AR/TAR** activation regularisation
  (``alpha`` 2, ``beta`` 1 on PTB and WikiText-2): not available; left out.
- **A step schedule** (``--when 12``: learning rate ÷ 10 at epoch 12 of 14, WikiText-103):
  the plateau decay with factor 0.1 and patience 0, which divides by 10 at the first epoch
  without improvement instead.
- **Test batch size 1**: the test split is evaluated with ``eval_batch_size`` (10) like
  validation.

The runs are long (hundreds of epochs), so presets lift the 20-minute ``time_budget`` (0 = none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from quasirnn.errors import ConfigError
from quasirnn.experiments.language_model.cache_pointer import NeuralCache
from quasirnn.experiments.language_model.config import LMConfig

__all__ = ["CACHE_DEFAULTS", "LMPreset", "PRESETS", "cache_defaults", "new_run_defaults"]


@dataclass(frozen=True)
class LMPreset:
    """One recipe: the config values it sets, and what the awd-lstm-lm README reports for it.

    Attributes:
        name: the ``--preset`` value.
        command: the README's command line it follows.
        config: the recipe's configuration (``preset`` is its name).
        reported: name → perplexity reported by the README (valid/test, finetuned where given).
    """

    name: str
    command: str
    config: LMConfig
    reported: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: the preset and its reported perplexities, e.g. for a run's first log line."""
        reported = ", ".join(f"{k} {v}" for k, v in self.reported.items())
        return f"preset {self.name} (AWD-QRNN reports {reported})"


_SGD = {"optimizer": "sgd", "lr": 30.0, "wdecay": 1.2e-6, "lr_decay": 0.5, "lr_patience": 5}
_COMMON = {"cell": "qrnn", "emb_size": 400, "window": None, "zoneout": 0.0, "tie_weights": True, "bptt": 70,
           "variable_bptt": True, "eval_batch_size": 10, "time_budget": 0.0, "num_layers": 4}
#: PTB and WikiText-2: 4 × 1550 with the full softmax (awd-lstm-lm splits it only above 75,000 words), SGD.
_SMALL = {**_COMMON, **_SGD, "hidden_size": 1550, "dropout": 0.4, "dropouti": 0.4, "dropoute": 0.1,
          "softmax": "full", "cutoffs": None}


def _preset(name: str, command: str, values: dict, reported: dict[str, float]) -> LMPreset:
    return LMPreset(name, command, LMConfig().replace(**values, preset=name), reported)


PRESETS: dict[str, LMPreset] = {
    preset.name: preset
    for preset in (
        _preset(
            "awd-qrnn-ptb",
            "main.py --model QRNN --batch_size 20 --clip 0.2 --wdrop 0.1 --nhid 1550 --nlayers 4 --emsize 400 "
            "--dropouth 0.3 --seed 9001 --dropouti 0.4 --epochs 550",
            {**_SMALL, "dropouth": 0.3, "batch_size": 20, "clip": 0.2, "epochs": 550, "seed": 9001},
            {"valid": 60.6, "test": 58.3, "finetuned test": 56.7},
        ),
        _preset(
            "awd-qrnn-wt2",
            "main.py --epochs 500 --data data/wikitext-2 --clip 0.25 --dropouti 0.4 --dropouth 0.2 --nhid 1550 "
            "--nlayers 4 --seed 4002 --model QRNN --wdrop 0.1 --batch_size 40",
            {**_SMALL, "dropouth": 0.2, "batch_size": 40, "clip": 0.25, "epochs": 500, "seed": 4002},
            {"valid": 69.3, "test": 66.8},
        ),
        _preset(
            "awd-qrnn-wt103",
            "main.py --epochs 14 --nlayers 4 --emsize 400 --nhid 2500 --alpha 0 --beta 0 --dropoute 0 "
            "--dropouth 0.1 --dropouti 0.1 --dropout 0.1 --wdrop 0.5 --wdecay 0 --bptt 140 --batch_size 60 "
            "--optimizer adam --lr 1e-3 --data data/wikitext-103 --when 12 --model QRNN",
            {**_COMMON, "hidden_size": 2500, "dropout": 0.1, "dropouth": 0.1, "dropouti": 0.1,
             "dropoute": 0.0, "wdecay": 0.0, "bptt": 140, "batch_size": 60, "optimizer": "adam", "lr": 1e-3,
             "clip": 0.25, "lr_decay": 0.1, "lr_patience": 0, "epochs": 14, "seed": 1111,
             # awd-lstm-lm's split softmax for 75,000-500,000 words, tied to the embedding
             "softmax": "adaptive", "cutoffs": [2800, 20000, 76000]},
            {"test": 33.0},
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
