"""Data sets, batches and recipes for ``archspec train`` (CPU, offline, small)."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

import torch.nn.functional as F  # noqa: E402

from archspec.errors import SpecError  # noqa: E402
from archspec.train.data import Batches, Normalizer, load_data, seed_for  # noqa: E402
from archspec.train.recipe import (Augment, Data, Recipe, Schedule, Optimizer,  # noqa: E402
                                   diff_recipes, load_recipe)
from archspec.train.synthetic import make_images, write_cifar, write_imagefolder  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cifar")
    write_cifar(str(d), 120, 50, seed=3)
    return str(d)


# ------------------------------------------------------------------- reading
def test_cifar10_format_through_torchvision_reader(cifar_dir):
    s = load_data("cifar10", cifar_dir, download=False)
    assert s.train.images.shape == (120, 3, 32, 32) and s.train.images.dtype == torch.uint8
    assert s.test.images.shape == (50, 3, 32, 32)
    assert s.num_classes == 10 and s.train.classes[0] == "airplane"
    x, y = make_images(120, 10, 3)           # what write_cifar wrote, HWC
    assert torch.equal(s.train.images, torch.from_numpy(x).permute(0, 3, 1, 2))
    assert s.train.labels.tolist() == y.tolist()


def test_cifar100_format(tmp_path):
    write_cifar(str(tmp_path), 60, 20, kind="cifar100")
    s = load_data("cifar100", str(tmp_path), download=False)
    assert s.num_classes == 100 and len(s.train) == 60 and len(s.test) == 20


def test_imagefolder(tmp_path):
    write_imagefolder(str(tmp_path), 12, 6, classes=3)
    s = load_data("imagefolder", str(tmp_path))
    assert s.train.images.shape == (12, 3, 32, 32)
    assert s.train.classes == ["class0", "class1", "class2"]
    x, y = make_images(12, 3, 0)
    order = np.argsort(y, kind="stable")   # ImageFolder lists class by class
    assert torch.equal(s.train.images, torch.from_numpy(x[order]).permute(0, 3, 1, 2))


def test_missing_dataset_says_where_and_how(tmp_path):
    with pytest.raises(SpecError) as e:
        load_data("cifar10", str(tmp_path), download=False)
    msg = str(e.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg
    assert "cifar-10-python.tar.gz" in msg and "--data-dir" in msg


def test_partial_dataset_lists_missing_files(tmp_path):
    d = write_cifar(str(tmp_path), 50, 10)
    os.remove(os.path.join(d, "data_batch_3"))
    with pytest.raises(SpecError, match="incomplete.*data_batch_3"):
        load_data("cifar10", str(tmp_path), download=False)


def test_truncated_dataset_is_reported(tmp_path):
    d = write_cifar(str(tmp_path), 50, 10)
    with open(os.path.join(d, "data_batch_2"), "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(SpecError, match="corrupted or partial"):
        load_data("cifar10", str(tmp_path), download=False)


def test_imagefolder_missing_split(tmp_path):
    os.makedirs(tmp_path / "train" / "a")
    with pytest.raises(SpecError, match="no 'test' folder"):
        load_data("imagefolder", str(tmp_path))


# ------------------------------------------------------------------- batches
def _reference_crop_flip(x, oy, ox, flip, pad, mode):
    """torch's F.pad + slicing, one image at a time (what the gather must equal)."""
    out = []
    for i in range(x.shape[0]):
        p = F.pad(x[i:i + 1].float(), (pad,) * 4, mode="reflect" if mode == "reflect" else
                  "constant")
        c = p[:, :, pad + oy[i]:pad + oy[i] + x.shape[2], pad + ox[i]:pad + ox[i] + x.shape[3]]
        out.append(c.flip(3) if flip[i] else c)
    return torch.cat(out)


