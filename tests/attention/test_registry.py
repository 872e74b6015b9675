"""``ATTENTIONS``: every kind declares its options and refuses any other (a misspelt option used to be
dropped silently), and a config hands a kind only the options it takes."""
import pytest

from attnflow_core.attention import ATTENTIONS
from attnflow_core.core.errors import FlowError
from attnflow_core.models.multiscale import FlowConfig

OPTIONS = {"imap": ("cond_channels", "mask", "mask_seed", "size"),
           "itrans": ("cond_channels", "mask", "mask_seed", "heads", "patches", "qk_channels", "size")}


def test_every_kind_declares_its_options():
    assert {n: ATTENTIONS[n].options for n in ATTENTIONS} == OPTIONS


@pytest.mark.parametrize("kind,bad", [("imap", "mask_sed"), ("imap", "heads"), ("itrans", "patch")])
def test_an_unknown_option_is_refused_naming_the_valid_ones(kind, bad):
    with pytest.raises(FlowError, match=rf"attention '{kind}' does not take option\(s\) \['{bad}'\]; its options are"):
        ATTENTIONS[kind](4, **{bad: 1})


@pytest.mark.parametrize("kind", sorted(OPTIONS))
def test_a_config_passes_only_the_options_of_its_kind(kind):
    cfg = FlowConfig(image_shape=(3, 8, 8), levels=1, steps=1, hidden=8, heads=2, attention=kind)
    opts = cfg.attention_options()
    assert set(opts) == set(OPTIONS[kind]) - {"cond_channels", "size"}
    assert type(cfg.attention_layer(4, size=(4, 4))).__name__ == {"imap": "IMap", "itrans": "ITrans"}[kind]
    assert FlowConfig().attention_options() == {}
