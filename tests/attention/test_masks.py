"""The masks of Fig. 2."""
import pytest
import torch

from attnflow_core import FlowError, IMap
from attnflow_core.attention.masks import MASK_KINDS, make_mask


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_masks(kind):
    m = make_mask(kind, 6, 4, 4)
    assert m.shape == (6, 4, 4) and set(m.unique().tolist()) == {0.0, 1.0}
    assert abs(m.mean().item() - 0.5) < 1e-6
    if kind == "checkerboard":
        assert (m[:, 1:] != m[:, :-1]).all() and (m[1:] != m[:-1]).all() and (m[:, :, 1:] != m[:, :, :-1]).all()
    if kind == "spatial":
        assert (m == m[:1]).all() and (m[:, 1:] != m[:, :-1]).all()
    if kind == "channel":
        assert (m[:3] == 1).all() and (m[3:] == 0).all()
    if kind == "random":
        assert torch.equal(m, make_mask("random", 6, 4, 4))
        assert not torch.equal(m, make_mask("random", 6, 4, 4, seed=1))



def test_unknown_mask_name():
    with pytest.raises(FlowError, match="unknown mask"):
        IMap(4, mask="diagonal")
