"""The ``reidgraph`` command. Thin: each subcommand calls the Python API.

Options that set a field of a settings dataclass are made from it (:class:`~reidgraph._options.Options`),
so their defaults and help live next to the code that uses them.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from importlib.metadata import version
from pathlib import Path

import torch

from ._options import Options
from .data.datasets import DATASETS, load_dataset
from .data.samplers import neighborhood_split
from .debias import Debias
from .engine import ABLATIONS, PRESETS, GNNTrainConfig, recipe, train_ffgnn
from .engine.distributed import TIMEOUT_S, init_distributed, peer_failure
from .engine.loop import OptimConfig
from .engine.selection import FRACTION, MIN_IDS, select_pipeline
from .model_file import load_debias, load_ffgnn, load_pipeline, store_pipeline
from .engine.train_fen import FENTrainConfig
from .engine.train_joint import JointTrainConfig
from ._checks import int_in_range, usable_device
from .atomic import check_writable
from .export import DEFAULT_OPSET
from .evaluation import results_row
from .feature_files import FEATURE_FORMATS
from .features import FeatureSet
from .graph import GraphSettings
from .graph.ann import KINDS as ANN_KINDS, AnnIndex, HNSWSettings, IVFSettings
from .ranked_lists import output_format, write_ranked
from .rerank import parameters, parts, resolve
from .rerank.plan import choose
from .rerank.registry import LABEL_FREE, NEIGHBOR_METHODS, SUMMARIES
from .rerank.sharded import top_lists
from .tables import results_table


def demo(args: argparse.Namespace) -> int:
    """The main job: generated pedestrian images -> FEN -> FFGNN -> ranked lists, on the CPU in minutes."""
    from .data.synthetic_images import make_synthetic_market
    from .engine.pipeline import run_pipeline

    out = output_folder(args.out)
    # Every setting is checked before any work: the images, stage 1 and extraction take minutes.
    int_in_range("--ids", args.ids, 2, 10**5, "the losses need two identities")
    int_in_range("--epochs", args.epochs, 1, 10**6)
    int_in_range("--joint-graphs", args.joint_graphs, 0, 2**31)
    # Small images and light augmentation: on 64x32 crops, padding 10 and random
    # erasing remove most of the person (measured: rank-1 25 -> 14 at 12 epochs).
    fen_config = FENTrainConfig(arch="resnet18", height=64, width=32, epochs=args.epochs, lr=2e-3,
                                lr_step=max(1, args.epochs * 2 // 3), P=min(16, args.ids), images_per_id=4, pad=4,
                                erasing=0.0, num_workers=0, seed=args.seed)
    settings, gnn_config = recipe()
    settings = replace(settings, **sized({**SIZE.given(args), **SPARSITY.given(args)}, asdict(settings)))
    gnn_config = replace(gnn_config, seed=args.seed)
    joint_config = JointTrainConfig(epochs=1, max_graphs_per_epoch=args.joint_graphs or None, seed=args.seed)
    check_configs(settings, fen_config, gnn_config, joint_config, num_train=args.ids * 8)
    root = make_synthetic_market(out / "data", num_train_ids=args.ids, num_test_ids=args.ids, images_per_id=8,
                                 num_cams=4, height=64, width=32, seed=args.seed, progress=not args.quiet)
    dataset = load_dataset("market1501", root)
    print(f"synthetic pedestrians in {root} (seed {args.seed})")
    print(dataset.stats_table())
    start = time.perf_counter()
    results = run_pipeline(dataset, out / "run", fen_config, settings, gnn_config,
                           joint_config if args.joint_graphs else None, dist=init_distributed("cpu"),
                           resume=False, progress=not args.quiet)
    print(results_table(results["rows"]))
    print("stage wall times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in results["seconds"].items())
          + f"; total {time.perf_counter() - start:.1f}")
    print(f"ranked lists before/after FFGNN: {results['picture']}")
    return 0


def train(args: argparse.Namespace) -> int:
    """All three stages on a dataset, then evaluation."""
    from .engine.pipeline import run_pipeline

    output_folder(args.out)
    fen_config = FENTrainConfig(**FEN.given(args), seed=args.seed)
    settings, gnn_config = gnn_recipe(args, STAGE2_OF_THREE)
    joint_config = JointTrainConfig(epochs=args.epochs_joint, **JOINT.given(args),
                                    seed=args.seed) if args.epochs_joint > 0 else None
    check_configs(settings, fen_config, gnn_config, joint_config)
    dist = init_distributed(str(checked_device(args.device)), args.timeout)
    dataset = load_dataset(args.dataset, args.root, **dataset_options(args.dataset_option))
    # K against the candidates of a training graph, before stage 1 rather than after it.
    check_configs(settings, num_train=len(dataset.train), anchor_fraction=gnn_config.anchor_fraction)
    if dataset.gallery:  # and against the test gallery the FFGNN re-ranks, which stage 3's end is too late to learn
        settings.check(len(dataset.gallery))
    if dist.is_main:
        print(dataset.stats_table())
    results = run_pipeline(dataset, args.out, fen_config, settings, gnn_config, joint_config, dist=dist,
                           resume=not args.restart, progress=not args.quiet)
    if dist.is_main:
        print(results_table(results["rows"]))
        print("stage wall times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in results["seconds"].items()))
    return 0


def extract(args: argparse.Namespace) -> int:
    """Features of every split of a dataset from a model (ONNX, OpenVINO IR or FEN checkpoint), as one .npz."""
    import warnings

    from .data.datasets import MissingImagesWarning
    from .engine.extract import model_features
    from .extractors import model_input, open_model

    check_writable(args.out, "--out")
    int_in_range("--batch-size", args.batch_size, 1, 2**16)
    with warnings.catch_warnings():  # training may skip a listed image; a features file must not lack its row
        warnings.simplefilter("error", MissingImagesWarning)
        try:
            dataset = load_dataset(args.dataset, args.root, **dataset_options(args.dataset_option))
        except MissingImagesWarning as err:
            raise ValueError(f"{err}; extract writes a row for every listed image: put the files under --root "
                             f"{args.root} or drop their rows") from None
    model = open_model(args.model, args.device)
    spec = model_input(model, height=args.height, width=args.width, channel_order=args.channel_order,
                       value_range=args.value_range, mean=args.mean, std=args.std)
    start = time.perf_counter()
    splits = [model_features(model, records, spec, split=name, batch_size=args.batch_size, progress=not args.quiet)
              for name, records in (("train", dataset.train), ("query", dataset.query), ("gallery", dataset.gallery))
              if records]
    seconds = time.perf_counter() - start
    merged = FeatureSet(torch.cat([p.feats for p in splits]), torch.cat([p.pids for p in splits]),
                        torch.cat([p.camids for p in splits]), sum((p.paths for p in splits), []),
                        sum((p.split for p in splits), []))
    merged.save(args.out)
    print(f"{len(merged)} features ({merged.feats.shape[1]}-d) from {args.model} ({model.kind}; input "
          f"{spec.describe()}) in {seconds:.1f} s ({len(merged) / seconds:.0f} images/s) written to {args.out}")
    return 0


def train_gnn(args: argparse.Namespace) -> int:
    """Stage 2 alone: train the FFGNN on a features file."""
    settings, config = gnn_recipe(args, STAGE2)
    check_configs(settings, config)
    device = checked_device(args.device)
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; pass the model file to write, e.g. {out / 'ffgnn.pt'}")
    check_writable(out, "--out", (args.features,))
    train = FeatureSet.load(args.features, format=args.format)
    if train.split is not None and "train" in train.split:
        train = train.part("train")
    start = time.perf_counter()
    selection = None
    if not args.no_select:
        workdir = out.with_name(out.name + ".selection")  # the held-out models, resumed from if interrupted
        selection = select_pipeline(train, settings, config, workdir=workdir, models=(True,) if args.debias else None,
                                    device=device, progress=not args.quiet, source=args.features)
    debias = selection.debias if selection else args.debias
    train_ffgnn(train, settings, config, debias=Debias() if debias else None, device=device,
                log_path=out.with_suffix(".log.jsonl"),
                checkpoint=out, resume=not args.restart, progress=not args.quiet)
    if selection:
        store_pipeline(out, selection)
        shutil.rmtree(workdir, ignore_errors=True)
        print(selection.table())
    print(f"trained on {len(train)} features ({train.pids.unique().numel()} ids) in "
          f"{time.perf_counter() - start:.1f} s; model written to {out}"
          + (f"; its pipeline, run by evaluate/rerank --model without --method: {selection.method}"
             if selection else ""))
    return 0


def describe_command(args: argparse.Namespace) -> int:
    """What a model file from train-gnn holds: its recipe, de-biasing, stored pipeline and held-out table."""
    net, settings = load_ffgnn(args.model)
    selection = load_pipeline(args.model)
    trained = load_debias(args.model)
    print(f"{args.model}: FFGNN, {net.channels}-d features, {len(net.convs)} layers; graphs K={settings.K}, "
          f"k={settings.k}, lambda={settings.lam}, tau={settings.tau}, same-camera weight "
          f"{settings.same_camera_weight}; trained on {'de-biased' if trained else 'raw'} features")
    if selection is None:
        print("no stored pipeline (trained with --no-select): evaluate/rerank --model run ffgnn")
    else:
        print(f"stored pipeline: {selection.method}")
        print(selection.table())
    return 0


def output_folder(name: str) -> Path:
    """``--out`` of demo and train: a folder, refused in one line where a file is in the way."""
    out = Path(name)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder; pass a folder for data, models and results")
    return out


def check_configs(settings: GraphSettings, *configs, num_train: int | None = None,
                  anchor_fraction: float | None = None) -> None:
    """Every setting of a training run, checked before any work (``None`` configs are skipped).

    With ``num_train`` (training images), ``K`` is also checked against the
    candidates a training graph draws its neighbors from.
    """
    for config in configs:
        if config is not None and hasattr(config, "check"):
            config.check()
    if num_train is None:
        settings.check()
        return
    fraction = anchor_fraction if anchor_fraction is not None else next(
        (c.anchor_fraction for c in configs if isinstance(c, GNNTrainConfig)), GNNTrainConfig().anchor_fraction)
    settings.check(len(neighborhood_split(num_train, fraction)[1]))


def rerank_command(args: argparse.Namespace) -> int:
    """Any model's features in, each query's re-ranked gallery list out; no identity labels needed.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) a method that shards (:attr:`~reidgraph.rerank.plan.Plan.sharded`)
    is shared by the processes (:func:`~reidgraph.rerank.sharded.top_lists`) and process 0 writes the lists; the
    others run on process 0 alone.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    try:
        check_writable(args.out, "--out", (args.features, args.query, args.gallery, args.model, args.index))
        output_format(args.out)
        query, gallery = rerank_inputs(args)
        plan = resolve(args.method, method_params(args.param), args.model, query_camids=query.camids,
                       gallery_camids=gallery.camids)
        if args.index:
            plan.check_index()
            if world_size > 1:
                raise ValueError("--index searches one process's index; run without torchrun, or drop --index for "
                                 "the sharded exact search")
        device = checked_device(args.device)
        if world_size > 1 and not plan.sharded:
            if int(os.environ["RANK"]):
                return 0
            print(f"reidgraph rerank: {plan.method} needs the whole gallery in one process and is not sharded; "
                  f"process 0 of {world_size} runs it alone while the others exit", file=sys.stderr)
            world_size = 1
        index = AnnIndex.load(args.index) if args.index else None  # the plan checks it was built over this gallery
        top = min(100, len(gallery)) if args.top is None else args.top
        if not 1 <= top <= len(gallery):
            raise ValueError(f"--top {top} is outside [1, {len(gallery)}]: the gallery holds {len(gallery)} items")
        start = time.perf_counter()
        if world_size > 1:
            if world_size > len(gallery):
                local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
                asked = (f"--nproc-per-node {local} exceeds" if local == world_size
                         else f"{world_size} processes (--nnodes x --nproc-per-node) exceed")
                raise ValueError(f"{asked} the gallery's {len(gallery)} images; use at most {len(gallery)} processes")
            device = init_distributed(str(device), args.timeout).device
        lists = top_lists(plan, query.feats, gallery.feats, top, query_camids=query.camids,
                          gallery_camids=gallery.camids, device=device, index=index, progress=not args.quiet)
    except (ValueError, OSError):
        if int(os.environ.get("LOCAL_RANK", "0")):
            return 2  # every process of a node meets the same bad input; the node's first one reports it
        raise
    if lists is None:  # not process 0 of a sharded run
        return 0
    write_ranked(args.out, *lists, query.paths, gallery.paths)
    print(f"{plan.method}{f' ({plan.chosen})' if plan.chosen else ''}: {len(query)} queries x {len(gallery)} gallery, "
          f"top {top} of each written to {args.out} in {time.perf_counter() - start:.1f} s"
          + (f" by {world_size} processes" if world_size > 1 else ""))
    return 0


