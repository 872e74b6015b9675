"""§5 mask ablation of AttnFlow-iMap. Paper (MNIST): spatial 0.99, channel 0.75, random 0.50,
spatial-channel checkerboard 0.39 bits/dim."""
from __future__ import annotations

from ..spec import register_table
from ._ablations import Ablation


class AblationMasks(Ablation):
    name = "ablation_masks"
    description = "§5 mask ablation: spatial, channel, random, spatial-channel checkerboard (iMap)"
    order = 50
    paper_bpd = {"spatial": 0.99, "channel": 0.75, "random": 0.50, "checkerboard": 0.39}
    paper_key = "mask"

    def points(self, masks: list[str]) -> list[dict]:
        return [dict(attention="imap", position=4, mask=str(m)) for m in masks]


SPEC = register_table(AblationMasks())
