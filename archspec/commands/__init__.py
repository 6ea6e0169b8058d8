"""One module per ``archspec`` command (discovered by :mod:`archspec.cli`).

A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``, and imports heavy libraries (torch, matplotlib) only inside
``run``.
"""
