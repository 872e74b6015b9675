"""Diagnostics for the walkthrough notebooks: dense autograd Jacobians, the paper's closed forms and
measured Lipschitz constants (power iteration on autograd Jacobians, adversarial search).

Belongs here: code that explains or inspects a model (never needed to train or evaluate one).
Imports ``core``, ``attention`` and ``models``; nothing but notebooks and tests imports it.
"""
from .jacobian import imap_closed_form, itrans_closed_form, itrans_order, jacobian, mask_order
from .lipschitz import (
    adversarial_lipschitz,
    conv_matrix,
    find_normaliser_root,
    jacobian_norm,
    lipschitz_probe,
)

__all__ = ["imap_closed_form", "itrans_closed_form", "itrans_order", "jacobian", "mask_order", "adversarial_lipschitz",
           "conv_matrix", "find_normaliser_root", "jacobian_norm", "lipschitz_probe"]
