"""``archspec train`` / ``eval``: learning, run directory, resume after SIGKILL, DDP, heads.

All on the CPU with tiny specs and data generated in CIFAR-10's on-disk format.
Subprocesses run with one thread each so two runs of the same seed are bit-identical.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("safetensors")

from safetensors.torch import load_file  # noqa: E402

from archspec.errors import SpecError  # noqa: E402
from archspec.train.loop import TrainOptions, train  # noqa: E402
from archspec.train.recipe import Augment, Data, Optimizer, Recipe  # noqa: E402
from archspec.train.synthetic import write_cifar  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = """\
archspec: 1
name: tiny
params:
  width: {default: 8, doc: channels}
  num_classes: {default: 10, doc: classes}
input: {shape: [3, 32, 32]}
layers:
  - conv1: {op: conv, out: width, kernel: 3, stride: 2, padding: 1, bias: false}
  - bn1: {op: batchnorm}
  - relu1: {op: relu}
  - drop: {op: dropout, p: 0.1}
  - conv2: {op: conv, out: width, kernel: 3, stride: 2, padding: 1, bias: false}
  - bn2: {op: batchnorm}
  - relu2: {op: relu}
  - pool: {op: adaptive_avgpool, size: 1}
  - flat: {op: flatten}
  - fc: {op: linear, out: num_classes}
"""

# A training-only head (weight 0.3) beside the main one, and a log_softmax main head (NLL).
AUX = """\
archspec: 1
name: tiny-aux
params:
  num_classes: {default: 10, doc: classes}
input: {shape: [3, 32, 32]}
layers:
  - conv1: {op: conv, out: 8, kernel: 3, stride: 2, padding: 1}
  - relu1: {op: relu}
  - aux:
      train_only: true
      seq:
        - {op: adaptive_avgpool, size: 1}
        - {op: flatten}
        - {op: linear, out: num_classes}
  - conv2: {op: conv, out: 8, kernel: 3, stride: 2, padding: 1}
  - relu2: {op: relu}
  - pool: {op: adaptive_avgpool, size: 1}
  - flat: {op: flatten}
  - fc: {op: linear, out: num_classes}
  - logp: {op: log_softmax}
outputs:
  - main: {from: logp}
  - aux: {from: aux, loss_weight: 0.3}