def export_command(args: argparse.Namespace) -> int:
    """A trained FEN checkpoint as an ONNX model: images ``[B, 3, H, W]`` in, features ``[B, D]`` out."""
    from .export import export_onnx

    check_writable(args.out, "--out", (args.checkpoint,))
    try:
        path = export_onnx(args.checkpoint, args.out, height=args.height, width=args.width, opset=args.opset)
    except ImportError as err:
        raise ValueError(str(err)) from None
    print(f"{args.checkpoint} exported to {path}")
    return 0


def index_command(args: argparse.Namespace) -> int:
    """Build an approximate kNN index over a gallery's features once and save it, for ``rerank --index``."""
    from .graph.ann import ann_settings

    other = "hnsw" if args.kind == "ivf" else "ivf"
    stray = INDEXES[other].given(args)
    if stray:
        flag = INDEXES[other].flags[next(iter(stray))]
        raise ValueError(f"{flag} is a setting of {other} indexes, not {args.kind}; drop it or pass --kind {other}")
    settings = ann_settings(args.kind, INDEXES[args.kind].given(args))
    check_writable(args.out, "--out", (args.gallery,))
    gallery = FeatureSet.load(args.gallery, format=args.format, labels=False)
    start = time.perf_counter()
    index = AnnIndex.build(gallery.feats, args.kind, settings, progress=not args.quiet)
    index.save(args.out)
    print(f"{index} built in {time.perf_counter() - start:.1f} s and saved to {args.out}")
    return 0


