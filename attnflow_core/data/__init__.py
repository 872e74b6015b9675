"""Data: loaders behind a registry, paired samples, map-style datasets and deterministic batch sources.

Belongs here: one loader per data set (registered by name with its native shape), storage conventions
(``standard`` / ``padded``), paired ``(x, cond)`` data, file-backed map-style datasets for data too big
to hold in memory, and the batch sources the trainer reads: also CelebA (HR/LR), Cityscapes
(label/photo) and the stand-ins built from images bundled with installed packages.
Not here: models, metrics, training. Imports ``core`` only.
"""
from ..core.errors import DataError, DataNotFoundError
from ..core.registry import import_submodules
from .batches import BatchSource, DatasetBatches, TensorBatches, batch_indices, step_seed
from .conventions import CONVENTIONS, ImageData, apply_convention
from .paired import FileListDataset, PairedImages
from .registry import DATASETS, dataset_shape, load_dataset, register_dataset, resolve_root

import_submodules(__name__)  # every loader module registers its data sets

__all__ = ["DataError", "DataNotFoundError", "BatchSource", "DatasetBatches", "TensorBatches", "batch_indices",
           "step_seed", "CONVENTIONS", "ImageData", "apply_convention", "FileListDataset", "PairedImages",
           "DATASETS", "dataset_shape", "load_dataset", "register_dataset", "resolve_root"]
