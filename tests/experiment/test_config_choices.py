"""The torch-free Config names the same choices as the layers that implement them, and composes
the training layer's option records from its flat fields."""

import pytest

from tfllmer_fast.experiment import config
from tfllmer_fast.graph import item_table
from tfllmer_fast.graph.checks import WEIGHTINGS
from tfllmer_fast.train.options import MODEL_DEFAULTS, MODELS, ModelOptions, TrainOptions


def test_config_choices_match_the_implementations():
    from tfllmer_fast.train.models import MODELS as IMPLEMENTED

    assert tuple(IMPLEMENTED) == MODELS == tuple(MODEL_DEFAULTS)
    assert config.INIT_MODES == item_table.INIT_MODES
    assert config.INIT_SCALES == item_table.SCALES
    assert config.GRAPH_WEIGHTINGS == WEIGHTINGS


def test_presets_name_config_fields():
    names = {f for f in config.Config.__dataclass_fields__}
    for preset in config.PRESETS.values():
        assert set(preset) <= names
        config.Config.from_dict(preset)


@pytest.mark.parametrize("model", MODELS)
def test_config_resolves_the_per_model_defaults_from_one_table(model):
    opts = config.Config(model=model).model_options
    assert (opts.n_layers, opts.dropout, opts.attn_dropout) == (
        MODEL_DEFAULTS[model]["n_layers"],
        MODEL_DEFAULTS[model]["dropout"],
        MODEL_DEFAULTS[model]["dropout"],
    )
    assert config.Config(model=model, dropout=0.1, attn_dropout=0.05).model_options.attn_dropout == 0.05
    assert (
        ModelOptions.for_model(model, hidden=32, normalize_items=True)
        == config.Config(model=model, hidden=32).model_options
    )


def test_options_reject_bad_values_with_the_field_named():
    with pytest.raises(ValueError, match="hidden must be >= 1"):
        ModelOptions(hidden=0)
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainOptions(loss="hinge")
    with pytest.raises(ValueError, match="lr must be > 0"):
        config.Config(lr=0)


def test_the_config_module_and_the_options_load_no_torch():
    import subprocess
    import sys

    code = (
        "import sys; import tfllmer_fast.experiment.config, tfllmer_fast.train.options; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
