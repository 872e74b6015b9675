"""The Jacobian walkthrough notebook (no grid cells): masks, Jacobians and closed-form log-dets."""
from __future__ import annotations

from pathlib import Path

from ..spec import NotebookSpec, register_table


class JacobianWalkthrough(NotebookSpec):
    name = "jacobian_walkthrough"
    description = ("Eq. 6–9 on a tiny tensor: the masks (Fig. 2), Jacobians of iMap/iTrans and their "
                   "closed-form log-dets")
    order = 10

    def outputs(self, out_dir: Path) -> list[Path]:
        return sorted(p for p in out_dir.glob("*.png") if p.name.startswith(("fig2_", "jacobian_")))


SPEC = register_table(JacobianWalkthrough())
