r"""`reidgraph extract` with the shared pretrained models against the shared features: agreement and speed.

Both models behind ``SHARED/features`` run over every image of ``SHARED/datasets/cuhk03-labeled`` (train
and val, 8,177 images) through the ``reidgraph extract`` command, in this process, with its defaults:

- ``omz_0277``: Open Model Zoo ``person-reidentification-retail-0277``, the OpenVINO IR as it is (the IR
  states its input: 256x128, BGR, raw 0-255, normalised inside);
- ``osnet_x0_25_msmt17``: the torchreid recipe. torchreid's ``osnet_x0_25`` is built with as many classes
  as the state dict's classifier has rows, ``SHARED/models/osnet_x0_25_msmt17.pth`` is loaded, the model is
  exported in eval mode with ``torch.onnx.export`` (opset 17, dynamic batch), and ``reidgraph extract
  --model osnet.onnx`` runs it (ONNX states only the size; the defaults give RGB, /255, ImageNet mean/std).

Each extracted row is matched to ``SHARED/features/<model>/cuhk03_labeled_{train,val}.npz`` by its image
path: the shared files write ``labeled/<split>/<file>``, ``extract`` the absolute path, and the last two
parts (``<split>/<file>``) name an image. Printed and saved: the per-image cosine between the two
(min, mean) and the speed of the whole command (listing, model loading, decoding, resizing, the model):
images per second, the median of ``--runs`` runs, with the CPU named.

Needs torchreid and openvino: ``pip install torchreid openvino``. torchreid 0.2.5 on PyPI is a repackaging
of deep-person-reid (its modules under ``torchreid.reid``) that imports cv2, gdown and tensorboard without
declaring them: ``pip install opencv-python-headless gdown tensorboard`` too.

Example:
    python benchmarks/extract_agreement.py --shared SHARED --out benchmarks/results/extract_agreement_cpu2.json
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from results_io import cpu, save
from shared_paths import EPILOG, shared

from reidgraph.cli import main as reidgraph
from reidgraph.features import FeatureSet

MODELS = ("omz_0277", "osnet_x0_25_msmt17")
DATASET = "datasets/cuhk03-labeled"


def osnet_onnx(weights: Path, out: Path) -> Path:
    """torchreid's ``osnet_x0_25`` with the state dict ``weights``, exported to the ONNX file ``out``."""
    with warnings.catch_warnings():  # torchreid warns at import that its Cython evaluation is not built
        warnings.simplefilter("ignore")
        from torchreid import models
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model = models.build_model("osnet_x0_25", num_classes=state["classifier.weight"].shape[0], pretrained=False)
    model.load_state_dict(state)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch >= 2.9: the TorchScript-based exporter is deprecated
        torch.onnx.export(model.eval(), (torch.zeros(2, 3, 256, 128),), str(out), opset_version=17,
                          input_names=["images"], output_names=["features"],
                          dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}}, dynamo=False)
    return out


def image_key(path: str) -> str:
    """``<split>/<file>``: what names an image in both the shared files and ``extract``'s output."""
    return "/".join(Path(path).parts[-2:])


def agreement(extracted: FeatureSet, reference: list[Path]) -> dict:
    """Per-image cosine of ``extracted`` and the ``reference`` files' features, matched by :func:`image_key`."""
    rows = {}
    for file in reference:
        ref = np.load(file)
        rows |= {image_key(p): f for p, f in zip(ref["paths"], ref["feats"])}
    ours = extracted.feats.numpy()
    theirs = np.stack([rows[image_key(p)] for p in extracted.paths])
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    return {"images": len(cos), "reference_images": len(rows), "dim": ours.shape[1],
            "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
            "images_below_0.999": int((cos < 0.999).sum())}


def measure(name: str, model: Path, root: Path, reference: list[Path], runs: int, workdir: Path) -> dict:
    """``reidgraph extract`` of ``model`` over ``root`` ``runs`` times: agreement and images/s."""
    out = workdir / f"{name}.npz"
    command = ["extract", "--dataset", "folder", "--root", str(root), "--model", str(model), "--out", str(out),
               "--quiet"]
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        if reidgraph(command) != 0:
            raise SystemExit(f"reidgraph {' '.join(command)} failed")
        seconds.append(time.perf_counter() - start)
    extracted = FeatureSet.load(out)
    result = agreement(extracted, reference)
    median = statistics.median(seconds)
    return {**result, "model": str(model), "command": "reidgraph " + " ".join(command), "seconds": seconds,
            "images_per_s": len(extracted) / median}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=EPILOG)
    parser.add_argument("--shared", type=Path, default=shared(),
                        help="the shared folder holding models/, datasets/, features/ (required where "
                             "REIDGRAPH_SHARED is unset)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="the models to run (default: both)")
    parser.add_argument("--runs", type=int, default=3, help="runs per model; the median time counts (default: 3)")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    if args.shared is None:
        parser.error("--shared: give the shared folder holding models/, datasets/, features/, or set "
                     "REIDGRAPH_SHARED")
    root = args.shared / DATASET
    results = {"cpu": cpu(), "cores": torch.get_num_threads(), "date": str(datetime.date.today()),
               "versions": {p: version(p) for p in ("torch", "onnxruntime", "openvino", "torchreid")},
               "dataset": str(root), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name in args.models:
            model = (args.shared / "models" / "person-reidentification-retail-0277.xml" if name == "omz_0277"
                     else osnet_onnx(args.shared / "models" / "osnet_x0_25_msmt17.pth", workdir / "osnet.onnx"))
            reference = [args.shared / "features" / name / f"cuhk03_labeled_{s}.npz" for s in ("train", "val")]
            results["models"][name] = measure(name, model, root, reference, args.runs, workdir)
    print(f"reidgraph extract on {root} against SHARED/features, {results['cpu']}, "
          f"{results['cores']} threads; images/s: median of {args.runs} runs of the whole command")
    print(f"{'model':<20} {'images':>7} {'dim':>4} {'cos min':>9} {'cos mean':>9} {'images/s':>9}")
    for name, r in results["models"].items():
        print(f"{name:<20} {r['images']:>7} {r['dim']:>4} {r['cosine_min']:>9.6f} {r['cosine_mean']:>9.6f} "
              f"{r['images_per_s']:>9.1f}")
    save(args.out, results)


if __name__ == "__main__":
    main()
