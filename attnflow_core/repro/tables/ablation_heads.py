"""Fig. 5 (right) / supp. Fig. 9: the number of iTrans heads (the paper finds 5 best; plots only)."""
from __future__ import annotations

from ..spec import register_table
from ._ablations import Ablation


class AblationHeads(Ablation):
    name = "ablation_heads"
    description = "Fig. 5 (right) / supp. Fig. 9: number of iTrans heads 1, 3, 5, 7"
    order = 40

    def points(self, heads: list[int]) -> list[dict]:
        return [dict(attention="itrans", position=4, heads=int(h)) for h in heads]


SPEC = register_table(AblationHeads())