"""

FAST = Recipe(name="test", epochs=3, batch_size=32,
              optimizer=Optimizer("sgd", lr=0.05, momentum=0.9, nesterov=True),
              augment=Augment(True, 2), data=Data(), checkpoint_every_s=1e9)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    write_cifar(str(d / "data"), 1000, 300)
    (d / "tiny.yaml").write_text(TINY)
    (d / "aux.yaml").write_text(AUX)
    return d


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread, as the subprocesses: no OpenMP spinning against a busy core."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _env1() -> dict[str, str]:
    e = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=ROOT)
    e.pop("WORLD_SIZE", None)
    return e


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archspec", *args], cwd=ROOT, env=_env1(),
                          capture_output=True, text=True, timeout=300, **kw)


def main(capsys, *args: str) -> tuple[int, str]:
    """The CLI in this process (no interpreter start-up): exit status and stderr."""
    from archspec.cli import main as cli_main
    rc = cli_main(list(args))
    return rc, capsys.readouterr().err


def opts(env, out, **kw) -> TrainOptions:
    base = dict(spec=str(env / "tiny.yaml"), recipe=FAST, data="cifar10",
                data_dir=str(env / "data"), out=str(out), device="cpu", quiet=True,
                download=False)
    base.update(kw)
    return TrainOptions(**base)


def weights(run) -> dict[str, torch.Tensor]:
    return load_file(os.path.join(str(run), "last", "model.safetensors"))


# ---------------------------------------------------------------------- learning
def test_small_spec_learns_synthetic_task(env, tmp_path):
    s = train(opts(env, tmp_path / "run"))     # 3 epochs of 1,000 images: about a second
    assert s["status"] == "finished" and s["final_test_acc"] >= 0.90, s
    run = tmp_path / "run"
    for f in ("run.json", "recipe.yaml", "metrics.csv", "metrics.jsonl", "curves.png",
              "summary.json", "spec/tiny.yaml", "last/model.safetensors", "last/state.pt",
              "best/model.safetensors"):
        assert (run / f).exists(), f
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert set(rows[0]) >= {"lr", "train_loss", "train_acc", "test_loss", "test_acc",
                            "images_per_s", "seconds"}
    csv = (run / "metrics.csv").read_text().splitlines()
    assert csv[0].startswith("epoch,lr,train_loss") and len(csv) == 4
    assert json.loads((run / "summary.json").read_text())["best_test_acc"] == \
        max(r["test_acc"] for r in rows)
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    # nothing left half-written; weights as readable as any other file written here
    assert not [p for p in os.listdir(run) if p.startswith(".")]
    umask = os.umask(0)
    os.umask(umask)
    for f in ("last/model.safetensors", "best/model.safetensors", "metrics.csv"):
        assert (run / f).stat().st_mode & 0o777 == 0o666 & ~umask, f


def test_trainable_false_layer_is_not_trained(env, tmp_path):
    """trainable: false keeps a layer's weights as initialised through a real run (the
    optimizer skips them); its neighbour, drawn the same, does train."""
    spec = tmp_path / "frozen.yaml"
    spec.write_text(TINY.replace(
        "  - conv1: {op: conv, out: width, kernel: 3, stride: 2, padding: 1, bias: false}",
        "  - conv1: {op: conv, out: width, kernel: 3, stride: 2, padding: 1, bias: false,\n"
        "            trainable: false, init: {weight: {constant: {value: 0.05}}}}").replace(
        "  - conv2: {op: conv, out: width, kernel: 3, stride: 2, padding: 1, bias: false}",
        "  - conv2: {op: conv, out: width, kernel: 3, stride: 2, padding: 1, bias: false,\n"
        "            init: {weight: {constant: {value: 0.05}}}}"))
    s = train(opts(env, tmp_path / "run", spec=str(spec), recipe=replace(FAST, epochs=1),
                   train_subset=128))
    assert s["status"] == "finished"
    w = weights(tmp_path / "run")
    assert torch.all(w["conv1.weight"] == 0.05)
    assert not torch.all(w["conv2.weight"] == 0.05)


def test_eval_command_reproduces_the_runs_accuracy(env, tmp_path):
    s = train(opts(env, tmp_path / "run", recipe=replace(FAST, epochs=1), train_subset=256))
    from archspec.cli import main as cli_main
    import io
    from contextlib import redirect_stdout
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = cli_main(["eval", str(env / "tiny.yaml"), "--weights", str(tmp_path / "run"),
                       "--data-dir", str(env / "data"), "--json", "--no-download",
                       "--device", "cpu"])
    assert rc == 0
    got = json.loads(buf.getvalue())
    assert got["accuracy"] == s["final_test_acc"]
    assert got["loss"] == pytest.approx(s["final_test_loss"], rel=1e-6)
    # without --data-dir, a run's weights are evaluated on the data the run read
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = cli_main(["eval", str(env / "tiny.yaml"), "--weights", str(tmp_path / "run" / "best"),
                       "--json", "--no-download", "--device", "cpu"])
    assert rc == 0 and json.loads(buf.getvalue())["accuracy"] == got["accuracy"]
    # weights that do not fit: the refusal says what the run trained
    import contextlib
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli_main(["eval", str(env / "tiny.yaml"), "--set", "width=4", "--weights",
                       str(tmp_path / "run"), "--data-dir", str(env / "data"), "--no-download",
                       "--device", "cpu"])
    assert rc == 2 and "do not fit the spec" in err.getvalue()
    assert "the run trained spec 'tiny' (a copy is in" in err.getvalue()


def test_eval_reads_torch_state_dicts(env, tmp_path):
    """A plain state_dict (as torchvision publishes) of a compatible network loads by name."""
    from archspec.torch_backend import build_module
    from archspec.train.evaluate import evaluate_weights
    m = build_module(str(env / "tiny.yaml"))
    sd = {f"module.{k}": v for k, v in m.state_dict().items()}   # DDP-style prefix is stripped
    torch.save(sd, tmp_path / "w.pth")
    r = evaluate_weights(str(env / "tiny.yaml"), str(tmp_path / "w.pth"),
                         data_dir=str(env / "data"), device="cpu", download=False)
    assert r["images"] == 300 and 0 <= r["accuracy"] <= 1
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(SpecError, match="do not fit the spec"):
        evaluate_weights(str(env / "tiny.yaml"), str(tmp_path / "bad.pth"),
                         data_dir=str(env / "data"), device="cpu", download=False)


# ------------------------------------------------------------------------ heads
def test_aux_heads_count_only_in_training(env, tmp_path):
    import torch.nn.functional as F

    from archspec.torch_backend import build_module
    from archspec.train.heads import Objective, heads_of
    m = build_module(str(env / "aux.yaml"))
    heads = heads_of(m.graph_ir, m)
    assert [(h.name, h.kind, h.weight, h.train_only) for h in heads] == \
        [("main", "log_probs", 1.0, False), ("aux", "logits", 0.3, True)]
    obj = Objective(heads)
    x, y = torch.randn(6, 3, 32, 32), torch.randint(0, 10, (6,))
    m.train()
    main, aux = m(x)
    total, main_sum, _ = obj.train_loss((main, aux), y)
    assert torch.allclose(total, F.nll_loss(main, y) + 0.3 * F.cross_entropy(aux, y))
    assert torch.allclose(main_sum, F.nll_loss(main, y, reduction="sum"))
    m.eval()
    out = m(x)
    assert isinstance(out, torch.Tensor)
    loss, _ = obj.eval_loss(out, y)
    assert torch.allclose(loss, F.nll_loss(out, y, reduction="sum"))
    # and a whole run of it: the aux head's weights train, the test loss is the main head's
    s = train(opts(env, tmp_path / "run", spec=str(env / "aux.yaml"),
                   recipe=replace(FAST, epochs=1), train_subset=256, test_subset=100))
    assert s["status"] == "finished"
    w = weights(tmp_path / "run")
    assert "aux.2.weight" in w and not torch.equal(w["aux.2.weight"], m.state_dict()["aux.2.weight"])


# ------------------------------------------------------------------------ resume
def _wait_for(pred, proc, timeout=120.0) -> None:
    t = time.time()
    while not pred():
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.stderr.read() if proc.stderr else ''}")
        if time.time() - t > timeout:
            raise AssertionError("timed out")
        time.sleep(0.005)


def test_resume_after_sigkill_equals_uninterrupted_run(env, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(replace(FAST, epochs=3, checkpoint_every_s=0.0).to_yaml())
    common = [str(env / "tiny.yaml"), "--recipe", str(recipe), "--data", "cifar10",
              "--data-dir", str(env / "data"), "--device", "cpu", "-q", "--no-download"]
    ref = cli("train", *common, "-o", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    run = tmp_path / "killed"
    p = subprocess.Popen([sys.executable, "-m", "archspec", "train", *common, "-o", str(run)],
                         cwd=ROOT, env=_env1(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        # kill -9 at a random moment after the first mid-epoch checkpoints of epoch 2
        def in_epoch_2() -> bool:
            try:
                meta = json.loads((run / "last" / "checkpoint.json").read_text())
            except (OSError, ValueError):
                return False
            return meta["epoch"] >= 1 and meta["step"] > 3
        _wait_for(in_epoch_2, p)
        time.sleep(random.uniform(0.0, 0.05))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "running" and summary["epochs_done"] < 3   # killed mid-run
    r = cli("train", "--resume", str(run), "-q", "--no-download")
    assert r.returncode == 0, r.stderr
    a, b = weights(tmp_path / "ref"), weights(run)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ"
    ra = [json.loads(x) for x in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    rb = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["test_acc"] for x in ra] == [x["test_acc"] for x in rb]
    assert [x["test_loss"] for x in ra] == [x["test_loss"] for x in rb]


class _CtrlCAt(torch.nn.Module):
    """The spec's module, sending this process a real SIGINT in its ``at``-th training forward."""

    def __init__(self, g, at: int | None):
        super().__init__()
        from archspec.torch_backend import build_module
        self.net = build_module(g)
        self.at, self.calls = at, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                os.kill(os.getpid(), signal.SIGINT)
        return self.net(x)


