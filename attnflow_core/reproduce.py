"""Deprecated: use ``python -m attnflow_core.repro`` (this shim forwards to it)."""
import sys
import warnings

from .repro.driver import main

warnings.warn("`python -m attnflow_core.reproduce` is deprecated; use `python -m attnflow_core.repro`",
              DeprecationWarning, stacklevel=2)

if __name__ == "__main__":
    sys.exit(main())
