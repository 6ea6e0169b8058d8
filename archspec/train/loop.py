"""The training loop behind ``archspec train``: one process or one rank of a torchrun job.

Determinism is by construction rather than by saving generators: the data order
is drawn from ``(seed, epoch)``, augmentation from ``(seed, epoch, step, rank)``,
and the global torch generator (dropout, Shake-Shake's coefficients) is re-seeded
from the same tuple before every step. A checkpoint therefore only needs the
weights, the optimizer (and fp16 scaler) state and the ``(epoch, step)`` position
to continue bit-identically on the CPU, whether it was written at the end of an
epoch or mid-epoch (every ``checkpoint_every_s`` seconds, and on Ctrl-C/SIGTERM).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from archspec.errors import Location, SpecError
from archspec.fsio import safe_name, write_file
from archspec.train import rundir
from archspec.train.checkpoint import (load_checkpoint, load_weights_into, recover,
                                       save_checkpoint, state_dict_for_save)
from archspec.train.data import Batches, Normalizer, Splits, load_data, seed_for
from archspec.train.distributed import Dist, all_sum, barrier, setup, teardown
from archspec.train.heads import Objective, heads_of
from archspec.train.recipe import Recipe, default_recipe, diff_recipes, load_recipe

AMP = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
SYNC_EVERY = 10    # steps between cross-rank checks for Ctrl-C and checkpoint time (DDP)


@dataclass(frozen=True)
class TrainOptions:
    """How and where to run: everything that is not the recipe (or the network)."""

    spec: str | None = None                  # spec file (optional with resume: the run's copy)
    overrides: tuple = ()                    # --set k=v strings (or (k, v) pairs) for the spec
    recipe: Recipe | None = None             # None: the run's (resume) or recipes/wrn.yaml
    data: str | None = None                  # data set name; None: the recipe's
    data_dir: str | None = None              # where the data set lives
    out: str | None = None                   # run directory; None: runs/<spec>-<recipe>-<time>
    device: str = "auto"                     # auto | cpu | cuda | cuda:N
    amp: str = "off"                         # off | bf16 | fp16 autocast
    channels_last: bool = False              # NHWC memory format for model and batches
    compile: bool = False                    # torch.compile the model
    compile_backend: str = "inductor"        # torch.compile backend (tests use aot_eager)
    download: bool = True                    # fetch CIFAR when it is missing and we are online
    train_subset: int = 0                    # use the first N training images (0: all)
    test_subset: int = 0                     # use the first N test images (0: all)
    quiet: bool = False                      # no per-epoch lines
    progress: bool | None = None             # tqdm bar; None: when stderr is a terminal
    max_steps: int = 0                       # stop (resumably) after this many steps in all (0: no)
    build: Callable[[Any], torch.nn.Module] | None = field(default=None, compare=False)  # module factory


class Stop(Exception):
    """Raised inside the loop when Ctrl-C or SIGTERM asked for a clean stop."""


class _Signals:
    """First Ctrl-C/SIGTERM asks for a clean stop at the next step; a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.flag = False
        self.old: dict[int, Any] = {}

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self.old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.flag and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.flag = True

    def __exit__(self, *exc: Any) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)


def _build_module(graph: Any) -> torch.nn.Module:
    try:
        from archspec.torch_backend import build_module
    except ImportError as e:
        raise SpecError(f"the torch backend is not available ({e})", Location("archspec"),
                        "install the torch extra: pip install -e .[torch]") from None
    return build_module(graph)


def load_network(spec_path: str, overrides: Any) -> tuple[Any, Any]:
    """(Spec, compiled graph); ``overrides`` are ``k=v`` strings, (k, v) pairs or a mapping."""
    from archspec.graph import compile_graph
    from archspec.spec import load_spec
    if overrides and not isinstance(overrides, dict) and \
            all(isinstance(o, (tuple, list)) for o in overrides):
        overrides = {k: v for k, v in overrides}
    spec = load_spec(spec_path, overrides or None)
    return spec, compile_graph(spec)