def test_ctrl_c_stops_cleanly_and_resumes(env, tmp_path):
    run = tmp_path / "run"
    o = opts(env, run, recipe=replace(FAST, epochs=2, batch_size=16), train_subset=320,
             test_subset=100, build=lambda g: _CtrlCAt(g, 30))
    s = train(o)
    assert s["status"] == "interrupted"
    meta = json.loads((run / "last" / "checkpoint.json").read_text())
    assert (meta["epoch"], meta["step"]) == (1, 10)        # 20 steps per epoch: stopped after 30
    no_kill = lambda g: _CtrlCAt(g, None)  # noqa: E731
    s2 = train(replace(o, out=None, recipe=None, build=no_kill), resume=str(run))
    assert s2["status"] == "finished" and s2["epochs_done"] == 2
    train(replace(o, out=str(tmp_path / "ref"), build=no_kill))
    a, b = weights(tmp_path / "ref"), weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_max_steps_stop_then_resume_mid_epoch(env, tmp_path):
    run = tmp_path / "run"
    s = train(opts(env, run, recipe=replace(FAST, epochs=2), max_steps=20, train_subset=384,
                   test_subset=100))
    assert s["status"] == "interrupted"
    meta = json.loads((run / "last" / "checkpoint.json").read_text())
    assert (meta["epoch"], meta["step"]) == (1, 8)        # 12 steps per epoch
    assert train(replace(opts(env, run), recipe=None, out=None), resume=str(run))["status"] == "finished"


