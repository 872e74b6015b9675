"""``CONTRACTIVE_ATTENTIONS``: ACF's and Zha's maps built by name with declared options; Zha's corrected form
refuses the published form's ``normalise``."""
import pytest
import torch

from attnflow_core.core.errors import FlowError
from attnflow_core.nn import L2SelfAttention, LipschitzDotAttention, ZhaAttention
from attnflow_core.nn.contractive_attention import CONTRACTIVE_ATTENTIONS, AttentionKind, kinds_placed


def test_kinds_options_and_placements():
    assert {n: (k.options, k.placement) for n, k in CONTRACTIVE_ATTENTIONS.items()} == {
        "acf_l2": (("heads", "window"), "branch"), "acf_dot": (("window",), "branch"),
        "idp": (("variant", "normalise", "coeff"), "block"), "icon": (("variant", "normalise", "coeff"), "block")}
    assert kinds_placed(CONTRACTIVE_ATTENTIONS, "branch") == ("acf_l2", "acf_dot")


def test_builds_the_same_map_as_the_class():
    torch.manual_seed(0)
    a = CONTRACTIVE_ATTENTIONS["acf_l2"](8, heads=2, window=2)
    torch.manual_seed(0)
    b = L2SelfAttention(8, heads=2, window=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert isinstance(CONTRACTIVE_ATTENTIONS["acf_dot"](8), LipschitzDotAttention)
    z = CONTRACTIVE_ATTENTIONS["icon"](8, variant="published")
    assert isinstance(z, ZhaAttention) and (z.kind, z.variant, z.normalise) == ("icon", "published", "global")


def test_an_option_a_kind_does_not_take_is_refused():
    with pytest.raises(FlowError, match=r"attention 'acf_dot' does not take option\(s\) \['heads'\]; its options are \['window'\]"):
        CONTRACTIVE_ATTENTIONS["acf_dot"](8, heads=2)
    with pytest.raises(FlowError, match="must name its options"):
        AttentionKind("x", lambda channels, **kw: None, "branch")


def test_zha_corrected_refuses_normalise():
    # the corrected form always normalises per output over the inputs: a normalise option would be ignored
    for normalise in ("global", "column"):
        with pytest.raises(FlowError, match="applies to the published form only"):
            ZhaAttention(8, "idp", "corrected", normalise)
    assert ZhaAttention(8, "idp", "published", "column").normalise == "column"
    assert ZhaAttention(8, "idp", "corrected").normalise is None
