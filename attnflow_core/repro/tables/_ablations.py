"""Shared by the three ablations of §5 / Fig. 5: AttnFlow at Table 2's best MNIST row (L3 K2 C48)."""
from __future__ import annotations

from typing import Any

from ._mnist import MnistTable, cell_spec

BASE = dict(backbone="marflow", coupling="mixlogistic", L=3, K=2, C=48)


class Ablation(MnistTable):
    """A grid over attention settings (``grid``: one dict of FlowConfig overrides per cell)."""

    grid: list[dict[str, Any]] = []
    paper_bpd: dict[str, float] = {}  # by the value of ``paper_key``
    paper_key = ""

    def cells(self, profile: str) -> list[dict[str, Any]]:
        cells = []
        for attn in self.grid:
            spec = cell_spec(profile, BASE["backbone"], BASE["coupling"], attn["attention"], BASE["L"], BASE["K"],
                             BASE["C"], **{k: v for k, v in attn.items() if k != "attention"})
            spec.update(table=self.name, label="-".join(f"{k}={v}" for k, v in attn.items()), grid=attn)
            if self.paper_key:
                spec["paper_bpd"] = self.paper_bpd[attn[self.paper_key]]
            cells.append(spec)
        return cells