# ------------------------------------------------------------------- bad input
def test_resume_refuses_a_changed_recipe_or_spec(env, tmp_path, capsys):
    run = tmp_path / "run"
    train(opts(env, run, recipe=replace(FAST, epochs=1), train_subset=128, test_subset=50))
    rc, err = main(capsys, "train", "--resume", str(run), "--epochs", "5")
    assert rc == 2 and "recipe changed (epochs: 1 → 5)" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3
    rc, err = main(capsys, "train", str(env / "tiny.yaml"), "--set", "width=4", "--resume",
                   str(run))
    assert rc == 2 and "spec changed" in err and "width: 8 → 4" in err
    rc, err = main(capsys, "train", str(env / "tiny.yaml"), "-o", str(run), "--data-dir",
                   str(env / "data"))
    assert rc == 2 and "already holds a run" in err


def test_resume_refuses_a_set_that_changes_the_network(env, tmp_path, capsys):
    """``--resume RUN --set num_classes=12`` was ignored (exit 0); one that changes
    nothing is accepted, one that changes the network is refused, naming the change."""
    run = tmp_path / "run"
    train(opts(env, run, recipe=replace(FAST, epochs=1), train_subset=128, test_subset=50))
    before = (run / "metrics.jsonl").read_text()
    rc, err = main(capsys, "train", "--resume", str(run), "--set", "num_classes=12")
    assert rc == 2 and "Traceback" not in err
    assert err.splitlines()[0] == (
        f"--set: error: cannot resume {run}: --set num_classes=12 changes the network it "
        "trains (num_classes: 10 → 12); a run's network is fixed: train the change in a new "
        "run with -o")
    rc, err = main(capsys, "train", "--resume", str(run), "--set", "nope=1")
    assert rc == 2 and "nope" in err and "Traceback" not in err
    rc, err = main(capsys, "train", "--resume", str(run), "--set", "num_classes=10", "-q",
                   "--data-dir", str(env / "data"), "--device", "cpu", "--no-download")
    assert rc == 0, err                          # the run's own value: nothing changes
    assert (run / "metrics.jsonl").read_text() == before    # finished run: nothing retrained