def show(args: argparse.Namespace) -> int:
    """Ranked files from ``rerank`` as a picture (.png) or a self-contained page (.html), each query beside its
    top-k; with ``--ranked-before``, the lists before and after re-ranking one above the other."""
    from .show import output_kind, show_ranked

    output_kind(args.out)
    check_writable(args.out, "--out", (args.ranked, args.ranked_before, args.query, args.gallery))
    ranked = {"before": args.ranked_before, "after": args.ranked} if args.ranked_before else {"ranked": args.ranked}
    out, shown = show_ranked(args.out, ranked, args.query, args.gallery, args.root, args.queries,
                             query_rows(args.query_index), args.top, args.format)
    print(f"{shown} queries, top {args.top} of {' and '.join(map(str, ranked.values()))}, drawn to {out}")
    return 0


def query_rows(text: str | None) -> list[int] | None:
    """``--query-index i,j,...`` as row numbers; a one-line error for anything else."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--query-index {text!r} is not comma-separated row numbers; e.g. --query-index 0,3,7") \
            from None


def rerank_inputs(args: argparse.Namespace) -> tuple[FeatureSet, FeatureSet]:
    """Query and gallery features from ``--query``/``--gallery`` or ``--features`` (labels optional)."""
    if args.features:
        if args.query or args.gallery:
            raise ValueError("pass --features (with a split) or --query and --gallery, not both")
        return FeatureSet.load(args.features, format=args.format, labels=False).query_gallery()
    if not (args.query and args.gallery):
        raise ValueError("pass --query q.npz and --gallery g.npz, or --features x.npz holding both")
    query, gallery = (FeatureSet.load(path, format=args.format, labels=False) for path in (args.query, args.gallery))
    if query.feats.shape[1] != gallery.feats.shape[1]:
        raise ValueError(f"--query {args.query} has {query.feats.shape[1]}-d features but --gallery {args.gallery} "
                         f"has {gallery.feats.shape[1]}-d; both must come from the same model")
    if (query.camids is None) != (gallery.camids is None):
        query.camids = gallery.camids = None  # camera ids count only where both sides have them
    return query, gallery


def evaluate(args: argparse.Namespace) -> int:
    """CMC / mAP / mINP of a features file, ranked by any method (FFGNN fusion with --model)."""
    query, gallery = FeatureSet.load(args.features, format=args.format).query_gallery()
    cams = {"query_camids": query.camids, "gallery_camids": gallery.camids}
    params = method_params(args.param)
    method, model, chosen = choose(args.method, params, args.model, **cams)
    plan = replace(resolve(method, {**params, **graph_params(args, method, model)}, model, **cams), chosen=chosen)
    device = checked_device(args.device)
    start = time.perf_counter()
    ranking = plan.rank(query.feats, gallery.feats, query_camids=query.camids, gallery_camids=gallery.camids,
                        device=device, progress=not args.quiet)
    row = results_row(plan.method, ranking, query, gallery, 0.0)
    row["seconds"] = time.perf_counter() - start
    if args.json:
        print(json.dumps({k: row[k] for k in ("method", "rank1", "rank5", "rank10", "mAP", "mINP")}))
    else:
        print(f"{args.features}: {len(query)} queries, {len(gallery)} gallery"
              + (f"; {plan.method}: {plan.chosen}" if plan.chosen else ""))
        print(results_table([row]))
    return 0


def graph_params(args: argparse.Namespace, method: str, model: str | None) -> dict:
    """The graph options (``--K``, ``--k``, ``--lam``, ``--tau``, ``--alpha``, the camera weight) as the
    parameters of ``method``'s training-free fuser (``method`` as :func:`~reidgraph.rerank.plan.choose` chose
    it); refused for a method without one, and for an FFGNN ``model``, which fixes its graphs."""
    given = {**GRAPH.given(args), **GNN.given(args)}
    weight = camera_weight(args)
    if not given and weight is None:
        return {}
    fuser = parts(method)[0]
    if fuser == "ffgnn":
        same_graphs_as_trained(model, given, weight)
        return {}
    if fuser is None:
        raise ValueError(f"graph options (--K, --k, --lam, --tau, --alpha, camera weight) apply to fusion methods, "
                         f"not {method!r}; pass --method fusion or fusion-paper, or --param NAME=VALUE for the "
                         "method's own parameters")
    if weight is not None:
        given["same_camera_weight"] = weight
    prefix = f"{fuser}." if "+" in method else ""
    defaults = {name.removeprefix(prefix): value for name, value in parameters(method).items()}
    return {prefix + n: v for n, v in sized(given, defaults).items()}  # as in training


def same_graphs_as_trained(model: str | None, given: dict, weight: float | None) -> None:
    """Refuse graph options that would build test graphs other than the ones ``model`` was trained on."""
    if given:
        raise ValueError(f"--{', --'.join(given)}: {model or 'the model'} fixes the graphs it was trained "
                         "on, and test graphs must be built the same way; drop them")
    trained = load_ffgnn(model)[1].same_camera_weight if model and weight is not None else weight
    if weight is not None and weight != trained:
        raise ValueError(f"{model} was trained on graphs with same_camera_weight={trained}, and test graphs "
                         "must be built the same way; drop --camera-aware/--same-camera-weight")


def method_params(pairs: list[str] | None) -> dict[str, str]:
    """``--param NAME=VALUE`` pairs; :func:`~reidgraph.rerank.plan.resolve` reads each value as its parameter's type."""
    return key_values("--param", pairs, "NAME=VALUE", "k1=30")


