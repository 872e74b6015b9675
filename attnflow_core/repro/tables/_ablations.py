"""Shared by the three ablations of §5 / Fig. 5: AttnFlow at Table 2's best MNIST row (L3 K2 C48).

Their grids (heads, positions, masks) are the parameters of their notebooks; a spec here turns one
grid point into a cell."""
from __future__ import annotations

from typing import Any

from ._mnist import MnistTable, cell_spec

BASE = dict(backbone="marflow", coupling="mixlogistic", L=3, K=2, C=48)


class Ablation(MnistTable):
    """A grid over attention settings: :meth:`points` gives one dict of FlowConfig overrides per cell."""

    paper_bpd: dict[str, float] = {}  # by the value of ``paper_key``
    paper_key = ""

    def points(self, **axes: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    def build(self, profile: str, **axes: Any) -> list[dict[str, Any]]:
        cells = []
        for attn in self.points(**axes):
            spec = cell_spec(profile, BASE["backbone"], BASE["coupling"], attn["attention"], BASE["L"], BASE["K"],
                             BASE["C"], **{k: v for k, v in attn.items() if k != "attention"})
            spec.update(table=self.name, label="-".join(f"{k}={v}" for k, v in attn.items()), grid=attn)
            if self.paper_key and attn[self.paper_key] in self.paper_bpd:
                spec["paper_bpd"] = self.paper_bpd[attn[self.paper_key]]
            cells.append(spec)
        return cells