def test_resume_refuses_a_run_whose_last_checkpoint_is_gone(env, tmp_path, capsys):
    """Deleting last/ restarted training at epoch 1 without a word."""
    import shutil
    run = tmp_path / "run"
    train(opts(env, run, recipe=replace(FAST, epochs=2), train_subset=128, test_subset=50))
    shutil.rmtree(run / "last")
    rc, err = main(capsys, "train", "--resume", str(run), "--data-dir", str(env / "data"),
                   "--device", "cpu", "--no-download")
    assert rc == 2 and "Traceback" not in err
    assert err.splitlines()[0] == (
        f"{run / 'last'}: error: cannot resume {run}: its checkpoint {run / 'last'} is "
        "missing, but metrics.jsonl records 2 epochs; put last/ back (best/ holds the best "
        "epoch's weights), or train again in a new run with -o")
    assert not (run / "last").exists()


@pytest.mark.parametrize("args", [["eval", "x.yaml", "--weights", "w", "--batch-size", "0"],
                                  ["eval", "x.yaml", "--weights", "w", "--subset", "-3"],
                                  ["train", "x.yaml", "--train-subset", "-5"],
                                  ["train", "--resume", "r", "--epochs", "0"],
                                  ["grid", "g.yaml", "--train", "--batch-size", "0"]])
def test_counts_on_the_command_line_are_checked(args, capsys):
    """A batch of 0 was a ZeroDivisionError traceback; a subset of -5 dropped 5 images."""
    rc, err = main(capsys, *args)
    assert rc == 2 and "must be at least" in err and "Traceback" not in err


def test_spec_diff_compares_block_types_as_written():
    """run.json keeps 'B(3,3)'; the new graph holds a BlockRef: equal, not a difference."""
    from archspec.graph import compile_graph
    from archspec.spec import load_spec
    from archspec.train.rundir import diff_specs
    new = compile_graph(load_spec(os.path.join(ROOT, "specs", "wrn.yaml"), {"d": 10, "k": 2}))
    old = json.loads(json.dumps({**new.graph["params"], "k": 1}, default=str))
    assert diff_specs(old, dict(new.graph["params"]), None, None)[0] == "k: 1 → 2"
    assert not any("block" in d for d in diff_specs(old, dict(new.graph["params"]), None, None))


def test_corrupted_checkpoint_is_refused(env, tmp_path, capsys):
    run = tmp_path / "run"
    train(opts(env, run, recipe=replace(FAST, epochs=1), train_subset=128, test_subset=50))
    wf = run / "last" / "model.safetensors"
    data = bytearray(wf.read_bytes())
    data[-5] ^= 0xFF
    wf.write_bytes(bytes(data))
    rc, err = main(capsys, "train", "--resume", str(run), "--data-dir", str(env / "data"),
                   "--device", "cpu")
    assert rc == 2 and "corrupted checkpoint" in err and "SHA-256" in err


def test_missing_data_set_is_a_located_error(env, tmp_path, capsys):
    rc, err = main(capsys, "train", str(env / "tiny.yaml"), "--data", "cifar10", "--data-dir",
                   str(tmp_path / "nowhere"), "--no-download", "-o", str(tmp_path / "run"))
    assert rc == 2 and "Traceback" not in err
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in err
    assert "cifar-10-python.tar.gz" in err


def test_spec_that_does_not_fit_the_data(env, tmp_path):
    with pytest.raises(SpecError, match=r"has shape \(5,\) but cifar10 has 10 classes.*"
                                        r"num_classes=10"):
        train(opts(env, tmp_path / "run", overrides=("num_classes=5",)))


