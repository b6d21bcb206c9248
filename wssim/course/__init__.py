"""Lesson material: the course's experiments, catalogues and exercise checks.

- :mod:`~wssim.course.closecodes`: the close codes of lesson 01.
- :mod:`~wssim.course.causes`: one experiment per cause of lesson 02.
- :mod:`~wssim.course.protocolerrors`: lesson 05's catalogue of malformed input.
- :mod:`~wssim.course.capstone`, :mod:`~wssim.course.capstone_examples`: lesson 07.
- :mod:`~wssim.course.scenarios`: the named scenarios of ``python -m wssim``.
- :mod:`~wssim.course.exercises`: the checks of every lesson's exercises.
- :mod:`~wssim.course.display`: :func:`fit`, text narrowed to a notebook's width.

The library (everything outside this package) never imports from here.
"""

from __future__ import annotations

from wssim.course.display import WIDTH, fit

__all__ = ["WIDTH", "fit"]
