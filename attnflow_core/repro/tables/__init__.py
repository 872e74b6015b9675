"""One module per table or notebook of the reproduction (each registers its ``SPEC``); modules named
``_*.py`` hold what several tables share. Every module here is imported, so a new table is one new
file plus its notebook ``notebooks/<name>.ipynb``."""
from ...core.registry import import_submodules

import_submodules(__name__)