# ------------------------------------------------------------- execution paths
def test_bf16_channels_last_compile_paths_run_on_cpu(env, tmp_path):
    """The GPU options (bf16 autocast, NHWC, torch.compile, loader workers) also run on the CPU."""
    r = replace(FAST, epochs=1, data=Data(workers=1))
    s = train(opts(env, tmp_path / "a", recipe=r, amp="bf16", channels_last=True,
                   train_subset=256, test_subset=64))
    assert s["status"] == "finished" and s["amp"] == "bf16"
    s = train(opts(env, tmp_path / "b", recipe=replace(FAST, epochs=1), compile=True,
                   compile_backend="eager", train_subset=128, test_subset=64))
    assert s["status"] == "finished"
    s = train(opts(env, tmp_path / "c", recipe=replace(FAST, epochs=1), amp="fp16",
                   train_subset=128, test_subset=64))
    assert s["status"] == "finished" and s["amp"] == "fp16"


def test_ddp_two_gloo_processes_train_and_rank0_writes_once(env, tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    # every rename/replace/mkdir a rank makes is logged, to prove rank 1 writes nothing
    (hook / "sitecustomize.py").write_text(
        "import os\n"
        "_rank = os.environ.get('RANK')\n"
        "if _rank is not None and os.environ.get('WRITE_LOG'):\n"
        "    _log = os.path.join(os.environ['WRITE_LOG'], 'rank' + _rank + '.log')\n"
        "    def _wrap(fn):\n"
        "        def inner(*a, **k):\n"
        "            with open(_log, 'a') as fh:\n"
        "                fh.write(fn.__name__ + ' ' + str(a[-1] if fn.__name__ != 'mkdir' "
        "else a[0]) + '\\n')\n"
        "            return fn(*a, **k)\n"
        "        return inner\n"
        "    os.replace = _wrap(os.replace)\n"
        "    os.rename = _wrap(os.rename)\n"
        "    os.mkdir = _wrap(os.mkdir)\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    run = tmp_path / "run"
    e = dict(_env1(), PYTHONPATH=f"{hook}{os.pathsep}{ROOT}", WRITE_LOG=str(logs))
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "archspec", "train", str(env / "tiny.yaml"), "--data", "cifar10", "--data-dir",
         str(env / "data"), "--device", "cpu", "--epochs", "2", "--batch-size", "32",
         "--recipe-set", "optimizer.lr=0.05", "--train-subset", "512", "-o", str(run),
         "--no-download"], cwd=ROOT, env=e, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-3000:]
    s = json.loads((run / "summary.json").read_text())
    assert s["world_size"] == 2 and s["status"] == "finished" and s["final_test_acc"] > 0.5
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    rank0 = (logs / "rank0.log").read_text() if (logs / "rank0.log").exists() else ""
    rank1 = (logs / "rank1.log").read_text() if (logs / "rank1.log").exists() else ""
    assert str(run) in rank0
    assert str(run) not in rank1, rank1
    assert r.stdout.count("epoch 1/2") == 1      # one rank reports


# ------------------------------------------------------------------- Shake-Shake
def test_shake_uses_independent_random_weights_forward_and_backward():
    from archspec.torch_ops import Shake
    m = Shake().train()
    torch.manual_seed(0)
    a = torch.randn(64, 3, 4, 4, requires_grad=True)
    b = torch.randn(64, 3, 4, 4, requires_grad=True)
    out = m(a, b)
    alpha = ((out - b) / (a - b)).detach()            # per-sample forward weight
    assert torch.allclose(alpha, alpha[:, :1, :1, :1].expand_as(alpha), atol=1e-4)
    alpha = alpha[:, 0, 0, 0]
    assert (alpha > 0).all() and (alpha < 1).all() and alpha.std() > 0.1
    out.sum().backward()
    beta = a.grad[:, 0, 0, 0]
    assert torch.allclose(a.grad + b.grad, torch.ones_like(a.grad))   # convex in backward too
    assert torch.allclose(a.grad, beta.view(-1, 1, 1, 1).expand_as(a.grad))
    assert not torch.allclose(alpha, beta, atol=1e-3)                  # independent draws
    m.eval()
    assert torch.equal(m(a, b), 0.5 * (a + b))
    assert torch.equal(m(a, b), m(a, b))


