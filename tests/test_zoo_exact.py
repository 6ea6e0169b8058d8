"""Every zoo spec against torchvision 0.29.1's own builder, by the same measures.

For each torchvision CNN builder that has a spec (``specs/<builder>.yaml``, the names of
``tests/golden/torchvision-zoo.json``):

- torchvision's state_dict loads with ``strict=True`` and the eval outputs are equal to
  float rounding, after ``randomise_reference`` gives every BatchNorm statistic, norm
  affine, layer scale and bias a random value (torchvision's init leaves biases 0 and
  EfficientNet's output ~1e-14, under which a wrong wiring could still "match");
- in training mode, under one seed, the loss, every gradient and the updated BatchNorm
  statistics are equal: dropout and stochastic depth draw in torchvision's order;
- under one ``torch.manual_seed`` the freshly built spec's state_dict is torchvision's,
  bit for bit (the init the spec names, modules built in torchvision's order);
- ``archspec emit``'s standalone source takes the same weights and computes the same.

One builder per family runs in the default suite (the training check of AlexNet, VGG
and Inception v3 only in the full run); the others with ``--zoo-all`` (or
``ARCHSPEC_ZOO_ALL=1``): ``pytest tests/test_zoo_exact.py --zoo-all`` is the full run
the README names. Static parameter counts and MACs of all 68 are checked without torch
in tests/test_zoo_counts.py.
"""
from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from archspec.torch_backend import build_module  # noqa: E402
from references.randomise import randomise_reference  # noqa: E402
import zoo_builders as zb  # noqa: E402

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = zb.GOLDEN
#: builders whose modules torchvision registers in another order than they run, so one
#: seed draws their tensors in another order: GoogLeNet registers aux1 and aux2 after
#: inception5b, runs them after inception4a and 4d, and the spec writes each layer where
#: it runs. Their init is checked by each tensor's mean and std instead.
DRAW_ORDER_DIFFERS = {"googlenet"}
#: input side of the output checks where 64 is too small for the network
SIZE: dict[str, int] = {}
SIZE["inception_v3"] = 299      # its aux head needs the 17×17 grid in training (min 75 in eval)
TOL = 1e-5          # relative to the output's largest magnitude, float32


def _params() -> list:
    reps = zb.representatives()
    return [pytest.param(b, marks=() if b in reps else pytest.mark.zoo_all)
            for b in zb.with_specs()]


def _reference(builder: str) -> torch.nn.Module:
    torch.manual_seed(0)
    ref = torchvision.models.get_model(builder)
    return randomise_reference(ref, seed=1).eval()


def _ours(builder: str) -> torch.nn.Module:
    """Our module without its init (on the meta device): the weights come from the reference."""
    with torch.device("meta"):
        m = build_module(str(ROOT / "specs" / f"{builder}.yaml"))
    return m.to_empty(device="cpu")


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    scale = want.abs().max().item()
    assert want.std().item() > 0.05 * scale > 0          # not a constant, not ~0
    err = (got - want).abs().max().item()
    assert err <= TOL * scale, (err, scale)


@pytest.mark.parametrize("builder", _params())
def test_state_dict_loads_strictly_and_eval_outputs_equal(builder: str) -> None:
    ref, ours = _reference(builder), _ours(builder)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    size = SIZE.get(builder, 64)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got, want = ours(x), ref(x)
    assert got.shape == want.shape == (2, 1000)
    _close(got, want)


#: families whose training-mode check runs only in the full run: AlexNet's and VGG's
#: 100M-parameter classifiers and Inception v3 at 299×299 cost half a minute of the
#: default suite (their eval, init and emitted-source checks stay in it)
TRAIN_IN_FULL_RUN = {"alexnet", "vgg", "inception"}


def _train_params() -> list:
    return [pytest.param(b, marks=pytest.mark.zoo_all)
            if GOLDEN[b]["family"] in TRAIN_IN_FULL_RUN else p
            for p, b in zip(_params(), zb.with_specs())]


@pytest.mark.parametrize("builder", _train_params())
def test_train_mode_loss_gradients_and_statistics_equal(builder: str) -> None:
    ref, ours = _reference(builder), _ours(builder)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.train(), ref.train()
    size = SIZE.get(builder, 64)
    x = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(3))
    losses = []
    for m in (ours, ref):
        torch.manual_seed(4)
        out = m(x)      # GoogLeNet, Inception v3: (logits, aux…), a named tuple in torchvision
        loss = (out[0] if isinstance(out, tuple) else out).square().mean()
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    grads = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        if p.grad is None and grads[name].grad is None:     # an aux head the loss skips
            continue
        assert torch.allclose(p.grad, grads[name].grad, rtol=1e-3, atol=1e-6), name
    buffers = dict(ref.named_buffers())
    for name, b in ours.named_buffers():
        assert torch.allclose(b.float(), buffers[name].float(), rtol=1e-5, atol=1e-6), name


@pytest.mark.parametrize("builder", _params())
def test_seeded_build_is_torchvisions_initial_state_dict(builder: str) -> None:
    torch.manual_seed(0)
    want = torchvision.models.get_model(builder).state_dict()
    torch.manual_seed(0)
    got = build_module(str(ROOT / "specs" / f"{builder}.yaml")).state_dict()
    if builder in DRAW_ORDER_DIFFERS:
        assert sorted(got) == sorted(want)
        for k, w in want.items():
            if w.is_floating_point() and w.numel() >= 1000:     # drawn: same law
                assert float(got[k].mean()) == pytest.approx(float(w.mean()), abs=0.1 * float(w.std()) + 1e-6), k
                assert float(got[k].std()) == pytest.approx(float(w.std()), rel=0.1), k
            elif not w.is_floating_point() or w.numel() == 1 or float(w.std()) == 0:
                assert torch.equal(got[k], w), k                # constants: equal
        return
    assert list(got) == list(want)
    assert [k for k in want if not torch.equal(got[k], want[k])] == []


@pytest.mark.parametrize("builder", _params())
def test_emitted_source_takes_the_weights_and_computes_the_same(builder: str) -> None:
    from archspec.codegen import generate
    ns: dict = {"__name__": "generated"}
    exec(compile(generate(str(ROOT / "specs" / f"{builder}.yaml")), "<generated>", "exec"), ns)
    with torch.device("meta"):
        model = ns["Model"]()
    model = model.to_empty(device="cpu")
    ref = _reference(builder)
    model.load_state_dict(ref.state_dict(), strict=True)
    model.eval()
    size = SIZE.get(builder, 64)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        _close(model(x), ref(x))