def check_fit(g: Any, data: Splits) -> None:
    """The spec's input and main output must match the data set's images and classes."""
    inp = g.nodes[g.graph["input"]]
    if tuple(inp["shape"]) != data.image_shape:
        raise SpecError(f"the spec's input is {'×'.join(map(str, inp['shape']))} but the "
                        f"{data.name} images are {'×'.join(map(str, data.image_shape))}",
                        inp["loc"], "change the spec's input (e.g. --set in_size=...)")
    main = next(o for o in g.graph["outputs"] if not o["train_only"])
    node = g.nodes[main["node"]]
    shape = node["shape"]
    if len(shape) != 1 or shape[0] != data.num_classes:
        params = g.graph.get("params", {})
        hint = f"try --set num_classes={data.num_classes}" if "num_classes" in params else \
            "the last layer needs one output per class"
        raise SpecError(f"output '{main['name']}' has shape {tuple(shape)} but {data.name} has "
                        f"{data.num_classes} classes", node["loc"], hint)


def make_optimizer(model: torch.nn.Module, r: Recipe, device: torch.device
                   ) -> torch.optim.Optimizer:
    o = r.optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    if o.no_decay_bn_bias:
        groups: Any = [{"params": [p for p in params if p.dim() > 1]},
                       {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0}]
    else:
        groups = params
    extra: dict[str, Any] = {"fused": True} if device.type == "cuda" else {}
    for attempt in (extra, {}):
        try:
            if o.name == "sgd":
                return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                                       weight_decay=o.weight_decay, **attempt)
            cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
            return cls(groups, lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay,
                       **attempt)
        except (TypeError, RuntimeError):
            if not attempt:
                raise
    raise AssertionError("unreachable")


def _oom(batch: int, world: int, where: str) -> SpecError:
    total = batch * world
    return SpecError(f"CUDA out of memory {where} at batch size {batch} per device"
                     + (f" ({total} in all)" if world > 1 else ""), Location("--batch-size"),
                     f"try --batch-size {max(1, total // 2)}, --amp bf16 or --channels-last; "
                     "checkpoints already written are kept")


def _check_resume_sets(run: str, spec_path: str, saved: dict[str, Any], sets: Any,
                       info: dict[str, Any]) -> None:
    """``--resume RUN --set k=v`` (no SPEC): accepted only when the run already has those
    values (the network cannot change mid-run); a change is refused, naming it."""
    from archspec.spec.loader import parse_override
    merged = dict(saved)
    for text in sets:
        key, value, _ = parse_override(text)
        merged[key] = value
    _, g = load_network(spec_path, merged)
    if rundir.graph_fingerprint(g) != info["fingerprint"]:
        diffs = rundir.diff_specs(info.get("params", {}), dict(g.graph.get("params", {})),
                                  None, None)
        raise SpecError(f"cannot resume {run}: {' '.join('--set ' + s for s in sets)} changes "
                        f"the network it trains ({'; '.join(diffs)})", Location("--set"),
                        "a run's network is fixed: train the change in a new run with -o")


def check_last(run: str) -> None:
    """Refuse to resume from scratch a run whose ``last/`` checkpoint is gone while its
    metrics record finished epochs (it used to restart at epoch 1 without a word)."""
    last = os.path.join(run, "last")
    recover(last)
    if os.path.isdir(last):
        return
    epochs = rundir.recorded_epochs(run)
    if epochs:
        best = os.path.join(run, "best")
        raise SpecError(f"cannot resume {run}: its checkpoint {last} is missing, but "
                        f"metrics.jsonl records {epochs} epoch{'s' * (epochs != 1)}",
                        Location(last), "put last/ back" + (
                            " (best/ holds the best epoch's weights)" if os.path.isdir(best)
                            else "") + ", or train again in a new run with -o")


