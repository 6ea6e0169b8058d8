"""torchrun integration: one process per device, NCCL on GPUs, gloo on CPUs.

``torchrun --nproc_per_node N -m archspec train …`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous variables; :func:`setup` reads them, so the same
command line trains on one process or many. Only rank 0 writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from archspec.errors import Location, SpecError


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int = 0          # global rank (0 writes files)
    world: int = 1         # number of processes
    local_rank: int = 0    # rank on this machine (picks the GPU)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def env_world() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def resolve_device(pref: str, dist: Dist | None = None) -> torch.device:
    """``auto`` → CUDA when available; under torchrun each rank takes ``cuda:LOCAL_RANK``."""
    local = dist.local_rank if dist else 0
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SpecError("--device cuda was asked for but torch sees no CUDA device",
                            Location("--device"), "use --device cpu or auto")
        if pref == "cuda":
            pref = f"cuda:{local}"
        dev = torch.device(pref)
        torch.cuda.set_device(dev)
        return dev
    if pref != "cpu":
        raise SpecError(f"unknown device '{pref}'", Location("--device"), "use auto, cpu or cuda")
    return torch.device("cpu")


def setup(device_pref: str) -> tuple[Dist, torch.device]:
    """Join the torchrun job if there is one; return this rank and its device."""
    world = env_world()
    if world <= 1:
        return Dist(), resolve_device(device_pref)
    import torch.distributed as td
    d = Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    dev = resolve_device(device_pref, d)
    if not td.is_initialized():
        td.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return d, dev


def teardown(d: Dist, ok: bool = True) -> None:
    """Leave the job. After a clean run every rank first waits for the others (rank 0
    may still be writing its last checkpoint); ``archspec train`` then ends the
    process with :func:`leave_process`, which is what keeps a rank from aborting at
    exit ("terminate called without an active exception")."""
    if d.enabled:
        import torch.distributed as td
        if td.is_initialized():
            if ok:
                td.barrier()
            td.destroy_process_group()


def leave_process(code: int) -> None:
    """End a torchrun worker now, skipping the interpreter's shutdown.

    Once a module has been wrapped in DistributedDataParallel, ``destroy_process_group``
    no longer ends gloo's C++ threads (the DDP reducer keeps the group alive: measured,
    a process keeps 3 extra threads after it, against none without DDP). Those threads
    then run on while Python finalizes, and one that drops the last reference to a
    tensor made in Python (our metric all-reduces) must take the GIL, which a
    finalizing interpreter answers with ``pthread_exit``: the forced unwind through C++
    aborts the rank with "terminate called without an active exception". Every file
    is already written atomically, so after flushing the streams ``os._exit`` is safe.
    """
    import sys
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def all_sum(d: Dist, t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (identity on one process)."""
    if d.enabled:
        import torch.distributed as td
        td.all_reduce(t, op=td.ReduceOp.SUM)
    return t


def any_flag(d: Dist, flag: bool, device: torch.device) -> bool:
    """True on every rank when any rank raised ``flag`` (a Ctrl-C on one node stops all)."""
    if not d.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    return bool(all_sum(d, t).item() > 0)


def broadcast_flag(d: Dist, flag: bool, device: torch.device) -> bool:
    """Rank 0's decision, on every rank."""
    if not d.enabled:
        return flag
    import torch.distributed as td
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    td.broadcast(t, 0)
    return bool(t.item() > 0)


def barrier(d: Dist) -> None:
    if d.enabled:
        import torch.distributed as td
        td.barrier()