@pytest.mark.parametrize("mode", ["reflect", "zeros"])
def test_batched_crop_and_flip_match_per_image_reference(cifar_dir, mode):
    s = load_data("cifar10", cifar_dir, download=False)
    none = Normalizer(torch.zeros(3, 1, 1), torch.ones(3, 1, 1) / 255)   # x/255 * 255: raw
    b = Batches(s.train, 16, train=True, augment=Augment(True, 4, mode), norm=none, seed=5)
    order = b.order(2)
    x, y = b.batch(2, 1, order)
    idx = order[16:32]
    g = torch.Generator().manual_seed(seed_for(5, 2, 1, 0))
    oy = torch.randint(0, 9, (16,), generator=g) - 4
    ox = torch.randint(0, 9, (16,), generator=g) - 4
    flip = torch.rand(16, generator=g) < 0.5
    ref = _reference_crop_flip(s.train.images[idx], oy, ox, flip, 4, mode)
    assert torch.equal(x.round(), ref)   # x/255·255 is exact up to rounding
    assert torch.equal(y, s.train.labels[idx])
    assert flip.any() and (~flip).any()


def test_batches_are_pure_functions_of_epoch_and_step(cifar_dir):
    s = load_data("cifar10", cifar_dir, download=False)
    norm = Normalizer.from_data(Data(), s.train)
    a = Batches(s.train, 32, train=True, augment=Augment(True, 4), norm=norm, seed=1)
    b = Batches(s.train, 32, train=True, augment=Augment(True, 4), norm=norm, seed=1)
    assert torch.equal(a.batch(3, 2)[0], b.batch(3, 2)[0])
    assert not torch.equal(a.batch(3, 2)[0], a.batch(4, 2)[0])
    assert len(a) == 4 and sum(len(y) for _, y in a.epoch_iter(0)) == 120
    # the DataLoader-worker path yields the same batches
    w = [x for x, _ in a.epoch_iter(1, 1, workers=1)]
    assert all(torch.equal(p, a.batch(1, i + 1)[0]) for i, p in enumerate(w))


def test_ranks_partition_training_and_test_sets(cifar_dir):
    s = load_data("cifar10", cifar_dir, download=False)
    norm = Normalizer.from_data(Data(), s.train)
    shards = [Batches(s.train, 8, train=True, augment=Augment(), norm=norm, rank=r, world=3)
              for r in range(3)]
    seen = torch.cat([sh.order(0) for sh in shards])
    assert sorted(seen.tolist()) == list(range(120))
    tests = [Batches(s.test, 8, train=False, augment=Augment(), norm=norm, rank=r, world=3)
             for r in range(3)]
    labels = torch.cat([y for t in tests for _, y in t.epoch_iter(0)])
    assert int((labels >= 0).sum()) == 50 and len({len(t) for t in tests}) == 1


def test_per_channel_normalisation(cifar_dir):
    s = load_data("cifar10", cifar_dir, download=False)
    n = Normalizer.from_data(Data(normalize="per_channel"), s.train)
    x = s.train.images.double() / 255
    assert torch.allclose(n.mean.flatten().double(), x.mean((0, 2, 3)), atol=1e-6)
    assert torch.allclose(n.std.flatten().double(), x.std((0, 2, 3), unbiased=False), atol=1e-6)
    b = Batches(s.train, 120, train=False, augment=Augment(), norm=n)
    xb, _ = b.batch(0, 0)
    assert abs(float(xb.mean())) < 1e-4
    m = Normalizer.from_data(Data(normalize="mean_image"), s.train)
    assert m.mean.shape == (3, 32, 32)


