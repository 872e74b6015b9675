"""build_model dispatches on the model family; configs round-trip through dicts."""
import dataclasses

import pytest
from torch import nn

from attnflow_core import FlowConfig, FlowModel, build_model
from attnflow_core.core import UnknownNameError
from attnflow_core.models import MODELS, config_to_dict, make_config, register_family


def test_configs_without_a_family_key_are_multiscale():
    m = build_model({"levels": 2, "steps": 1, "hidden": 8, "image_shape": (1, 8, 8)})
    assert isinstance(m, FlowModel) and m.config.levels == 2
    assert build_model(FlowConfig(levels=1, steps=1, hidden=4, image_shape=(1, 8, 8)), steps=2).config.steps == 2
    assert "multiscale" in MODELS


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="multiscale"):
        build_model({"family": "nope"})


def test_a_new_family_is_one_registration():
    @dataclasses.dataclass
    class ToyConfig:
        family = "toy_for_test"
        width: int = 3

        @classmethod
        def from_dict(cls, d):
            return cls(**d)

        def to_dict(self):
            return dataclasses.asdict(self)

    register_family("toy_for_test", ToyConfig, lambda cfg: nn.Linear(cfg.width, 1))
    try:
        m = build_model({"family": "toy_for_test", "width": 5})
        assert isinstance(m, nn.Linear) and m.in_features == 5
        assert config_to_dict(make_config({"family": "toy_for_test"})) == {"family": "toy_for_test", "width": 3}
    finally:
        MODELS._items.pop("toy_for_test")
