"""The configuration of SRFlow / cAttnFlow (the ``srflow`` family; the model is in :mod:`.srflow`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..core.errors import FlowError
from ..nn.rrdb import SCALE, SCALES
from .config import AttentionOptions

# level l (HR/2^l) sees the encoder map of its scale: scale/2^l times the LR size ("fea_up<that>")
LEVEL_MAPS = {8: {1: "fea_up4", 2: "fea_up2", 3: "fea_up1", 4: "fea_up0"},
              4: {1: "fea_up2", 2: "fea_up1", 3: "fea_up0", 4: "fea_up-1"}}


@dataclass
class SRFlowConfig(AttentionOptions):
    """Configuration of SRFlow / cAttnFlow (JSON-friendly; the defaults are SRFlow's CelebA 8× L4 K16)."""

    family: ClassVar[str] = "srflow"

    image_shape: tuple[int, int, int] = (3, 160, 160)  # HR; the LR input is (C, H/scale, W/scale)
    scale: int = SCALE  # 8 (CelebA, DF2K 8×) or 4 (DF2K 4×)
    levels: int = 4
    steps: int = 16
    hidden: int = 64
    extra_steps: int = 2
    nf: int = 64
    nb: int = 8
    gc: int = 32
    rrdb_blocks: tuple[int, ...] | None = None  # None: every other block ending with the last (1, 3, 5, 7)
    eps: float = 1e-4
    correct_splits: bool = False
    attention_cond: bool = True
    freeze_encoder_fraction: float = 0.0

    @property
    def blocks(self) -> tuple[int, ...]:
        if self.rrdb_blocks is not None:
            return tuple(int(b) for b in self.rrdb_blocks)
        return tuple(range(1, self.nb, 2)) if self.nb > 1 else (0,)

    @property
    def feature_channels(self) -> int:
        return self.nf * (1 + len(self.blocks))

    @property
    def lr_shape(self) -> tuple[int, int, int]:
        c, h, w = self.image_shape
        return c, h // self.scale, w // self.scale

    @property
    def level_maps(self) -> dict[int, str]:
        return LEVEL_MAPS[self.scale]

    def splits(self, level: int) -> bool:
        """Whether 1-based ``level`` factors out half its channels (the reference's rule unless corrected)."""
        return level < self.levels if self.correct_splits else level < self.levels - 1

    def validate(self) -> None:
        self._attention_ok()
        self._image_shape_ok()
        self._at_least_one("levels", "steps", "hidden", "nf", "nb", "gc")
        if self.scale not in SCALES:
            raise FlowError(f"config.scale must be one of {SCALES} (SR factor), got {self.scale}")
        if self.levels > len(self.level_maps):
            raise FlowError(f"{self.scale}× SRFlow has encoder maps for {len(self.level_maps)} levels; "
                            f"got levels={self.levels}")
        _, h, w = self.image_shape
        unit = max(self.scale, 2 ** self.levels)
        if h % unit or w % unit:
            raise FlowError(f"an HR image of {h}×{w} does not fit {self.scale}× SR with {self.levels} levels: height "
                            f"and width must be multiples of {unit} (LR = HR/{self.scale}, level l = HR/2^l)")
        if self.extra_steps < 0 or not 0 <= self.freeze_encoder_fraction < 1 or not self.eps > 0:
            raise FlowError("config.extra_steps must be >= 0, freeze_encoder_fraction in [0, 1) and eps > 0")
        if not self.blocks or any(not 0 <= b < self.nb for b in self.blocks):
            raise FlowError(f"config.rrdb_blocks={self.rrdb_blocks} must name blocks in 0..{self.nb - 1}")