# ------------------------------------------------------------------- recipes
def test_shipped_recipes_load():
    wrn = load_recipe("wrn")
    assert (wrn.optimizer.name, wrn.optimizer.lr, wrn.optimizer.momentum, wrn.optimizer.nesterov,
            wrn.optimizer.weight_decay, wrn.batch_size, wrn.epochs) == \
        ("sgd", 0.1, 0.9, True, 5e-4, 128, 200)
    assert wrn.schedule.milestones == (60, 120, 160) and wrn.schedule.gamma == 0.2
    assert wrn.augment == Augment(True, 4, "reflect")
    adam = load_recipe(os.path.join(ROOT, "recipes", "cifar10-adam.yaml"))
    assert (adam.optimizer.name, adam.optimizer.lr, adam.batch_size, adam.epochs) == \
        ("adam", 0.003, 32, 4)
    assert not adam.augment.flip and adam.augment.crop_pad == 0
    ss = load_recipe("shake-shake")
    assert ss.schedule.name == "cosine" and ss.optimizer.lr == 0.2 and ss.epochs == 1800
    he = load_recipe("resnet-cifar")
    assert he.optimizer.weight_decay == 1e-4 and he.schedule.milestones == (82, 123)


def test_multistep_matches_torch_scheduler():
    r = load_recipe("wrn")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sch = torch.optim.lr_scheduler.MultiStepLR(opt, [60, 120, 160], 0.2)
    for e in range(200):
        assert abs(r.lr_at(e + 0.5) - opt.param_groups[0]["lr"]) < 1e-12
        opt.step()
        sch.step()


def test_cosine_per_step():
    r = Recipe(epochs=10, optimizer=Optimizer(lr=0.2), schedule=Schedule("cosine", per_step=True))
    assert r.lr_at(0) == pytest.approx(0.2)
    assert r.lr_at(5) == pytest.approx(0.1)
    assert r.lr_at(2.5) == pytest.approx(0.1 * (1 + np.cos(np.pi * 0.25)))
    assert r.lr_at(10) == pytest.approx(0.0, abs=1e-12)


def test_recipe_errors_are_located(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("epochs: 3\noptimizer: {name: sgd, lrr: 0.1}\n")
    with pytest.raises(SpecError) as e:
        load_recipe(str(p))
    assert e.value.loc.line == 2 and "did you mean 'lr'" in str(e.value)
    p.write_text("epochs: three\n")
    with pytest.raises(SpecError, match="'epochs' must be an integer") as e:
        load_recipe(str(p))
    assert e.value.loc.line == 1 and e.value.loc.col == 9
    p.write_text("schedule: {name: cosin}\n")
    with pytest.raises(SpecError, match="did you mean 'cosine'"):
        load_recipe(str(p))
    with pytest.raises(SpecError, match="no such recipe"):
        load_recipe("wrnn")


def test_recipe_overrides_and_diff():
    a = load_recipe("wrn")
    b = load_recipe("wrn", ["optimizer.lr=0.05", "epochs=3"])
    assert b.optimizer.lr == 0.05 and b.epochs == 3
    assert diff_recipes(a, b) == ["epochs: 200 → 3", "optimizer.lr: 0.1 → 0.05"]
    with pytest.raises(SpecError, match="unknown recipe key"):
        load_recipe("wrn", ["optimiser.lr=1"])


def test_recipe_roundtrip(tmp_path):
    r = load_recipe("shake-shake")
    p = tmp_path / "again.yaml"
    p.write_text(r.to_yaml())
    assert load_recipe(str(p)) == r


def test_pickles_are_real_cifar_layout(cifar_dir):
    with open(os.path.join(cifar_dir, "cifar-10-batches-py", "data_batch_1"), "rb") as fh:
        d = pickle.load(fh, encoding="latin1")
    assert d["data"].dtype == np.uint8 and d["data"].shape[1] == 3072
    assert set(d) >= {"data", "labels", "batch_label", "filenames"}


def test_imagefolder_of_mixed_sizes_is_refused(tmp_path):
    from PIL import Image
    write_imagefolder(str(tmp_path), 6, 3, classes=2)
    Image.new("RGB", (40, 30)).save(tmp_path / "train" / "class1" / "odd.png")
    with pytest.raises(SpecError, match="is 40×30, the first one was 32×32") as e:
        load_data("imagefolder", str(tmp_path))
    assert e.value.loc.path.endswith("odd.png")
