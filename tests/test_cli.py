import json

import pytest

from helpers import TINY_TRAIN

from reidgraph.cli import main
from reidgraph.rerank.registry import LABEL_FREE


def test_demo_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--ids", "6", "--epochs", "1", "--K", "20", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "FEN" in out and "+ FFGNN" in out and "ranked_lists.png" in out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [r["method"] for r in results["rows"]] == ["FEN", "+ FFGNN"]
    assert all(0 <= r["mAP"] <= 1 for r in results["rows"])
    assert (tmp_path / "run" / "ranked_lists.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "run" / "ffgnn.pt").is_file() and not list((tmp_path / "run").glob(".*.tmp"))


def test_train_extract_evaluate(tiny_market, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "market1501", "--root", str(tiny_market), "--out", str(out),
                 "--epochs-fen", "1", "--epochs-gnn", "1", "--epochs-joint", "1", "--joint-graphs", "2",
                 *TINY_TRAIN]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["FEN", "+ FFGNN", "FEN (joint)", "+ FFGNN (joint)"]
    assert main(["extract", "--dataset", "market1501", "--root", str(tiny_market), "--weights", str(out / "fen.pt"),
                 "--out", str(tmp_path / "feats.npz"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--features", str(tmp_path / "feats.npz"), "--model", str(out / "ffgnn.pt"),
                 "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    # The same FEN and FFGNN evaluated twice: through train's pipeline and through extract + evaluate.
    assert result["mAP"] == pytest.approx(rows[1]["mAP"], abs=1e-6)


def test_bad_setting_is_one_line(tmp_path, capsys):
    assert main(["evaluate", "--features", str(tmp_path / "missing.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reidgraph evaluate: error: features file") and "\n" not in err


def test_train_gnn_then_evaluate_json(tmp_path, capsys):
    from reidgraph.data import synthetic_features
    synthetic_features(40, 6, 3, 16, seed=0).save(tmp_path / "train.npz")
    synthetic_features(20, 6, 3, 16, seed=0, first_pid=100).save(tmp_path / "test.npz")
    model = tmp_path / "m" / "gnn.pt"
    assert main(["train-gnn", "--no-select", "--features", str(tmp_path / "train.npz"), "--out", str(model), "--K", "20",
                 "--k", "5", "--tau", "5", "--epochs", "1", "--quiet"]) == 0
    assert model.is_file() and (tmp_path / "m" / "gnn.log.jsonl").is_file()
    capsys.readouterr()
    for extra in ([], ["--model", str(model)]):
        assert main(["evaluate", "--features", str(tmp_path / "test.npz"), "--json", "--quiet", *extra]) == 0
        result = json.loads(capsys.readouterr().out)
        assert set(result) == {"method", "rank1", "rank5", "rank10", "mAP", "mINP"}
        assert result.pop("method") == ("ffgnn" if extra else LABEL_FREE[True])
        assert all(0 <= v <= 1 for v in result.values())
    assert main(["describe", str(model)]) == 0
    described = capsys.readouterr().out
    assert "16-d features, 3 layers; graphs K=20, k=5" in described and "no stored pipeline" in described


def test_evaluate_rejects_foreign_model_and_wrong_dimension(tmp_path, capsys):
    from reidgraph.data import synthetic_features
    synthetic_features(20, 6, 3, 16, seed=0).save(tmp_path / "test.npz")
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    assert main(["evaluate", "--features", str(tmp_path / "test.npz"), "--model", str(tmp_path / "notes.pt")]) == 2
    assert "is not a readable reidgraph checkpoint" in capsys.readouterr().err
    synthetic_features(40, 6, 3, 8, seed=0).save(tmp_path / "train8.npz")
    assert main(["train-gnn", "--no-select", "--features", str(tmp_path / "train8.npz"), "--out", str(tmp_path / "g.pt"),
                 "--K", "20", "--k", "5", "--tau", "5", "--epochs", "1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--features", str(tmp_path / "test.npz"), "--model", str(tmp_path / "g.pt")]) == 2
    assert "expects 8-d features but" in capsys.readouterr().err


def test_dataset_options_reach_the_loader(tmp_path, capsys):
    assert main(["extract", "--dataset", "cuhk03", "--root", str(tmp_path), "--weights", "x.pt",
                 "--out", "f.npz", "--dataset-option", "colour=blue"]) == 2
    assert "colour" in capsys.readouterr().err
    assert main(["extract", "--dataset", "cuhk03", "--root", str(tmp_path), "--weights", "x.pt",
                 "--out", "f.npz", "--dataset-option", "variant"]) == 2
    assert "is not KEY=VALUE" in capsys.readouterr().err


def test_camera_aware_training_and_zero_shot_fusion(tmp_path, capsys):
    from reidgraph.data import synthetic_features
    from reidgraph.model_file import load_ffgnn
    synthetic_features(40, 6, 3, 16, seed=0).save(tmp_path / "train.npz")
    synthetic_features(20, 6, 3, 16, seed=0, first_pid=100).save(tmp_path / "test.npz")
    graph = ["--K", "20", "--k", "5", "--tau", "5"]
    model = tmp_path / "cam.pt"
    assert main(["train-gnn", "--no-select", "--features", str(tmp_path / "train.npz"), "--out", str(model), *graph,
                 "--epochs", "1", "--camera-aware", "--quiet"]) == 0
    assert load_ffgnn(model)[1].same_camera_weight == 0.0  # kept with the model, used again at test time
    test = ["evaluate", "--features", str(tmp_path / "test.npz"), "--json", "--quiet"]
    capsys.readouterr()
    for extra in (["--model", str(model)], ["--method", "fusion-paper", *graph],
                  ["--method", "fusion-paper", "--same-camera-weight", "0.5", "--param", "steps=2", *graph]):
        assert main([*test, *extra]) == 0
        assert 0 <= json.loads(capsys.readouterr().out)["mAP"] <= 1
    for extra, message in [(["--model", str(model), "--same-camera-weight", "1"], "trained on graphs with same_camera"),
                           (["--model", str(model), "--method", "fusion-paper"], "takes no model"),
                           (["--method", "fusion-paper", "--same-camera-weight", "2", *graph], "outside [0, 1]")]:
        assert main([*test, *extra]) == 2
        assert message in capsys.readouterr().err


def test_train_gnn_presets_and_ablations(tmp_path, capsys):
    import torch

    from reidgraph.data import synthetic_features
    from reidgraph.model_file import load_ffgnn
    from reidgraph.checkpoint import load_checkpoint
    from reidgraph.features import FeatureSet
    train = synthetic_features(30, 4, 2, 8, seed=0)
    train.save(tmp_path / "train.npz")
    run = ["train-gnn", "--no-select", "--features", str(tmp_path / "train.npz"), "--K", "20", "--k", "5", "--tau", "5", "--quiet"]
    assert main([*run, "--out", str(tmp_path / "paper.pt"), "--preset", "paper", "--ablation", "ori_w_mask",
                 "--epochs", "1"]) == 0
    config = load_checkpoint(tmp_path / "paper.pt", "ffgnn")["config"]
    assert (config["preset"], config["ablation"], config["graph"]["edges"]) == ("paper", "ori_w_mask", "cosine")
    assert config["graph"]["K"] == 20 and config["graphs_per_batch"] == 1  # given flags override the preset
    assert main([*run, "--out", str(tmp_path / "ours.pt"), "--epochs", "1"]) == 0
    model, settings = load_ffgnn(tmp_path / "ours.pt")
    assert settings.camera_aware and settings.lam == 0.3 and model.output == "l2"
    capsys.readouterr()
    assert main([*run, "--out", str(tmp_path / "x.pt"), "--ablation", "sft"]) == 2
    err = capsys.readouterr().err.strip()
    assert "ablation sft changes the paper's recipe" in err and "\n" not in err
    FeatureSet(train.feats, train.pids, torch.zeros_like(train.camids)).save(tmp_path / "one_cam.npz")
    assert main([*run, "--features", str(tmp_path / "one_cam.npz"), "--out", str(tmp_path / "y.pt")]) == 2
    assert "single camera id" in capsys.readouterr().err


def error_line(capsys, command):
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"reidgraph {command}: error: ") and "\n" not in err, err
    return err


def test_train_gnn_refuses_to_resume_on_other_features(tmp_path, capsys):
    from reidgraph.data import synthetic_features
    synthetic_features(40, 6, 3, 16, seed=0).save(tmp_path / "a.npz")
    synthetic_features(30, 6, 3, 16, seed=0).save(tmp_path / "b.npz")  # another number of identities
    model, common = tmp_path / "gnn.pt", ["--K", "20", "--k", "5", "--tau", "5", "--quiet", "--preset", "paper",
                                          "--ablation", "sft"]
    assert main(["train-gnn", "--no-select", "--features", str(tmp_path / "a.npz"), "--out", str(model), "--epochs", "1",
                 *common]) == 0
    capsys.readouterr()
    assert main(["train-gnn", "--no-select", "--features", str(tmp_path / "b.npz"), "--out", str(model), "--epochs", "2",
                 *common]) == 2
    assert "gnn.pt was trained on other features (" in error_line(capsys, "train-gnn")
    assert main(["train-gnn", "--no-select", "--features", str(tmp_path / "b.npz"), "--out", str(model), "--epochs", "1",
                 "--restart", *common]) == 0
    log = [json.loads(line) for line in (tmp_path / "gnn.log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1]  # the restart started a new log


@pytest.mark.parametrize("argv, match", [
    (["demo", "--K", "0"], "K="),
    (["demo", "--K", "10", "--tau", "0"], "tau="),
    (["demo", "--K", "10", "--k", "30"], "k="),
    (["demo", "--K", "500", "--ids", "6"], "K="),
    (["demo", "--joint-graphs", "-1"], "--joint-graphs"),
    (["train", "--dataset", "market1501", "--root", "{tmp}/missing", "--out", "{tmp}/run", "--lam", "2"],
     "lam"),
    (["train", "--dataset", "market1501", "--root", "{tmp}/missing", "--out", "{tmp}/run", "--alpha", "-1"],
     "alpha"),
    (["train", "--dataset", "market1501", "--root", "{tmp}/missing", "--out", "{tmp}/run",
      "--same-camera-weight", "3"], "same_camera_weight"),
    (["train-gnn", "--features", "{tmp}/missing.npz", "--out", "{tmp}/g.pt", "--lam", "2"], "lam"),
])
def test_settings_are_checked_before_any_work(tmp_path, capsys, monkeypatch, argv, match):
    import reidgraph.cli as cli

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the settings were checked")

    monkeypatch.setattr("reidgraph.data.synthetic_images.make_synthetic_market", no_work)
    monkeypatch.setattr(cli, "load_dataset", no_work)
    monkeypatch.setattr(cli.FeatureSet, "load", no_work)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] == "demo":
        argv += ["--out", str(tmp_path / "demo")]
    assert main(argv) == 2
    assert match in error_line(capsys, argv[0])
    assert not (tmp_path / "demo").exists()


def test_demo_k_and_tau_follow_a_small_K(tmp_path, monkeypatch):
    import reidgraph.cli as cli
    seen = {}

    def stop(root, **kwargs):
        raise FileNotFoundError("stopped after the settings")

    def record(settings, *configs, **kwargs):
        seen["settings"] = settings
        return check(settings, *configs, **kwargs)

    check = cli.check_configs
    monkeypatch.setattr("reidgraph.data.synthetic_images.make_synthetic_market", stop)
    monkeypatch.setattr(cli, "check_configs", record)
    assert main(["demo", "--out", str(tmp_path / "d"), "--K", "10", "--ids", "6"]) == 2
    assert (seen["settings"].K, seen["settings"].k, seen["settings"].tau) == (10, 10, 10)
    assert main(["demo", "--out", str(tmp_path / "d"), "--K", "30", "--ids", "6", "--k", "7", "--tau", "8"]) == 2
    assert (seen["settings"].K, seen["settings"].k, seen["settings"].tau) == (30, 7, 8)


def test_out_and_device_are_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("x")
    assert main(["demo", "--out", str(tmp_path / "file")]) == 2
    assert "--out" in error_line(capsys, "demo")
    assert main(["train", "--dataset", "market1501", "--root", str(tmp_path), "--out", str(tmp_path / "file")]) == 2
    assert "--out" in error_line(capsys, "train")
    assert main(["train-gnn", "--no-select", "--features", str(tmp_path / "f.npz"), "--out", str(tmp_path)]) == 2
    assert "is a folder" in error_line(capsys, "train-gnn")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(["train-gnn", "--no-select", "--features", str(tmp_path / "f.npz"), "--out", str(tmp_path / "g.pt"),
                 "--device", "cuda"]) == 2
    assert "no CUDA device" in error_line(capsys, "train-gnn")
    assert main(["train", "--dataset", "market1501", "--root", str(tmp_path), "--out", str(tmp_path / "run"),
                 "--device", "cuda"]) == 2
    assert "no CUDA device" in error_line(capsys, "train")


def test_train_gnn_k_and_tau_follow_a_small_K(tmp_path, capsys):
    from reidgraph.data import synthetic_features
    from reidgraph.model_file import load_ffgnn
    synthetic_features(30, 4, 2, 8, seed=0).save(tmp_path / "train.npz")
    model = tmp_path / "small.pt"
    assert main(["train-gnn", "--no-select", "--features", str(tmp_path / "train.npz"), "--out", str(model), "--K", "10",
                 "--epochs", "1", "--quiet"]) == 0, capsys.readouterr().err
    settings = load_ffgnn(model)[1]
    assert (settings.K, settings.k, settings.tau) == (10, 10, 10)  # the preset's 20s, capped at K
    assert main(["train-gnn", "--no-select", "--features", str(tmp_path / "train.npz"), "--out", str(tmp_path / "bad.pt"),
                 "--K", "10", "--k", "20", "--epochs", "1", "--quiet"]) == 2  # an explicit k is kept, and refused
    assert "\n" not in capsys.readouterr().err.strip()


def test_version_comes_from_the_installed_package(capsys):
    from importlib.metadata import version
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.strip() == f"reidgraph {version('reidgraph')}"


def test_help_speaks_to_a_user(capsys):
    from reidgraph.cli import COMMANDS
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    description = out.split("\n\n")[1]
    assert description.startswith("Person re-identification") and "``" not in out and ":mod:" not in out
    assert all(name in out and summary.split()[0] in out for name, (_, summary, _) in COMMANDS.items())


def test_a_dataclass_default_shows_up_in_the_parser(monkeypatch):
    from dataclasses import dataclass

    import reidgraph.cli as cli
    from reidgraph.engine.train_fen import FENTrainConfig

    @dataclass
    class Longer(FENTrainConfig):
        epochs: int = 7

    argv = ["train", "--dataset", "market1501", "--root", "r", "--out", "o"]
    assert cli.build_parser().parse_args(argv).epochs_fen == FENTrainConfig().epochs
    monkeypatch.setattr(cli, "FENTrainConfig", Longer)
    parser = cli.build_parser()
    assert parser.parse_args(argv).epochs_fen == 7
    train_help = " ".join(subcommands(parser)["train"].format_help().split())
    assert "--epochs-fen EPOCHS_FEN stage 1: passes over the training data (default: 7)" in train_help


def subcommands(parser):
    return next(a for a in parser._actions if a.dest == "command").choices


def test_every_option_has_help():
    from reidgraph.cli import build_parser
    for name, parser in subcommands(build_parser()).items():
        assert all(action.help for action in parser._actions), name


def test_train_gnn_debias_stores_the_stage_and_evaluate_applies_it(tmp_path, capsys):
    """A model trained on de-biased features ranks test features de-biased by their gallery: ``ffgnn`` with it
    equals ``debias+ffgnn``; a raw model refuses ``debias+``; the stage needs camera ids."""
    import torch

    from reidgraph.data import synthetic_features
    from reidgraph.debias import Debias
    from reidgraph.model_file import load_debias
    from reidgraph.features import FeatureSet
    from reidgraph.rerank import rerank

    synthetic_features(40, 6, 3, 16, seed=0).save(tmp_path / "train.npz")
    synthetic_features(20, 6, 3, 16, seed=0, first_pid=100).save(tmp_path / "test.npz")
    small = ["--K", "20", "--k", "5", "--tau", "5", "--epochs", "1", "--quiet"]
    for name, extra in (("raw.pt", []), ("debiased.pt", ["--debias"])):
        assert main(["train-gnn", "--no-select", "--features", str(tmp_path / "train.npz"), "--out", str(tmp_path / name),
                     *small, *extra]) == 0
    assert load_debias(tmp_path / "debiased.pt") == Debias() and load_debias(tmp_path / "raw.pt") is None
    capsys.readouterr()
    maps = {}
    for model, method in (("debiased.pt", "ffgnn"), ("debiased.pt", "debias+ffgnn"), ("raw.pt", "ffgnn")):
        assert main(["evaluate", "--features", str(tmp_path / "test.npz"), "--model", str(tmp_path / model),
                     "--method", method, "--json", "--quiet"]) == 0
        maps[model, method] = json.loads(capsys.readouterr().out)["mAP"]
    assert maps["debiased.pt", "ffgnn"] == maps["debiased.pt", "debias+ffgnn"]
    test = FeatureSet.load(tmp_path / "test.npz")
    query, gallery = test.query_gallery()
    from reidgraph.debias import debias
    from reidgraph.model_file import load_ffgnn
    from reidgraph.nn import ffgnn_rerank
    q, g = debias(query.feats, gallery.feats, query.camids, gallery.camids)
    net, settings = load_ffgnn(tmp_path / "debiased.pt")
    expected = ffgnn_rerank(net, q, g, settings, query_camids=query.camids, gallery_camids=gallery.camids)
    got = rerank("ffgnn", query.feats, gallery.feats, query_camids=query.camids, gallery_camids=gallery.camids,
                 model=tmp_path / "debiased.pt")
    torch.testing.assert_close(got.dense(), expected.dense())
    assert main(["evaluate", "--features", str(tmp_path / "test.npz"), "--model", str(tmp_path / "raw.pt"),
                 "--method", "debias+ffgnn"]) == 2
    assert "was trained on features without de-biasing; drop 'debias+'" in capsys.readouterr().err


def test_numbers_are_refused_naming_their_flag(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--ids", "0"]) == 2
    assert "--ids=0 is outside" in error_line(capsys, "demo")
    assert main(["train-gnn", "--no-select", "--features", str(tmp_path / "f.npz"), "--out", str(tmp_path / "g.pt"),
                 "--lr", "-1"]) == 2
    assert "lr=-1.0 must be a number in (0" in error_line(capsys, "train-gnn")