class Trainer:
    """One training run (new or resumed); :meth:`run` returns the summary dict."""

    def __init__(self, opts: TrainOptions, resume: str | None, dist: Dist, device: torch.device):
        self.opts, self.dist, self.device = opts, dist, device
        self.log_enabled = dist.main and not opts.quiet
        if resume:
            self._init_resume(resume)
        else:
            self._init_new()
        self.data = load_data(self.data_name, self.data_dir, opts.download)
        self.data = Splits(self.data.name, self.data.root,
                           self.data.train.subset(self.info.get("train_subset") or None),
                           self.data.test.subset(self.info.get("test_subset") or None))
        check_fit(self.graph, self.data)
        r = self.recipe
        if r.batch_size % dist.world:
            raise SpecError(f"batch size {r.batch_size} does not split over {dist.world} processes",
                            Location("--batch-size"), "use a multiple of --nproc_per_node")
        self.norm = Normalizer.from_meta(self.info["normalize"]) if "normalize" in self.info \
            else Normalizer.from_data(r.data, self.data.train)
        self.info["normalize"] = self.norm.to_meta()

    # ------------------------------------------------------------- setup
    def _init_new(self) -> None:
        o = self.opts
        if not o.spec:
            raise SpecError("no spec given", Location("archspec train"),
                            "archspec train SPEC, or --resume RUN_DIR")
        self.recipe = o.recipe or default_recipe()
        self.spec, self.graph = load_network(o.spec, o.overrides)
        self.data_name = o.data or self.recipe.data.name
        self.data_dir = o.data_dir
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.run_dir = o.out or os.path.join(
            "runs", safe_name(f"{self.spec.name}-{self.recipe.name}-{stamp}", f"run-{stamp}"))
        if os.path.isfile(os.path.join(self.run_dir, "run.json")):
            raise SpecError(f"{self.run_dir} already holds a run", Location(self.run_dir),
                            f"continue it with --resume {self.run_dir}, or choose another -o")
        self.info: dict[str, Any] = {
            "spec_name": self.spec.name, "overrides": [[k, v] for k, v in self.spec.overrides],
            "fingerprint": rundir.graph_fingerprint(self.graph),
            "params": dict(self.graph.graph.get("params", {})),
            "data": self.data_name,
            "data_dir": os.path.abspath(o.data_dir) if o.data_dir else None,
            "train_subset": o.train_subset, "test_subset": o.test_subset,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv}
        self.fresh = True

    def _init_resume(self, run: str) -> None:
        o = self.opts
        self.run_dir = run
        if not os.path.isdir(run):
            raise SpecError(f"no run directory '{run}'", Location(run), "give the -o of a run")
        self.info = rundir.read_json(os.path.join(run, "run.json"))
        saved = load_recipe(os.path.join(run, "recipe.yaml"))
        spec_path = os.path.join(run, self.info["spec"])
        overrides = {k: v for k, v in self.info["overrides"]}
        self.spec, self.graph = load_network(spec_path, overrides)
        if rundir.graph_fingerprint(self.graph) != self.info["fingerprint"]:
            raise SpecError(f"the spec copy in {run} no longer compiles to the same network",
                            Location(spec_path), "was it edited? start a new run")
        if o.overrides and not o.spec:
            _check_resume_sets(run, spec_path, overrides, o.overrides, self.info)
        check_last(run)
        if o.spec:
            spec2, g2 = load_network(o.spec, o.overrides)
            if rundir.graph_fingerprint(g2) != self.info["fingerprint"]:
                diffs = rundir.diff_specs(self.info.get("params", {}),
                                          dict(g2.graph.get("params", {})),
                                          rundir.graph_digest(self.graph), rundir.graph_digest(g2))
                if spec2.name != self.info.get("spec_name"):
                    diffs = [f"spec {self.info.get('spec_name')!r} → {spec2.name!r}"] + \
                        diffs[:4] + (["…"] if len(diffs) > 4 else [])
                raise SpecError(f"cannot resume {run}: the spec changed ({'; '.join(diffs)})",
                                Location(o.spec), "train the changed spec in a new run directory")
        if o.recipe is not None:
            diffs = diff_recipes(saved, o.recipe)
            if diffs:
                raise SpecError(f"cannot resume {run}: the recipe changed ({'; '.join(diffs)})",
                                Location(os.path.join(run, "recipe.yaml")),
                                "resume without recipe options, or start a new run")
        if o.data and o.data != self.info["data"]:
            raise SpecError(f"cannot resume {run}: it trained on {self.info['data']}, not {o.data}",
                            Location("--data"))
        self.recipe = saved
        self.data_name = self.info["data"]
        self.data_dir = o.data_dir or self.info.get("data_dir")
        self.fresh = False

    def _write_run_files(self) -> None:
        if not self.dist.main or not self.fresh:
            return
        os.makedirs(self.run_dir, exist_ok=True)
        self.info["spec"] = rundir.copy_spec_sources(self.run_dir, self.spec)
        write_file(os.path.join(self.run_dir, "recipe.yaml"),
                          f"# resolved recipe of this run (from {self.recipe.name})\n"
                          + self.recipe.to_yaml())
        rundir.write_json(os.path.join(self.run_dir, "run.json"), self.info)   # last: marks the run

    # --------------------------------------------------------------- run
    def log(self, msg: str) -> None:
        if self.log_enabled:
            print(msg, flush=True)

    def run(self) -> dict[str, Any]:
        o, r, d, dev = self.opts, self.recipe, self.dist, self.device
        if d.enabled:
            # every rank has checked the directory before rank 0 writes into it, and all
            # use rank 0's name (a default name holds the time, which may differ by a second)
            import torch.distributed as td
            names = [self.run_dir]
            td.broadcast_object_list(names, src=0)
            self.run_dir = names[0]
            barrier(d)
        self._write_run_files()
        torch.manual_seed(r.seed)
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        model = (o.build or _build_module)(self.graph)
        self.heads = heads_of(self.graph, model)
        self.objective = Objective(self.heads, r.label_smoothing)
        model = model.to(dev)
        if o.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if d.enabled and r.sync_bn:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        opt = make_optimizer(model, r, dev)
        amp_dtype = AMP.get(o.amp, "bad")
        if amp_dtype == "bad":
            raise SpecError(f"unknown --amp '{o.amp}'", Location("--amp"), "use bf16, fp16 or off")
        scaler = torch.amp.GradScaler(dev.type, enabled=o.amp == "fp16")

        start_epoch, start_step = 0, 0
        history: list[dict[str, Any]] = []
        acc = {"loss": 0.0, "correct": 0, "seen": 0, "train_s": 0.0}
        best = {"epoch": -1, "test_acc": -1.0}
        elapsed0 = 0.0
        last = os.path.join(self.run_dir, "last")
        if not self.fresh:
            recover(last)
            if os.path.isdir(last):
                weights, state, meta = load_checkpoint(last)
                assert state is not None
                load_weights_into(model, {k: v.to(dev) for k, v in weights.items()}, last)
                try:
                    opt.load_state_dict(state["optimizer"])
                    if state.get("scaler"):
                        scaler.load_state_dict(state["scaler"])
                except (ValueError, KeyError, RuntimeError) as e:
                    raise SpecError(f"corrupted checkpoint state in {last}: {e}",
                                    Location(os.path.join(last, "state.pt"))) from None
                start_epoch, start_step = int(state["epoch"]), int(state["step"])
                history = list(state["history"])
                acc = dict(state["acc"])
                if not d.main:
                    acc = {"loss": 0.0, "correct": 0, "seen": 0, "train_s": acc["train_s"]}
                best = dict(state["best"])
                elapsed0 = float(state["elapsed_s"])
                self.log(f"resuming {self.run_dir} at epoch {start_epoch + 1}, step {start_step}")
        n_params = sum(p.numel() for p in model.parameters())

        fwd_train: Any = model
        if d.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP
            fwd_train = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)
        fwd_eval: Any = model
        if o.compile:
            fwd_train = torch.compile(fwd_train, backend=o.compile_backend)
            fwd_eval = torch.compile(model, backend=o.compile_backend)

        local_bs = r.batch_size // d.world
        train_b = Batches(self.data.train, local_bs, train=True, augment=r.augment, norm=self.norm,
                          seed=r.seed, rank=d.rank, world=d.world, device=dev,
                          channels_last=o.channels_last)
        eval_bs = max(1, (r.eval_batch_size or 2 * r.batch_size) // d.world)
        test_b = Batches(self.data.test, eval_bs, train=False, augment=r.augment, norm=self.norm,
                         rank=d.rank, world=d.world, device=dev, channels_last=o.channels_last)
        steps = len(train_b)
        show_bar = d.main and (o.progress if o.progress is not None else sys.stderr.isatty())
        autocast = lambda: torch.autocast(dev.type, dtype=amp_dtype or torch.float32,  # noqa: E731
                                          enabled=amp_dtype is not None)
        status = "finished"
        t_start = time.perf_counter()
        last_ckpt = time.perf_counter()
        last_plot = 0.0
        total_steps = start_epoch * steps + start_step
        self.summary: dict[str, Any] = {}

        def state_at(epoch: int, step: int, acc_now: dict) -> dict[str, Any]:
            return {"epoch": epoch, "step": step, "optimizer": opt.state_dict(),
                    "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                    "rng": {"torch": torch.get_rng_state()}, "history": history, "acc": acc_now,
                    "best": best, "elapsed_s": elapsed0 + time.perf_counter() - t_start,
                    "steps_per_epoch": steps}

        def meta(epoch: int, step: int) -> dict[str, Any]:
            return {"spec": self.spec.name, "fingerprint": self.info["fingerprint"],
                    "recipe": r.name, "data": self.data_name, "epoch": epoch, "step": step, "normalize": self.info[
                        "normalize"], "classes": self.data.train.classes,
                    "test_acc": history[-1]["test_acc"] if history else None}

        def synced_acc(t_loss: torch.Tensor, t_correct: torch.Tensor, seen: int) -> dict:
            v = torch.tensor([acc["loss"] + float(t_loss), acc["correct"] + int(t_correct),
                              acc["seen"] + seen], dtype=torch.float64, device=dev)
            v = all_sum(d, v)
            return {"loss": float(v[0]), "correct": int(v[1]), "seen": int(v[2]),
                    "train_s": acc["train_s"]}

        with _Signals() as sig:
            try:
                for epoch in range(start_epoch, r.epochs):
                    first = start_step if epoch == start_epoch else 0
                    if first >= steps:
                        first = steps
                    model.train()
                    t_loss = torch.zeros((), device=dev, dtype=torch.float64)
                    t_correct = torch.zeros((), device=dev, dtype=torch.int64)
                    seen = 0
                    t0 = time.perf_counter()
                    bar = None
                    if show_bar:
                        from tqdm import tqdm
                        bar = tqdm(total=steps, initial=first, leave=False, dynamic_ncols=True,
                                   desc=f"epoch {epoch + 1}/{r.epochs}", file=sys.stderr)
                    lr = r.lr_at(epoch + first / steps)
                    step = first
                    for step, (x, y) in enumerate(train_b.epoch_iter(epoch, first, r.data.workers),
                                                  start=first):
                        lr = r.lr_at(epoch + step / steps)
                        for g in opt.param_groups:
                            g["lr"] = lr
                        torch.manual_seed(seed_for(r.seed, epoch, step, d.rank, 1))
                        try:
                            with autocast():
                                out = fwd_train(x)
                                loss, main_sum, correct = self.objective.train_loss(out, y)
                            scaler.scale(loss).backward()
                            if r.grad_clip > 0:
                                scaler.unscale_(opt)
                                torch.nn.utils.clip_grad_norm_(model.parameters(), r.grad_clip)
                            scaler.step(opt)
                            scaler.update()
                            opt.zero_grad(set_to_none=True)
                        except torch.OutOfMemoryError:
                            raise _oom(local_bs, d.world, "in training") from None
                        t_loss += main_sum.double()
                        t_correct += correct
                        seen += int(y.shape[0])
                        total_steps += 1
                        if bar is not None:
                            bar.update(1)
                            if step % 20 == 0:
                                bar.set_postfix(loss=f"{float(main_sum) / max(1, y.shape[0]):.3f}",
                                                lr=f"{lr:.3g}")
                        # stop / mid-epoch checkpoint, agreed by all ranks
                        if not d.enabled or (step + 1) % SYNC_EVERY == 0 or step + 1 == steps:
                            want_stop = sig.flag or (o.max_steps > 0 and total_steps >= o.max_steps)
                            want_ckpt = d.main and (time.perf_counter() - last_ckpt
                                                    >= r.checkpoint_every_s)
                            if d.enabled:
                                v = all_sum(d, torch.tensor([float(want_stop), float(want_ckpt)],
                                                            device=dev))
                                want_stop, want_ckpt = bool(v[0] > 0), bool(v[1] > 0)
                            if (want_stop or want_ckpt) and step + 1 < steps:
                                now = synced_acc(t_loss, t_correct, seen)
                                now["train_s"] += time.perf_counter() - t0
                                if d.main:
                                    save_checkpoint(last, state_dict_for_save(model),
                                                    state_at(epoch, step + 1, now),
                                                    meta(epoch, step + 1))
                                # the totals now live on rank 0 only
                                acc = now if d.main else {**now, "loss": 0.0, "correct": 0,
                                                          "seen": 0}
                                t_loss.zero_()
                                t_correct.zero_()
                                seen = 0
                                t0 = time.perf_counter()
                                last_ckpt = time.perf_counter()
                                if want_stop:
                                    raise Stop
                            elif want_stop:
                                self._stop_after_epoch = True
                    if bar is not None:
                        bar.close()
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    t_train_end = time.perf_counter()
                    train_s = acc["train_s"] + t_train_end - t0
                    tot = synced_acc(t_loss, t_correct, seen)
                    test_loss, test_acc = self.evaluate(fwd_eval, test_b, autocast, eval_bs)
                    seconds = train_s + time.perf_counter() - t_train_end
                    row = {"epoch": epoch + 1, "lr": lr,
                           "train_loss": tot["loss"] / max(1, tot["seen"]),
                           "train_acc": tot["correct"] / max(1, tot["seen"]),
                           "test_loss": test_loss, "test_acc": test_acc,
                           "images_per_s": tot["seen"] / max(train_s, 1e-9),
                           "seconds": seconds,
                           "elapsed_s": elapsed0 + time.perf_counter() - t_start}
                    history.append(row)
                    acc = {"loss": 0.0, "correct": 0, "seen": 0, "train_s": 0.0}
                    if d.main:
                        if test_acc > best["test_acc"]:
                            best = {"epoch": epoch + 1, "test_acc": test_acc}
                            save_checkpoint(os.path.join(self.run_dir, "best"),
                                            state_dict_for_save(model), None, meta(epoch + 1, 0))
                        save_checkpoint(last, state_dict_for_save(model),
                                        state_at(epoch + 1, 0, acc), meta(epoch + 1, 0))
                        last_ckpt = time.perf_counter()
                        rundir.write_metrics(self.run_dir, history)
                        final = epoch + 1 == r.epochs
                        if final or time.perf_counter() - last_plot > 30:
                            rundir.plot_curves(os.path.join(self.run_dir, "curves.png"), history,
                                               self._title())
                            last_plot = time.perf_counter()
                        self._write_summary(history, best, n_params, "running" if not final
                                            else "finished", elapsed0 + time.perf_counter() - t_start)
                    self.log(f"epoch {epoch + 1}/{r.epochs}  lr {lr:.4g}  train loss "
                             f"{row['train_loss']:.4f} acc {100 * row['train_acc']:.2f}%  test loss "
                             f"{test_loss:.4f} acc {100 * test_acc:.2f}%  "
                             f"{row['images_per_s']:.0f} img/s  {seconds:.1f}s")
                    if getattr(self, "_stop_after_epoch", False):
                        if epoch + 1 < r.epochs:
                            raise Stop
            except Stop:
                status = "interrupted"
        if status == "finished" and d.main and not self.summary:
            # resumed after the last epoch's checkpoint: nothing ran, the files are rewritten
            rundir.write_metrics(self.run_dir, history)
            rundir.plot_curves(os.path.join(self.run_dir, "curves.png"), history,
                               self._title())
            self._write_summary(history, best, n_params, "finished", elapsed0)
        if status == "interrupted" and d.main:
            if history:
                rundir.write_metrics(self.run_dir, history)
                rundir.plot_curves(os.path.join(self.run_dir, "curves.png"), history,
                                   self._title())
            self._write_summary(history, best, n_params, "interrupted",
                                elapsed0 + time.perf_counter() - t_start)
        self.summary["status"] = status
        self.summary["run"] = self.run_dir
        return self.summary

    def evaluate(self, fwd: Any, batches: Batches, autocast: Callable, bs: int
                 ) -> tuple[float, float]:
        """Test loss and accuracy of the main head over every test image once."""
        self.model.eval()
        loss = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        try:
            with torch.no_grad():
                for x, y in batches.epoch_iter(0):
                    with autocast():
                        out = fwd(x)
                    l_, c = self.objective.eval_loss(out, y)
                    loss += l_.double()
                    correct += c
        except torch.OutOfMemoryError:
            raise _oom(bs, self.dist.world, "in evaluation") from None
        v = all_sum(self.dist, torch.stack([loss, correct.double()]))
        n = batches.n
        self.model.train()
        return float(v[0]) / max(1, n), float(v[1]) / max(1, n)

    def _title(self) -> str:
        return rundir.curves_title(self.spec.name, self.info.get("overrides", ()),
                                   self.recipe.name, self.data_name, self.dist.world)

    def _write_summary(self, history: list, best: dict, n_params: int, status: str,
                       elapsed: float) -> None:
        o, r = self.opts, self.recipe
        last = history[-1] if history else {}
        ips = [h["images_per_s"] for h in history]
        self.summary = {
            "status": status, "spec": self.spec.name, "recipe": r.name, "data": self.data_name,
            "params": n_params, "epochs": r.epochs, "epochs_done": len(history),
            "final_test_acc": last.get("test_acc"), "final_test_loss": last.get("test_loss"),
            "final_train_loss": last.get("train_loss"), "final_train_acc": last.get("train_acc"),
            "best_test_acc": best["test_acc"] if best["epoch"] > 0 else None,
            "best_epoch": best["epoch"] if best["epoch"] > 0 else None,
            "images_per_s": sum(ips) / len(ips) if ips else None,
            "elapsed_s": elapsed, "device": str(self.device), "world_size": self.dist.world,
            "amp": o.amp, "channels_last": o.channels_last, "compile": o.compile,
            "batch_size": r.batch_size, "seed": r.seed}
        rundir.write_json(os.path.join(self.run_dir, "summary.json"), self.summary)


def train(opts: TrainOptions, resume: str | None = None) -> dict[str, Any]:
    """Train (or resume) one run; return its summary (``status``: finished | interrupted)."""
    dist, device = setup(opts.device)
    ok = False
    try:
        out = Trainer(opts, resume, dist, device).run()
        ok = True
        return out
    finally:
        teardown(dist, ok)


__all__ = ["TrainOptions", "Trainer", "train", "load_network", "check_fit", "make_optimizer"]
