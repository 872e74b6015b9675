"""Whole models and their configs: no training, no I/O.

Belongs here: the model API (:class:`DensityFlow`), the multi-scale engine, conditioning routers, one
module per family (``multiscale``: Glow / mARFlow / AttnFlow; ``srflow``, ``fullglow``,
``resflow``) and the registry through which ``build_model(config)`` dispatches on the family.
A family module registers itself with :func:`register_family` when imported; every module of this
package is imported here, so a new family is one new file.
Imports ``core``, ``nn``, ``flows``, ``attention`` and ``priors``; never the pipeline.
"""
from ..core.registry import import_submodules
from .base import DensityFlow, MultiScaleFlow
from .conditioning import Conditioner, EncoderConditioner, PooledConditioner
from .multiscale import BACKBONES, COUPLINGS, FlowConfig, FlowModel, FlowStep, max_squeezes, paper_config
from .registry import MODELS, build_model, config_to_dict, make_config, register_family

import_submodules(__name__)  # every family registers itself
from .interop import load_reference  # noqa: E402  (after the families it builds)

__all__ = ["DensityFlow", "MultiScaleFlow", "Conditioner", "EncoderConditioner", "PooledConditioner",
           "BACKBONES", "COUPLINGS", "FlowConfig", "FlowModel", "FlowStep", "max_squeezes", "paper_config",
           "MODELS", "build_model", "config_to_dict", "make_config", "register_family", "load_reference"]