def checked_device(name: str) -> torch.device:
    """``--device`` as a torch device; a one-line error where it is not on this machine."""
    return usable_device(name, "--device")


def camera_weight(args: argparse.Namespace) -> float | None:
    """The same-camera weight asked for on the command line (None: not asked)."""
    return 0.0 if args.camera_aware else args.same_camera_weight


def dataset_options(pairs: list[str] | None) -> dict[str, str]:
    """``--dataset-option KEY=VALUE`` pairs as keyword arguments of the dataset loader."""
    return key_values("--dataset-option", pairs, "KEY=VALUE", "variant=detected")


def key_values(flag: str, pairs: list[str] | None, form: str, example: str) -> dict[str, str]:
    """The ``KEY=VALUE`` pairs of a repeatable ``flag``; a one-line error for one without ``=`` or key."""
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} {pair!r} is not {form}; e.g. {flag} {example}")
        options[key] = value
    return options


def graph_settings(args: argparse.Namespace, base: GraphSettings = GraphSettings()) -> GraphSettings:
    """``base`` with the graph options given on the command line."""
    given = GRAPH.given(args)
    weight = camera_weight(args)
    if weight is not None:
        given["same_camera_weight"] = weight
    return replace(base, **sized(given, asdict(base)))


def sized(given: dict, defaults: dict) -> dict:
    """``given`` graph settings; a smaller ``K`` alone also caps the ``k`` and ``tau`` not given at ``K``.

    A graph has ``K + 1`` nodes; ``defaults`` are the ``k`` and ``tau`` that ``given`` changes.
    """
    if "K" not in given:
        return given
    return {**{name: min(defaults[name], given["K"]) for name in ("k", "tau")}, **given}


