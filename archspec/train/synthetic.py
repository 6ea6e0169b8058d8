"""Small learnable data sets written in CIFAR's real on-disk format or as image folders.

Tests and benchmarks run offline, so they write their own data: each class gets a
colour and a stripe orientation, plus noise, which a tiny network learns in an
epoch or two but which is not trivially separable by one pixel. The files are
exactly what the CIFAR archives hold (pickled dicts with ``data`` as ``N×3072``
uint8 rows, ``labels``/``fine_labels`` and ``batches.meta``), so reading them goes
through torchvision's real reader.
"""
from __future__ import annotations

import os
import pickle

import numpy as np

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]


def make_images(n: int, classes: int, seed: int, size: int = 32, noise: float = 40.0
                ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` HWC uint8 images and their labels: class colour + class stripes + noise."""
    rng = np.random.default_rng(seed)
    crng = np.random.default_rng(1234)            # class prototypes are fixed across splits
    colours = crng.uniform(40, 215, size=(classes, 3))
    freqs = crng.uniform(0.3, 1.2, size=classes)
    angles = crng.uniform(0, np.pi, size=classes)
    y = rng.integers(0, classes, size=n)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    imgs = np.empty((n, size, size, 3), dtype=np.uint8)
    for i, c in enumerate(y):
        stripes = 30 * np.sin(freqs[c] * (np.cos(angles[c]) * xx + np.sin(angles[c]) * yy))
        img = colours[c][None, None, :] + stripes[..., None] + rng.normal(0, noise, (size, size, 3))
        imgs[i] = np.clip(img, 0, 255).astype(np.uint8)
    return imgs, y.astype(np.int64)


def write_cifar(root: str, n_train: int = 500, n_test: int = 200, kind: str = "cifar10",
                seed: int = 0) -> str:
    """Write a CIFAR-10 (or CIFAR-100) data set in the official pickle layout under ``root``."""
    classes = 10 if kind == "cifar10" else 100
    xtr, ytr = make_images(n_train, classes, seed)
    xte, yte = make_images(n_test, classes, seed + 1)

    def rows(x: np.ndarray) -> np.ndarray:       # N×H×W×C → N×3072, channel-major like CIFAR
        return x.transpose(0, 3, 1, 2).reshape(len(x), -1)

    def dump(path: str, obj: dict) -> None:
        with open(path, "wb") as fh:
            pickle.dump(obj, fh, protocol=2)
    if kind == "cifar10":
        d = os.path.join(root, "cifar-10-batches-py")
        os.makedirs(d, exist_ok=True)
        parts = np.array_split(np.arange(n_train), 5)
        for i, idx in enumerate(parts, 1):
            dump(os.path.join(d, f"data_batch_{i}"),
                 {"batch_label": f"training batch {i} of 5", "labels": ytr[idx].tolist(),
                  "data": rows(xtr[idx]), "filenames": [f"img_{j}.png" for j in idx]})
        dump(os.path.join(d, "test_batch"),
             {"batch_label": "testing batch 1 of 1", "labels": yte.tolist(), "data": rows(xte),
              "filenames": [f"test_{j}.png" for j in range(n_test)]})
        dump(os.path.join(d, "batches.meta"), {"label_names": CIFAR10_CLASSES,
                                               "num_cases_per_batch": len(parts[0]),
                                               "num_vis": 3072})
    else:
        d = os.path.join(root, "cifar-100-python")
        os.makedirs(d, exist_ok=True)
        for name, x, y in (("train", xtr, ytr), ("test", xte, yte)):
            dump(os.path.join(d, name), {"filenames": [f"{name}_{j}.png" for j in range(len(y))],
                                         "batch_label": name, "fine_labels": y.tolist(),
                                         "coarse_labels": (y // 5).tolist(), "data": rows(x)})
        dump(os.path.join(d, "meta"), {"fine_label_names": [f"class{i}" for i in range(100)],
                                       "coarse_label_names": [f"super{i}" for i in range(20)]})
    return d


def write_imagefolder(root: str, n_train: int = 100, n_test: int = 40, classes: int = 3,
                      size: int = 32, seed: int = 0) -> str:
    """``root/train/<class>/*.png`` and ``root/test/<class>/*.png``, as the CIFAR-10 post
    (docs/sources.md) reads them."""
    from PIL import Image
    for split, n, s in (("train", n_train, seed), ("test", n_test, seed + 1)):
        x, y = make_images(n, classes, s, size)
        for c in range(classes):
            os.makedirs(os.path.join(root, split, f"class{c}"), exist_ok=True)
        for i, (img, c) in enumerate(zip(x, y)):
            Image.fromarray(img).save(os.path.join(root, split, f"class{c}", f"{i:05d}.png"))
    return root
