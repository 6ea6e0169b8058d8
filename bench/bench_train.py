"""Training throughput: ``archspec train``'s loop against a CIFAR-10 blog post's loop.

The post, 「pytorchで初めてゼロから書くSOTA画像分類器(上)」 (docs/sources.md),
trains with ``ImageFolder(transform=ToTensor())`` and a ``DataLoader(batch_size,
shuffle=True, num_workers=4)``, then a plain loop with ``loss.item()`` every step.
``archspec train`` decodes the images once into one uint8 tensor and cuts, augments
and normalises whole batches (on the GPU when there is one). Both train the same
network (pystyle.info's WRN, ``specs/wrn.yaml``, small on the CPU) with the same
optimiser (the post's Adam 0.003, recipe ``cifar10-adam``) and batch, on the same
image folder written here, in one process, one after the other; images/s is
measured on the training steps of the last epoch (steady state) of each, in
alternating rounds (the best round of each side is reported, all rounds printed).

    python bench/bench_train.py                       # CPU: WRN-10-1, batch 32
    python bench/bench_train.py --set d=16 --set k=4 --batch 128 --images 10000   # GPU
    python bench/bench_train.py --gpu-paper           # GPU: WRN-16-4 and WRN-28-10, bf16

On CUDA, ``--amp bf16 --channels-last`` is the archspec side's usual setting; the
WRN paper reports 312 ms per forward+backward of 32 images for WRN-28-10 on a
Titan X, i.e. about 487 s per 50,000-image epoch, printed beside ours.

Measured 2026-11-22 on the 2-core CPU build machine (shared with other jobs, so
rounds vary), WRN-10-1 (``d=10 k=1 dropout=0``), 2,048 images, 2 epochs, 2 rounds:

    batch 32, torch's default 2 threads:  blog 1285 img/s, archspec 1933 img/s: 1.50x
    batch 32, --threads 1:                blog  808 img/s, archspec 1066 img/s: 1.32x
    batch 128, --threads 1:               blog  874 img/s, archspec  967 img/s: 1.11x

(the post's 4 DataLoader workers decode PNGs on the other core; archspec decodes
once and spends every step on the network). No GPU was available for the CUDA rows.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PAPER_WRN_28_10_MS_PER_32 = 312.0   # Zagoruyko & Komodakis 2016, Titan X, fwd+bwd of 32 images


def blog_loop(spec: str, overrides: list[str], data: str, batch: int, epochs: int,
              device: str, workers: int) -> list[float]:
    """The CIFAR-10 post's loop as written there (plus a sync for honest timing); images/s
    per epoch."""
    import torch
    import torch.nn as nn
    import torch.optim as optim
    import torchvision
    from torchvision import transforms

    from archspec.torch_backend import build_module
    TRANSFORM = transforms.Compose([transforms.ToTensor()])
    train_data = torchvision.datasets.ImageFolder(root=os.path.join(data, "train"),
                                                  transform=TRANSFORM)
    train_loader = torch.utils.data.DataLoader(train_data, batch_size=batch, shuffle=True,
                                               num_workers=workers)
    dev = torch.device(device)
    torch.manual_seed(0)
    model = build_module(spec, overrides)
    model.to(dev)
    loss_func = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=0.003)
    rates = []
    for epoch in range(epochs):
        model.train()
        running_loss = 0.0
        n = 0
        t0 = time.perf_counter()
        for i, data_ in enumerate(train_loader):
            inputs, labels = data_
            inputs = inputs.to(dev)
            labels = labels.to(dev)
            optimizer.zero_grad()
            outputs = model(inputs)
            loss = loss_func(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            n += labels.size(0)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        rates.append(n / (time.perf_counter() - t0))
    return rates


def archspec_loop(spec: str, overrides: list[str], data: str, batch: int, epochs: int,
                  device: str, amp: str, channels_last: bool, out: str) -> tuple[list[float], float]:
    """``archspec train`` with the post's recipe, ``cifar10-adam``; images/s per epoch and the
    last test accuracy."""
    from dataclasses import replace

    from archspec.train.loop import TrainOptions, train
    from archspec.train.recipe import load_recipe
    r = load_recipe("cifar10-adam")
    r = replace(r, epochs=epochs, batch_size=batch, eval_batch_size=256,
                checkpoint_every_s=1e9)
    s = train(TrainOptions(spec=spec, overrides=tuple(overrides), recipe=r, data="imagefolder",
                           data_dir=data, out=out, device=device, amp=amp,
                           channels_last=channels_last, quiet=True, progress=False))
    with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as fh:
        rows = [json.loads(x) for x in fh]
    return [row["images_per_s"] for row in rows], s["final_test_acc"]


def one(args: argparse.Namespace, overrides: list[str], batch: int, tmp: str, tag: str
        ) -> dict:
    import torch
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available()
                                                         else "cpu")
    amp = args.amp if device.startswith("cuda") or args.amp != "auto" else "off"
    amp = "bf16" if amp == "auto" else amp
    cl = args.channels_last or (device.startswith("cuda") and not args.no_channels_last)
    blog, oursl = [], []
    for k in range(args.rounds):      # alternate, so a busy moment hurts both sides alike
        blog.append(blog_loop(args.spec, overrides, tmp, batch, args.epochs, device,
                              args.workers)[-1])
        rates, acc = archspec_loop(args.spec, overrides, tmp, batch, args.epochs, device, amp,
                                   cl, os.path.join(tmp, f"run-{tag}-{k}"))
        oursl.append(rates[-1])
        print(f"  round {k + 1}: blog {blog[-1]:.1f} img/s, archspec {oursl[-1]:.1f} img/s",
              file=sys.stderr)
    theirs, ours = max(blog), max(oursl)
    res = {"network": f"{os.path.basename(args.spec)} {' '.join(overrides)}", "batch": batch,
           "device": device, "images": args.images, "epochs": args.epochs, "rounds": args.rounds,
           "blog_rounds": [round(v, 1) for v in blog],
           "archspec_rounds": [round(v, 1) for v in oursl],
           "blog_images_per_s": round(theirs, 1), "archspec_images_per_s": round(ours, 1),
           "ratio": round(ours / theirs, 3), "archspec_amp": amp,
           "archspec_channels_last": cl, "archspec_test_acc": acc,
           "torch_threads": torch.get_num_threads()}
    if "d=28" in overrides and "k=10" in overrides:
        res["paper_epoch_s_titan_x"] = round(50000 / 32 * PAPER_WRN_28_10_MS_PER_32 / 1000, 1)
        res["archspec_epoch_s_50k"] = round(50000 / ours, 1)
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--spec", default=os.path.join(ROOT, "specs", "wrn.yaml"))
    p.add_argument("--set", dest="overrides", action="append", default=None,
                   help="spec overrides (default: d=10 k=1 dropout=0, small for the CPU)")
    p.add_argument("--images", type=int, default=2048, help="training images written")
    p.add_argument("--batch", type=int, default=32, help="batch size (the post's: 32)")
    p.add_argument("--epochs", type=int, default=2, help="epochs; the last one is timed")
    p.add_argument("--workers", type=int, default=4, help="num_workers of the post's DataLoader")
    p.add_argument("--rounds", type=int, default=2,
                   help="alternating rounds of both loops; the best of each is reported")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads for both sides (0: torch's default)")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="auto", help="archspec side: bf16 on CUDA, off on the CPU")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--gpu-paper", action="store_true",
                   help="WRN-16-4 and WRN-28-10 at batch 128 (needs CUDA)")
    p.add_argument("--json", metavar="FILE", help="also write the results here")
    args = p.parse_args()
    from archspec.train.synthetic import write_imagefolder
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_imagefolder(tmp, args.images, 256, classes=10)
        print(f"wrote {args.images} + 256 PNGs in {time.perf_counter() - t:.1f}s "
              f"(ImageFolder layout, as the CIFAR-10 post reads)", file=sys.stderr)
        if args.gpu_paper:
            configs = [(["d=16", "k=4", "dropout=0"], 128), (["d=28", "k=10", "dropout=0"], 128)]
        else:
            configs = [(args.overrides or ["d=10", "k=1", "dropout=0"], args.batch)]
        for i, (ov, batch) in enumerate(configs):
            results.append(one(args, ov, batch, tmp, str(i)))
    print(f"{'network':<32} {'batch':>5} {'device':>6} {'blog img/s':>11} "
          f"{'archspec img/s':>15} {'ratio':>6}")
    for r in results:
        print(f"{r['network']:<32} {r['batch']:>5} {r['device']:>6} "
              f"{r['blog_images_per_s']:>11.1f} {r['archspec_images_per_s']:>15.1f} "
              f"{r['ratio']:>5.2f}x")
        if "paper_epoch_s_titan_x" in r:
            print(f"  WRN-28-10 epoch (50k images): archspec {r['archspec_epoch_s_50k']} s, "
                  f"paper (Titan X, 312 ms / 32 images) {r['paper_epoch_s_titan_x']} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