def gnn_recipe(args: argparse.Namespace, stage: Options) -> tuple[GraphSettings, GNNTrainConfig]:
    """The ``--preset`` / ``--ablation`` recipe with the options given on the command line (``stage``'s too)."""
    settings, config = recipe(args.preset, args.ablation)
    given = {**GNN.given(args), **GNN_TRAIN.given(args), **stage.given(args), "seed": args.seed}
    return graph_settings(args, settings), replace(config, **given)


@dataclass(frozen=True)
class DemoSettings:
    """What ``reidgraph demo`` generates and trains.

    Attributes:
        out: folder for data, models, results.
        ids: identities in each of train and test.
        epochs: FEN epochs.
        joint_graphs: run one stage-3 epoch on this many graphs (0: skip; it lowered the demo's accuracy).
    """

    out: str = "runs/demo"
    ids: int = 150
    epochs: int = 24
    joint_graphs: int = 0


# Settings that come from dataclasses, each declared once for every command that takes it.
DEMO = Options(DemoSettings, "out", "ids", "epochs", "joint_graphs")
SEED = Options(OptimConfig, "seed")
SIZE = Options(GraphSettings, "K")
SPARSITY = Options(GraphSettings, "k", "tau")
GRAPH = Options(GraphSettings, "K", "k", "tau", "lam")
GNN = Options(GNNTrainConfig, "alpha")
GNN_TRAIN = Options(GNNTrainConfig, "graphs_per_batch")
FEN = Options(FENTrainConfig, "arch", "weights", "height", "width", "lr", "lr_step", "P", "images_per_id",
              epochs="--epochs-fen", num_workers="--workers")
