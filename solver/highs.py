"""A silent HiGHS instance, shared by the type-level LP and the MILP backend."""

from __future__ import annotations

import os
import sys

import highspy

__all__ = ["new_highs"]


def new_highs() -> highspy.Highs:
    """A HiGHS instance, created with stdout silenced (highspy prints a banner on construction)
    and with its own output off."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    h.setOptionValue("output_flag", False)
    return h
