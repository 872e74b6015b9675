"""Fig. 5 (left) / supp. Fig. 8: where to insert the attention, pos-1 … pos-4, for iMap and iTrans.

The paper reports pos-3 and pos-4 as best; it gives these numbers only as plots.
"""
from __future__ import annotations

from ..spec import register_table
from ._ablations import Ablation


class AblationPositions(Ablation):
    name = "ablation_positions"
    description = "Fig. 5 (left) / supp. Fig. 8: attention position pos-1..pos-4, iMap and iTrans"
    order = 30

    def points(self, attentions: list[str], positions: list[int]) -> list[dict]:
        return [dict(attention=str(a), position=int(p)) for a in attentions for p in positions]


SPEC = register_table(AblationPositions())
