"""Training: ``archspec train``, ``archspec eval`` and ``archspec grid --train``.

:mod:`~archspec.train.recipe` (paper recipes as YAML), :mod:`~archspec.train.data`
(CIFAR / image folders as uint8 tensors, batched augmentation),
:mod:`~archspec.train.loop` (the resumable loop, DDP under torchrun),
:mod:`~archspec.train.checkpoint` (atomic checkpoints), :mod:`~archspec.train.rundir`
(metrics, curves, summary), :mod:`~archspec.train.heads` (the loss from the spec's
outputs), :mod:`~archspec.train.evaluate` and :mod:`~archspec.train.grid`.
Importing this package does not import torch; its modules do.
"""