JOINT = Options(JointTrainConfig, max_graphs_per_epoch="--joint-graphs")
STAGE2 = Options(GNNTrainConfig, "epochs", "lr")
STAGE2_OF_THREE = Options(GNNTrainConfig, epochs="--epochs-gnn")
INDEXES = {"ivf": Options(IVFSettings, "nlist", "nprobe", "train_size"),
           "hnsw": Options(HNSWSettings, "M", "ef_construction", "ef_search")}


def add_recipe_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="stage-2 recipe. default: ours (camera-aware graphs with lambda=0.3, W starting at the "
                        "identity, L2-normalised layers, cross-camera list loss, 8 graphs per step, lr 3e-4 /10 every 2 "
                        "epochs, no weight decay, 4 epochs; needs camera ids). "
                        "paper: the paper's (its graphs, BatchNorm+ReLU, softmax+triplet+verification summed over "
                        "pairs, one graph per step, lr 3e-4 /10 after 5 epochs, 10 epochs; epochs, weight decay "
                        "5e-4 and margin 0.3 are our reading where the paper is silent). Options given explicitly "
                        "override the preset's values")
    p.add_argument("--ablation", choices=sorted(ABLATIONS),
                   help="one of the paper's Table 1 ablations, on --preset paper: "
                        + "; ".join(f"{name}: {what}" for name, (what, _) in ABLATIONS.items()))


def add_graph_options(p: argparse.ArgumentParser) -> None:
    """Graph and fusion options of training; their defaults are the preset's."""
    add_fusion_options(p, "the preset's")
    GNN_TRAIN.add(p, shown="the preset's")
    add_recipe_options(p)


def add_fusion_options(p: argparse.ArgumentParser, source: str = "the method's") -> None:
    """The options of the graphs and the fusion on them; by default, ``source`` sets each."""
    GRAPH.add(p, shown=source + "; paper {}")
    GNN.add(p, shown=source + "; paper {}")
    camera = p.add_mutually_exclusive_group()
    camera.add_argument("--camera-aware", action="store_true",
                        help="camera-aware graphs: ignore same-camera neighbors (same-camera weight 0); "
                             "uses the camera ids of the images")
    Options(GraphSettings, "same_camera_weight").add(camera, shown=source + "; paper {}", metavar="W")


def add_dataset_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="dataset layout")
    p.add_argument("--root", required=True, help="dataset folder")
    p.add_argument("--dataset-option", action="append", metavar="KEY=VALUE",
                   help="loader option, e.g. variant=detected (cuhk03) or pattern=REGEX (folder); repeatable")


def add_format_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FEATURE_FORMATS, help="the features files' format (default: by extension)")


def add_query_gallery_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--query", help=f"query features, labels optional (by extension: {', '.join(FEATURE_FORMATS)})")
    p.add_argument("--gallery", help="gallery features, from the same model")
    p.add_argument("--features", help="one file holding both, with a split (e.g. pytorch_result.mat)")


def add_method_options(p: argparse.ArgumentParser) -> None:
    names = ", ".join(f"{name}: {what}" for name, what in SUMMARIES.items())
    p.add_argument("--method", metavar="NAME",
                   help=f"re-ranking method (default: with --model, the pipeline train-gnn chose and stored in it; "
                        f"without, {LABEL_FREE[True]} where camera ids tell two cameras apart, else "
                        f"{LABEL_FREE[False]}). " + names)
    p.add_argument("--model", help="FFGNN model file from train-gnn, for ffgnn and ffgnn+PEER (its graph settings "
                                   "are used)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="a method parameter, e.g. k1=30 (k-reciprocal) or ecn.k=20 in a composition; repeatable")


def add_seed_option(p: argparse.ArgumentParser) -> None:
    SEED.add(p, OptimConfig())


def add_device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")


def add_quiet_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_timeout_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=TIMEOUT_S,
                   help="under torchrun: seconds a process waits for the others in a collective before the job "
                        f"ends with an error (default: {TIMEOUT_S})")


def add_restart_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--restart", action="store_true", help="start afresh instead of resuming from --out")


