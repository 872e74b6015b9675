"""Diagnostics for the walkthrough notebooks: dense autograd Jacobians and the paper's closed forms.

Belongs here: code that explains or inspects a model (never needed to train or evaluate one).
Imports ``core``, ``attention`` and ``models``; nothing but notebooks and tests imports it.
"""
from .jacobian import imap_closed_form, itrans_closed_form, jacobian, mask_order

__all__ = ["imap_closed_form", "itrans_closed_form", "jacobian", "mask_order"]