def test_shake_shake_specs_match_the_lua_counts_and_shortcut():
    import torch.nn.functional as F

    import archspec
    from archspec.shapes import summarize
    counts = {}
    for name in ("shake-shake-26-2x32d", "shake-shake-26-2x96d"):
        g = archspec.compile_graph(archspec.load_spec(os.path.join(ROOT, "specs", f"{name}.yaml")))
        counts[name] = sum(g.nodes[n]["params"] for n in g.nodes)
        assert summarize(g) is not None
    assert counts == {"shake-shake-26-2x32d": 2_923_162, "shake-shake-26-2x96d": 26_192_922}
    # the widening shortcut of layer2.0, against the Lua's ops written out by hand
    from archspec.torch_backend import build_module
    m = build_module(os.path.join(ROOT, "specs", "shake-shake-26-2x32d.yaml"),
                     {"depth": 8}).eval()
    blk = getattr(m.layer2, "0")
    x = torch.randn(2, 32, 8, 8)
    r = F.relu(x)
    p1 = blk.skip1.conv(r[:, :, ::2, ::2])                      # SpatialAveragePooling(1,1,2,2)
    shifted = F.pad(r, (1, -1, 1, -1))                          # SpatialZeroPadding(1,-1,1,-1)
    p2 = blk.skip2.conv(shifted[:, :, ::2, ::2])
    skip = blk.skip(torch.cat([p1, p2], 1))
    b1 = blk.branch1.bn2(blk.branch1.conv2(F.relu(blk.branch1.bn1(blk.branch1.conv1(r)))))
    b2 = blk.branch2.bn2(blk.branch2.conv2(F.relu(blk.branch2.bn1(blk.branch2.conv1(r)))))
    ref = 0.5 * (b1 + b2) + skip
    with torch.no_grad():
        got = _run_block(m, "layer2.0", x)
    assert torch.allclose(got, ref, atol=1e-5)


def _run_block(m, prefix: str, x):
    """The output of block ``prefix`` for input ``x``, by running the IR nodes of that block."""
    import operator

    import networkx as nx
    g = m.graph_ir
    nodes = [n for n in nx.topological_sort(g) if n.startswith(prefix + ".")]
    vals = {}
    first_inputs = {i for n in nodes for i in g.nodes[n]["inputs"] if not i.startswith(prefix)}
    assert len(first_inputs) == 1
    vals[first_inputs.pop()] = x
    for n in nodes:
        d = g.nodes[n]
        ins = [vals[i] for i in d["inputs"]]
        if d["op"] == "add":
            vals[n] = operator.add(*ins)
        elif d["op"] == "concat":
            vals[n] = torch.cat(ins, 1)
        else:
            vals[n] = m.get_submodule(n)(*ins)
    return vals[nodes[-1]]