def demo_options(p: argparse.ArgumentParser) -> None:
    DEMO.add(p, DemoSettings())
    SIZE.add(p)
    SPARSITY.add(p, shown="{}, or --K if smaller")


def train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="folder for checkpoints, features, results (resumed from)")
    FEN.add(p, FENTrainConfig(), prefix="stage 1: ")
    STAGE2_OF_THREE.add(p, shown="the preset's", prefix="stage 2: ")
    p.add_argument("--epochs-joint", type=int, default=0,
                   help="stage 3 epochs (default 0: skip; it lowered the demo's accuracy, raised CUHK03 val's "
                        "after a short FEN stage, and was never chosen on held-out train ids; see the README; "
                        f"{JointTrainConfig().epochs} is a starting point)")
    JOINT.add(p, prefix="stage 3: ")


def extract_options(p: argparse.ArgumentParser) -> None:
    from .data.model_input import CHANNEL_ORDERS, VALUE_RANGES

    p.add_argument("--model", "--weights", dest="model", required=True,
                   help="an ONNX file (torchreid, fast-reid, `reidgraph export`), an OpenVINO IR .xml (its .bin "
                        "beside it) or a FEN checkpoint (fen.pt from `reidgraph train`)")
    p.add_argument("--out", required=True, help="features .npz to write")
    p.add_argument("--batch-size", type=int, default=64, help="images per model call (default: 64)")
    p.add_argument("--height", type=int, help="input height (default: the model's, else 256)")
    p.add_argument("--width", type=int, help="input width (default: the model's, else 128)")
    p.add_argument("--channel-order", choices=CHANNEL_ORDERS, help="default: the model's, else rgb")
    p.add_argument("--value-range", choices=VALUE_RANGES,
                   help="0-1: pixels divided by 255; 0-255: raw (default: the model's, else 0-1)")
    p.add_argument("--mean", type=channel_numbers, metavar="M1,M2,M3",
                   help="subtracted per input channel, in its order and range (default: the model's, else "
                        "ImageNet's in that order and range; 0,0,0 with --std 1,1,1: none)")
    p.add_argument("--std", type=channel_numbers, metavar="S1,S2,S3", help="divided by, per channel (as --mean)")


def channel_numbers(text: str) -> tuple[float, ...]:
    """``--mean``/``--std``: three comma-separated numbers (:func:`reidgraph.extractors.channel_numbers`), its
    error as argparse's."""
    from .extractors import channel_numbers as numbers

    try:
        return numbers(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def train_gnn_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, help="train features with pids and camids (.npz, .mat, .npy + "
                                                      ".csv, .pt)")
    p.add_argument("--out", required=True, help="model file to write (.pt); resumed from when present")
    p.add_argument("--debias", action="store_true",
                   help="train on features de-biased per camera (the train file's own statistics, ridge 10); the "
                        "model file stores the stage and re-ranking with it de-biases test features by their gallery")
    p.add_argument("--no-select", action="store_true",
                   help=f"train once, without choosing the pipeline. By default {100 * FRACTION:.0f}%% of the train "
                        f"identities (seed 0; at least {MIN_IDS} identities needed) are held out and split into "
                        "query and gallery (each identity and camera's first image a query); an FFGNN is trained on "
                        "the rest (on de-biased features); every pipeline (peers and "
                        "fusers, raw and de-biased; the FFGNN alone, after GCR's propagation, and followed by each "
                        "peer) is scored on the held-out part; the model is trained on all identities as the best "
                        "one needs and stores it with the table (reidgraph describe)")
    STAGE2.add(p, shown="the preset's")


def rerank_options(p: argparse.ArgumentParser) -> None:
    add_method_options(p)
    p.add_argument("--top", type=int, help="gallery items listed per query (default: 100, or the gallery if smaller)")
    p.add_argument("--index", help="an approximate kNN index of the gallery from `reidgraph index`, searched in place "
                                   f"of exact kNN ({', '.join(NEIGHBOR_METHODS)} only)")
    p.add_argument("--out", required=True, help="ranked.npz (index, distance), ranked.csv or ranked.json")


