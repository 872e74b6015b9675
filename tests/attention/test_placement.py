"""One rule places an attention layer in every step kind (FlowStep, SRFlowStep, FullGlowStep), and the
state-dict keys of the attention models are those of the base commit (2a8e5bc) the placement replaced."""
import json
from pathlib import Path

import pytest
import torch

from attnflow_core.attention import POSITIONS, attention_index, place_attention
from attnflow_core.core.errors import FlowError
from attnflow_core.models import build_model

KEYS = json.loads((Path(__file__).parents[1] / "fixtures" / "state_dict_keys" / "attention_models.json").read_text())


@pytest.mark.parametrize("position", POSITIONS)
def test_one_rule_gives_the_indices_each_step_used(position):
    # FlowStep and FullGlowStep inserted at position - 1 into [ActNorm, 1×1, coupling]; SRFlowStep used its
    # own map {1: 0, 2: 1, 3: 2, 4: 4} into [ActNorm, 1×1, injector, coupling]
    assert attention_index(position, 3) == position - 1
    assert attention_index(position, 4) == {1: 0, 2: 1, 3: 2, 4: 4}[position]
    layers = ["act", "w", "inj", "cpl"]
    assert place_attention(layers, "attn", position) == attention_index(position, 4)
    after = {1: None, 2: "act", 3: "w", 4: "cpl"}[position]  # pos-1 before the ActNorm; pos-4 ends the step
    i = layers.index("attn")
    assert (layers[i - 1] if i else None) == after and len(layers) == 5


@pytest.mark.parametrize("bad", [0, 5, -1, True, "2", 2.0])
def test_a_bad_position_is_refused_naming_the_valid_ones(bad):
    with pytest.raises(FlowError, match=r"attention position must be one of \(1, 2, 3, 4\)"):
        place_attention(["act", "w", "cpl"], "attn", bad)


@pytest.mark.parametrize("name", [n for n in KEYS if not KEYS[n]["config"]["family"] == "resflow"])
def test_state_dict_keys_are_the_base_commits(name):
    torch.manual_seed(0)
    model = build_model(KEYS[name]["config"])
    assert list(model.state_dict()) == KEYS[name]["keys"]