# ------------------------------------------------------------------------ grids
def test_grid_train_fills_the_table_skips_finished_and_resumes(env, tmp_path, capsys):
    (tmp_path / "tiny.yaml").write_text(TINY)
    (tmp_path / "g.yaml").write_text("archspec_grid: 1\nname: widths\nspec: tiny.yaml\n"
                                     "axes:\n  width: [4, 8]\ncell_name: \"tiny-w{width}\"\n")
    out = tmp_path / "out"
    args = ["grid", str(tmp_path / "g.yaml"), "--train", "-o", str(out), "--data", "cifar10",
            "--data-dir", str(env / "data"), "--epochs", "1", "--batch-size", "32",
            "--recipe-set", "optimizer.lr=0.05", "--train-subset", "256", "--test-subset", "100",
            "--device", "cpu", "--no-download", "--format", "json"]
    rc, err = main(capsys, *args)
    assert rc == 0, err
    rows = json.loads((out / "results.json").read_text())["cells"]
    assert [r["cell"] for r in rows] == ["tiny-w4", "tiny-w8"]
    assert all(0 <= r["test_acc"] <= 1 and r["epochs_done"] == 1 for r in rows)
    assert (out / "accuracy.png").exists() and (out / "runs" / "tiny-w8" / "last").is_dir()
    # again: finished cells are skipped; a cell whose summary was lost resumes (nothing to redo)
    os.remove(out / "runs" / "tiny-w8" / "summary.json")
    rc, err = main(capsys, *args)
    assert rc == 0 and "tiny-w4: training" not in err and "tiny-w8: resuming" in err
    again = json.loads((out / "results.json").read_text())["cells"]
    assert [r["test_acc"] for r in again] == [r["test_acc"] for r in rows]
    # other settings than the finished cells had: refused (no stale numbers in the table)
    args[args.index("--epochs") + 1] = "2"
    rc, err = main(capsys, *args)
    assert rc == 2 and "cell 'tiny-w4' was trained with other settings" in err
    assert "epochs: 1 → 2" in err and "Traceback" not in err
    rc, err = main(capsys, *args, "--plot-metric", "test_accc")   # checked before training
    assert rc == 2 and "did you mean 'test_acc'" in err


def test_grid_train_trains_the_valid_cells_and_reports_the_invalid_one(env, tmp_path, capsys):
    (tmp_path / "tiny.yaml").write_text(TINY)
    (tmp_path / "g.yaml").write_text("name: w\nspec: tiny.yaml\naxes:\n  width: [4, -1]\n"
                                     "cell_name: \"tiny-w{width}\"\n")
    out = tmp_path / "out"
    rc, err = main(capsys, "grid", str(tmp_path / "g.yaml"), "--train", "-o", str(out),
                   "--data", "cifar10", "--data-dir", str(env / "data"), "--epochs", "1",
                   "--batch-size", "32", "--train-subset", "64", "--test-subset", "32",
                   "--device", "cpu", "--no-download", "-q")
    assert rc == 2 and "g.yaml:4:14: error: cell 'tiny-w-1'" in err
    rows = {r["cell"]: r for r in json.loads((out / "results.json").read_text())["cells"]}
    assert rows["tiny-w4"]["epochs_done"] == 1 and rows["tiny-w-1"]["status"] == "invalid"
    assert rows["tiny-w-1"]["test_acc"] is None


def test_out_of_memory_names_the_batch_size(env, tmp_path):
    class Boom(torch.nn.Module):
        def __init__(self, g):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(SpecError, match="out of memory in training at batch size 32") as e:
        train(opts(env, tmp_path / "run", build=Boom))
    assert "--batch-size 16" in e.value.hint
    assert (tmp_path / "run" / "run.json").exists()     # what was written stays


def test_eval_loads_torchvision_resnet18_weights(env, tmp_path):
    """torchvision's own resnet18 state_dict, evaluated through specs/resnet18.yaml, scores
    exactly what the torchvision model scores on the same normalised images."""
    import torchvision

    from archspec.train.data import Batches, Normalizer, load_data
    from archspec.train.evaluate import evaluate_weights
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(num_classes=10).eval()
    torch.save(tv.state_dict(), tmp_path / "resnet18.pth")
    r = evaluate_weights(os.path.join(ROOT, "specs", "resnet18.yaml"), str(tmp_path / "resnet18.pth"),
                         overrides=["num_classes=10", "in_size=32"], data_dir=str(env / "data"),
                         device="cpu", download=False, subset=64, batch_size=64)
    s = load_data("cifar10", str(env / "data"), download=False)
    norm = Normalizer.from_data(Data(), s.train)
    x, y = Batches(s.test.subset(64), 64, train=False, augment=Augment(), norm=norm).batch(0, 0)
    with torch.no_grad():
        want = (tv(x).argmax(1) == y).float().mean().item()
    assert r["accuracy"] == pytest.approx(want, abs=1e-9) and r["images"] == 64