def export_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="fen.pt from `reidgraph train`")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--height", type=int, help="input height (default: the checkpoint's)")
    p.add_argument("--width", type=int, help="input width (default: the checkpoint's)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default: {DEFAULT_OPSET})")


def index_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gallery", required=True, help="gallery features (labels optional)")
    p.add_argument("--kind", choices=ANN_KINDS, default="ivf", help="ivf: k-means cells, fast to build; hnsw: a "
                                                                     "graph, slower to build (default: ivf)")
    for kind, options in INDEXES.items():
        options.add(p, prefix=f"{kind}: ")
    p.add_argument("--out", required=True, help="index file to write (e.g. gallery.ann)")


def show_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ranked", required=True, help="ranked.npz, .csv or .json from `reidgraph rerank`")
    p.add_argument("--ranked-before", help="a second ranked file of the same queries (e.g. before re-ranking), "
                                           "shown above --ranked")
    p.add_argument("--query", required=True, help="the query features it ranked, with paths (labels optional)")
    p.add_argument("--gallery", required=True, help="the gallery features it ranked, with paths")
    p.add_argument("--root", default=".", help="folder the features' image paths are relative to (default: .)")
    p.add_argument("--out", required=True, help="ranked.png (a picture) or ranked.html (one self-contained page)")
    chosen = p.add_mutually_exclusive_group()
    chosen.add_argument("--queries", type=int, default=5, metavar="N", help="show the first N queries (default: 5)")
    chosen.add_argument("--query-index", metavar="I,J,...", help="show these query rows, in this order")
    p.add_argument("--top", type=int, default=10, help="ranks shown per list (default: 10)")


def describe_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model file from train-gnn")


def evaluate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, help="test features with labels; split query/gallery, or the "
                                                      f"CUHK03-NP rule (by extension: {', '.join(FEATURE_FORMATS)})")
    add_method_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (fractions in [0, 1])")


DESCRIPTION = ("Person re-identification with graph re-ranking: train a feature extractor and an FFGNN, extract "
               "features, re-rank any model's features with FFGNN or its peers, and evaluate CMC/mAP.")
RUN = (add_seed_option, add_device_option, add_quiet_option)
# name: (what runs it, what it does, the functions that add its options: its own, then shared groups)
COMMANDS = {
    "demo": (demo, "end to end on generated pedestrian images (no download, CPU, minutes)",
             (demo_options, add_seed_option, add_quiet_option)),
    "train": (train, "stages 1-3 on a dataset, then CMC/mAP (use torchrun for several processes)",
              (add_dataset_options, train_options, add_restart_option, add_graph_options, *RUN, add_timeout_option)),
    "extract": (extract, "features of a dataset from any ReID model: ONNX, OpenVINO IR or a FEN checkpoint",
                (add_dataset_options, extract_options, *RUN)),
    "train-gnn": (train_gnn, "train the FFGNN (stage 2) on a features .npz from any model",
                  (train_gnn_options, add_format_option, add_restart_option, add_graph_options, *RUN)),
    "rerank": (rerank_command, "re-rank any model's features with any method and write the ranked lists (no identity "
                               "labels needed)",
               (add_query_gallery_options, add_format_option, rerank_options, add_device_option, add_quiet_option,
                add_timeout_option)),
    "export": (export_command, "a FEN checkpoint (fen.pt) as an ONNX model, for onnxruntime and others",
               (export_options,)),
    "index": (index_command, "build an approximate kNN index (faiss IVF or HNSW) over gallery features once, for "
                             "rerank --index", (index_options, add_format_option, add_quiet_option)),
    "show": (show, "ranked lists as a picture (.png) or one self-contained page (.html): each query beside its "
                   "top-k, matches framed green, non-matches red, ignored grey", (show_options, add_format_option)),
    "describe": (describe_command, "what a model file from train-gnn holds: recipe, stored pipeline, held-out table",
                 (describe_options,)),
    "evaluate": (evaluate, "CMC/mAP/mINP of a features file ranked by any method (FFGNN with --model)",
                 (evaluate_options, add_format_option, add_fusion_options, add_device_option, add_quiet_option)),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reidgraph", description=DESCRIPTION,
                                     epilog="Run 'reidgraph COMMAND --help' for the options of one command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('reidgraph')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (run, summary, option_groups) in COMMANDS.items():
        p = sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")
        for add in option_groups:
            add(p)
        p.set_defaults(func=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The library logs (e.g. "resuming after epoch"); the command shows its INFO lines, on this call's stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("reidgraph")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"reidgraph {args.command}: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # under torchrun: a peer stopped answering or exited
        if not peer_failure(err):
            raise
        print(f"reidgraph {args.command}: error: another process of the job stopped answering or exited "
              f"({str(err).splitlines()[0][:160]}); see its own error, or raise --timeout if it was only slow",
              file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a folder that turned read-only mid-run, ...: the file and the reason
        where = f"{err.filename}: " if err.filename else ""
        print(f"reidgraph {args.command}: error: {where}{err.strerror or err}; free space or choose another path",
              file=sys.stderr)
        return 2
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


if __name__ == "__main__":
    sys.exit(main())
