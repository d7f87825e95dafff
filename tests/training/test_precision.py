"""``auto`` precision: bf16 on CPUs with bfloat16 instructions, float32 elsewhere; every command's
``--precision``, resolved once per run."""

import pytest
import torch

from quasirnn.errors import ConfigError
from quasirnn.experiments.classification import EXPERIMENT as CLASSIFY
from quasirnn.experiments.classification import ClassifyConfig
from quasirnn.experiments.language_model import EXPERIMENT as LM
from quasirnn.experiments.language_model import LMConfig
from quasirnn.experiments.translation import EXPERIMENT as TRANSLATE
from quasirnn.experiments.translation import TranslateConfig
from quasirnn.training.config import TrainingConfig
from quasirnn.training.precision import autocast, cpu_has_bf16, resolve_precision


def test_auto_is_bf16_exactly_where_the_cpu_has_bf16_instructions():
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if cpu_has_bf16() else "32")


def test_auto_stays_float32_on_gpus_and_explicit_values_are_kept():
    assert resolve_precision("auto", torch.device("cuda")) == "32"
    assert resolve_precision("auto", torch.device("cpu"), prefer_bf16=False) == "32"
    for p in ("32", "bf16"):
        assert resolve_precision(p, torch.device("cpu"), prefer_bf16=False) == p


def test_unknown_or_impossible_precisions_are_refused():
    with pytest.raises(ConfigError, match="must be one of auto, 32, bf16, fp16"):
        resolve_precision("64", torch.device("cpu"))
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", torch.device("cpu"))


def test_autocast_takes_a_resolved_precision_and_refuses_auto():
    """The run resolves "auto" once (its owner); autocast, entered every step, only maps a resolved value."""
    x = torch.randn(4, 8)
    w = torch.randn(8, 3)
    for precision, dtype in (("32", torch.float32), ("bf16", torch.bfloat16)):
        with autocast(precision, x.device):
            assert (x @ w).dtype == dtype
    with autocast(resolve_precision("auto", x.device), x.device):
        y = x @ w
    assert y.dtype == (torch.bfloat16 if cpu_has_bf16() else torch.float32)
    for unresolved in ("auto", "64"):
        with pytest.raises(ValueError, match=f"autocast needs a resolved precision .*got '{unresolved}'"):
            autocast(unresolved, x.device)


@pytest.mark.parametrize("config, default", [(LMConfig, "auto"), (ClassifyConfig, "32"), (TranslateConfig, "32")])
def test_every_command_has_a_precision_field(config, default):
    assert config().run.precision == default and config().to_dict()["precision"] == default
    assert ("precision", "inherited") in config.resume_kinds().items()
    assert "precision" in dict(config.options())
    assert not hasattr(TrainingConfig, "precision")  # no hidden class attribute: the field of RunOptions
    older = {k: v for k, v in config().replace(precision="bf16").to_dict().items() if k != "precision"}
    assert config.from_dict(older).run.precision == default  # checkpoints written before the field


def test_a_run_resolves_its_precision_once_for_its_cell_and_device():
    cpu = torch.device("cpu")
    bf16 = "bf16" if cpu_has_bf16() else "32"
    assert LM.precision(LMConfig(), cpu) == bf16  # auto: bf16 for the qrnn, measured to pay
    assert LM.precision(LMConfig().replace(cell="lstm"), cpu) == "32"
    assert CLASSIFY.precision(ClassifyConfig().replace(precision="auto"), cpu) == "32"  # not measured: float32
    assert TRANSLATE.precision(TranslateConfig(), cpu, given="bf16") == "bf16"
    with pytest.raises(ConfigError, match=r"^--precision must be one of auto, 32, bf16, fp16, got '64'$"):
        CLASSIFY.precision(ClassifyConfig().replace(precision="64"), cpu)
