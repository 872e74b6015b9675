"""Checks of the offline FID network on real CIFAR-10 (CPU: about an hour at the defaults on 2 cores).

    python benchmarks/inception_check.py --n 2000 --n-conv 250

1. FID and KID between a seeded subset of the CIFAR-10 train split and one of the test split, ``n``
   images each, with the standard features (299×299, TF1 bilinear, (x − 128)/128): a sanity figure
   for the network and the estimator's finite-``n`` bias.
2. Preprocessing conventions on the first ``n_conv`` images of both subsets, every pipeline fed the
   same uint8 images: ours; torch-fidelity's and pytorch-fid's own Inception implementations loaded
   with our network's weights (:mod:`attnflow_core.metrics.crosscheck`); ours with pytorch-fid's
   half-pixel resize; ours with ``2x − 1`` scaling. For each: max |feature − ours|, FID(pipeline(X),
   ours(X)) on the same train images, and FID(train, test).

Features are cached in ``--out`` (npz), so a rerun only recomputes what is missing.
"""
from __future__ import annotations

import argparse
import io
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from attnflow_core.core.io import write_bytes, write_text
from attnflow_core.data import load_dataset
from attnflow_core.metrics import InceptionFeatures, fid_from_features, kernel_inception_distance
from attnflow_core.metrics.crosscheck import pytorch_fid_pool3, torch_fidelity_pool3
from attnflow_core.metrics.inception import check_images, tf1_resize
from attnflow_core.repro.provenance import git_commit, hardware_label

REPO = Path(__file__).resolve().parent.parent


def _batched(fn, images: torch.Tensor, batch: int = 25) -> np.ndarray:
    from tqdm.auto import tqdm

    return np.concatenate([np.asarray(fn(images[i:i + batch]), np.float64)
                           for i in tqdm(range(0, len(images), batch), leave=False)])


def pipelines(net: InceptionFeatures) -> dict:
    def half_pixel(x):  # pytorch-fid's resize, our scaling
        x = check_images(x)
        return net.pool3((F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 128) / 128)

    def unit_range(x):  # our resize, pytorch-fid's scaling
        return net.pool3(tf1_resize(check_images(x), 299) / 127.5 - 1.0)

    return {"ours (TF1 bilinear, (x-128)/128)": net,
            "torch-fidelity InceptionV3, same weights": torch_fidelity_pool3(),
            "pytorch-fid InceptionV3, same weights": pytorch_fid_pool3(),
            "ours with half-pixel bilinear resize": half_pixel,
            "ours with 2x-1 scaling": unit_range}


def cached(out: Path, name: str, fn, images) -> np.ndarray:
    path = out / f"features-{name}.npz"
    if path.is_file():
        try:
            with np.load(path) as z:
                if len(z["f"]) == len(images):
                    return z["f"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:  # a damaged cache is recomputed
            print(f"  {path.name}: unreadable cache ({type(e).__name__}), recomputing", flush=True)
    t0 = time.perf_counter()
    f = _batched(fn, images)
    print(f"  {name}: {len(images)} images in {time.perf_counter() - t0:.0f}s", flush=True)
    buf = io.BytesIO()
    np.savez(buf, f=f)
    write_bytes(path, buf.getvalue())  # atomic: an interrupted run leaves no half-written cache
    return f


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="images per split for FID(train, test)")
    p.add_argument("--n-conv", type=int, default=250, help="images per split for the convention comparison")
    p.add_argument("--data-root", default=None, help="data root (default: $ATTNFLOW_DATA, else ~/.cache/attnflow/data)")
    p.add_argument("--out", default=str(REPO / "results" / "benchmarks" / "inception_check"))
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    import pandas as pd

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tr = load_dataset("cifar10", "train", root=a.data_root, limit=a.n, seed=1).images
    te = load_dataset("cifar10", "test", root=a.data_root, limit=a.n, seed=1).images
    net = InceptionFeatures(batch_size=25)
    meta = {"commit": git_commit(), "hardware": hardware_label(), "torch": torch.__version__}
    ftr = cached(out, f"ours-train-{a.n}", net, tr)
    fte = cached(out, f"ours-test-{a.n}", net, te)
    subset = min(1000, a.n // 2)  # subsets smaller than the sets, so that the spread over subsets means something
    kid, kid_std = kernel_inception_distance(ftr, fte, subset_size=subset, subsets=100)
    rows = [{"check": "FID(train, test)", "pipeline": "ours", "n_per_split": a.n,
             "fid_train_test": fid_from_features(ftr, fte), "kid_train_test": kid, "kid_std": kid_std,
             "kid_subset": subset, **meta}]
    print(rows[0], flush=True)
    m = a.n_conv
    base_tr, base_te = ftr[:m], fte[:m]  # the first m images of each subset
    for i, (name, fn) in enumerate(pipelines(net).items()):
        f1 = base_tr if i == 0 else cached(out, f"conv{i}-train-{m}", fn, tr[:m])
        f2 = base_te if i == 0 else cached(out, f"conv{i}-test-{m}", fn, te[:m])
        rows.append({"check": "conventions", "pipeline": name, "n_per_split": m,
                     "max_abs_feature_diff_vs_ours": float(np.abs(f1 - base_tr).max()),
                     "mean_abs_feature_diff_vs_ours": float(np.abs(f1 - base_tr).mean()),
                     "fid_vs_ours_same_images": fid_from_features(f1, base_tr) if i else 0.0,
                     "fid_train_test": fid_from_features(f1, f2), **meta})
        print({k: v for k, v in rows[-1].items() if k not in meta}, flush=True)
    df = pd.DataFrame(rows)
    write_text(out / "inception_check.csv", df.to_csv(index=False))
    print(df.drop(columns=list(meta)).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
