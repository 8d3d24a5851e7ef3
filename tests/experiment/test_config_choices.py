"""The torch-free Config names the same choices as the layers that implement them."""

from tfllmer_fast.experiment import config
from tfllmer_fast.graph import item_table
from tfllmer_fast.graph.checks import WEIGHTINGS
from tfllmer_fast.train import LOSSES, MODELS
from tfllmer_fast.train.models import POSITIONS
from tfllmer_fast.train.rows import ROW_LAYOUTS
from tfllmer_fast.train.runtime import COMPILE_MODES


def test_config_choices_match_the_implementations():
    assert config.MODELS == tuple(MODELS) == tuple(config.DEFAULT_DROPOUT)
    assert config.LOSSES == LOSSES
    assert config.POSITIONS == POSITIONS
    assert config.INIT_MODES == item_table.INIT_MODES
    assert config.INIT_SCALES == item_table.SCALES
    assert config.GRAPH_WEIGHTINGS == WEIGHTINGS
    assert config.TRAIN_SAMPLES == ROW_LAYOUTS
    assert config.COMPILE_MODES == COMPILE_MODES


def test_presets_name_config_fields():
    names = {f for f in config.Config.__dataclass_fields__}
    for preset in config.PRESETS.values():
        assert set(preset) <= names
        config.Config.from_dict(preset)
