"""``python -m recipes.plot`` on synthetic runs in a temporary MLflow SQLite store (no training).

The hand-computed example (bin width 10 frames, bins [0,10], (10,20], (20,30], ...; drawn at the right edge):

    cartpole v1 seed 0: steps 3, 7, 12, 25 -> values 1, 3, 5, 8      bins: 2 | 5 | 8
    cartpole v1 seed 1: steps 0, 10, 45, 48 -> values 2, 4, 10, 12   bins: 3 | - | - | - | 11
    mean over seeds: 2.5, 5, 8, null, 11 (count 2, 1, 1, 0, 1); std 0.5, 0, 0, null, 0
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

EXPERIMENT = "plots"

# name -> (tags, params, {metric: [(step, value), ...]})
RUNS: dict[str, tuple[dict[str, str], dict[str, str], dict[str, list[tuple[int, float]]]]] = {
    "v1-cart-s0": ({"algo": "dreamer_v1", "task": "dmc_cartpole_balance", "seed": "0"}, {"model.latent": "small"},
                   {"eval/return": [(3, 1.0), (7, 3.0), (12, 5.0), (25, 8.0)], "train/return": [(5, 0.5)]}),
    "v1-cart-s1": ({"algo": "dreamer_v1", "task": "dmc_cartpole_balance", "seed": "1"}, {"model.latent": "big"},
                   {"eval/return": [(0, 2.0), (10, 4.0), (45, 10.0), (48, 12.0)]}),
    "v3-cart-s0": ({"algo": "dreamer_v3", "task": "dmc_cartpole_balance", "seed": "0"}, {"model.latent": "big"},
                   {"eval/return": [(10, 100.0), (20, 200.0)]}),
    "v3-cheetah-s0": ({"algo": "dreamer_v3", "task": "dmc_cheetah_run", "seed": "0"}, {"model.latent": "small"},
                      {"eval/return": [(5, 1.0), (15, 2.0)], "train/loss/image": [(5, 0.1)]}),
    "planet-pong-s0": ({"algo": "planet", "task": "atari_pong", "seed": "0"}, {},
                       {"train/return": [(4, -21.0)]}),  # no eval/return yet; no model.latent param
}
DELETED = ({"algo": "dreamer_v1", "task": "dmc_cartpole_balance", "seed": "2"}, {}, {"eval/return": [(10, 1e3)]})


def make_store(db: Path, runs: dict, experiment: str = EXPERIMENT) -> dict[str, str]:
    """Log ``runs`` into the SQLite store ``db`` (created if needed); returns run name -> run id."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    ids = {}
    for name, (tags, params, metrics) in runs.items():
        run = client.create_run(exp_id, run_name=name, tags=tags)
        points = [Metric(k, v, i, s) for k, pts in metrics.items() for i, (s, v) in enumerate(pts)]
        client.log_batch(run.info.run_id, metrics=points, params=[Param(k, v) for k, v in params.items()],
                         synchronous=True)
        if name != "v3-cart-s0":  # one run stays RUNNING: it is plotted like the others
            client.set_terminated(run.info.run_id)
        ids[name] = run.info.run_id
    return ids


def blank_db(tmp_path_factory: pytest.TempPathFactory, dest: Path) -> Path:
    """A copy of an empty MLflow SQLite store at ``dest``; the schema is built once per session (seconds)."""
    from mlflow.tracking import MlflowClient

    template = tmp_path_factory.getbasetemp() / "blank_mlflow.db"
    if not template.exists():
        MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()
    shutil.copy(template, dest)
    return dest


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One store for the module, named by MLFLOW_TRACKING_URI; yields its paths and run ids."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("plot_store")
    db = blank_db(tmp_path_factory, root / "mlflow.db")
    ids = make_store(db, {**RUNS, "deleted": DELETED})
    MlflowClient(tracking_uri=f"sqlite:///{db}").delete_run(ids.pop("deleted"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
        mp.chdir(root)
        yield {"root": root, "db": db, "ids": ids}


def plot(tmp_path: Path, *argv: str) -> dict:
    from recipes.plot import main

    assert main(["--experiment", EXPERIMENT, "--bins", "10", "--out", str(tmp_path / "out"), *argv]) == 0
    return json.loads((tmp_path / "out" / "curves.json").read_text())


def build(*argv: str):  # type: ignore[no-untyped-def]
    from recipes.plot import build as build_plot
    from recipes.plot import build_parser

    return build_plot(build_parser().parse_args(["--experiment", EXPERIMENT, "--bins", "10", *argv]))


def curve(payload: dict, task: str, method: str) -> dict:
    return next(c for c in payload["curves"] if c["task"] == task and c["method"] == method)


def test_binned_values_match_hand_computation(store: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    payload = plot(tmp_path)
    out, err = capsys.readouterr()
    assert payload["experiment"] == EXPERIMENT and payload["metric"] == "eval/return" and payload["bins"] == 10
    assert payload["tracking_uri"] == f"sqlite:///{store['db']}" and payload["methods_by"] == "algo"
    v1 = curve(payload, "dmc_cartpole_balance", "dreamer_v1")
    assert v1["x"] == [10, 20, 30, 40, 50]
    assert v1["mean"] == [2.5, 5.0, 8.0, None, 11.0]
    assert v1["std"] == [0.5, 0.0, 0.0, None, 0.0]
    assert v1["min"] == [2.0, 5.0, 8.0, None, 11.0] and v1["max"] == [3.0, 5.0, 8.0, None, 11.0]
    assert v1["count"] == [2, 1, 1, 0, 1]
    s0, s1 = v1["runs"]  # by seed; the deleted seed 2 is not read
    assert (s0["seed"], s0["run_name"], s0["run_id"]) == ("0", "v1-cart-s0", store["ids"]["v1-cart-s0"])
    assert s0["x"] == [10, 20, 30] and s0["y"] == [2.0, 5.0, 8.0]
    assert s1["x"] == [10, 20, 30, 40, 50] and s1["y"] == [3.0, None, None, None, 11.0]
    v3 = curve(payload, "dmc_cartpole_balance", "dreamer_v3")  # a RUNNING run is included
    assert v3["x"] == [10, 20] and v3["mean"] == [100.0, 200.0] and v3["runs"][0]["status"] == "RUNNING"
    lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert lines["runs"] == "4" and lines["tasks"] == "2" and lines["methods"] == "2"
    assert lines["png"].endswith("curves.png") and lines["json"].endswith("curves.json")
    assert "skipped 1 run(s) that have not logged 'eval/return'" in err


def test_outputs_are_real_files_one_panel_per_task(store: dict, tmp_path: Path) -> None:
    plot(tmp_path, "--dpi", "50", "--cols", "3", "--title", "Synthetic", "--spread", "minmax")
    png = (tmp_path / "out" / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    result = build("--cols", "3")
    fig_w, fig_h = result.figure.get_size_inches()
    assert (width, height) == (round(fig_w * 50), round(fig_h * 50))
    assert fig_w == pytest.approx(2 * 3.0)  # two tasks: two columns, not three
    assert (tmp_path / "out" / "curves.pdf").read_bytes()[:5] == b"%PDF-"
    axes = result.figure.axes
    assert [ax.get_title() for ax in axes] == ["Cartpole Balance", "Cheetah Run"]
    assert [line.get_label() for line in axes[0].get_lines()] == ["dreamer_v1", "dreamer_v3"]
    colors = {line.get_label(): line.get_color() for ax in axes for line in ax.get_lines()}
    assert axes[1].get_lines()[0].get_color() == colors["dreamer_v3"]  # same colour in every panel
    assert axes[0].get_xlabel() == "env frames" and axes[0].get_ylabel() == "eval/return"
    assert len(result.figure.legends) == 1


def test_methods_by_param_and_filters(store: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    payload = plot(tmp_path, "--methods-by", "model.latent")
    assert {(c["task"], c["method"]) for c in payload["curves"]} == {
        ("dmc_cartpole_balance", "big"), ("dmc_cartpole_balance", "small"), ("dmc_cheetah_run", "small")}
    big = curve(payload, "dmc_cartpole_balance", "big")
    assert [r["run_name"] for r in big["runs"]] == ["v3-cart-s0", "v1-cart-s1"]  # by seed
    assert big["mean"][:2] == [51.5, 200.0] and big["count"][:2] == [2, 1]
    assert "skipped 1 run(s) without a tag or param 'model.latent'" in capsys.readouterr().err
    assert plot(tmp_path, "--methods-by", "params.model.latent")["methods_by"] == "params.model.latent"

    def picked(*argv: str) -> set[str]:
        return {r["run_name"] for c in plot(tmp_path, *argv)["curves"] for r in c["runs"]}

    assert picked("--tasks", "cheetah_run") == {"v3-cheetah-s0"}
    assert picked("--tasks", "dmc_cart*") == {"v1-cart-s0", "v1-cart-s1", "v3-cart-s0"}
    assert picked("--methods", "dreamer_v3") == {"v3-cart-s0", "v3-cheetah-s0"}
    assert picked("--runs", "v1-cart-s1", store["ids"]["v3-cheetah-s0"]) == {"v1-cart-s1", "v3-cheetah-s0"}


def test_baselines_overlay(store: dict, tmp_path: Path) -> None:
    custom = tmp_path / "my_method.json"
    custom.write_text(json.dumps({
        "method": "Mine", "suite": "dmc_proprio", "metric": "eval/return", "source": "test", "url": "https://x",
        "scores": [{"task": "dmc_cheetah_run", "frames": 20, "value": 3.0}],
        "curves": [{"task": "dmc_cheetah_run", "frames": [10, 20, 1000], "values": [1.5, 2.5, 9.0]}]}))
    result = build("--baselines", "dreamer_v3_dmc_proprio", str(custom))
    cart, cheetah = result.figure.axes
    labels = [line.get_label() for line in cart.get_lines()]
    assert "DreamerV3 (published) @500k" in labels  # no budget inside 0..50 frames: the smallest one
    line = next(x for x in cart.get_lines() if x.get_label() == "DreamerV3 (published) @500k")
    published = dict(load_score("dreamer_v3_dmc_proprio", "dmc_cartpole_balance"))[500000]
    assert line.get_ydata()[0] == pytest.approx(published) and line.get_linestyle() == "--"
    mine = next(x for x in cheetah.get_lines() if x.get_label() == "Mine (published)")
    assert list(mine.get_xdata()) == [10, 20] and list(mine.get_ydata()) == [1.5, 2.5]  # clipped to the x-range
    entries = {(b["task"], b["label"], b["kind"]) for b in result.payload["baselines"]}
    assert ("dmc_cheetah_run", "Mine (published)", "curve") in entries
    assert ("dmc_cartpole_balance", "DreamerV3 (published) @500k", "score") in entries
    assert not any(b["task"] == "dmc_cartpole_balance" and b["label"].startswith("Mine") for b in
                   result.payload["baselines"])
    assert build("--baselines").payload["baselines"]  # no names: every stored file


def load_score(name: str, task: str) -> list[tuple[int, float]]:
    from dreamer_rl.analysis.baselines import load_baselines

    return load_baselines([name])[0].score_points(task)


def test_tracking_uri_from_the_environment(store: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture) -> None:
    other = tmp_path / "other.db"
    shutil.copy(store["db"], other)  # an existing schema: no migrations to wait for
    make_store(other, {"only-here": ({"algo": "other_algo", "task": "gym_Pendulum-v1", "seed": "0"}, {},
                                     {"eval/return": [(10, -5.0)]})})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    payload = plot(tmp_path, "--tasks", "gym_*")
    assert payload["tracking_uri"] == f"sqlite:///{other}"
    assert [(c["task"], c["method"], c["mean"]) for c in payload["curves"]] == [("gym_Pendulum-v1", "other_algo",
                                                                                  [-5.0])]
    assert "tasks=1" in capsys.readouterr().out


ERRORS = [
    (["--experiment", "nope"], "no experiment named 'nope'", "available: Default, plots"),
    (["--metric", "eval/nothing"], "metric 'eval/nothing' was logged by none", "train/loss/image"),
    (["--tasks", "walker_*"], "no runs left after --tasks walker_*", "dmc_cheetah_run"),
    (["--methods", "dreamer_v9"], "no runs left after --methods dreamer_v9", "dreamer_v1"),
    (["--runs", "nobody"], "--runs nobody", "v1-cart-s0"),
    (["--methods-by", "colour"], "no selected run has a tag or param named 'colour'", "algo"),
    (["--bins", "0"], "bad --bins 0", "> 0"),
    (["--bins", "-5"], "bad --bins -5", "> 0"),
    (["--xlim", "10", "5"], "bad --xlim 10 5", "MIN < MAX"),
    (["--baselines", "dreamer_v7"], "unknown baseline 'dreamer_v7'", "available"),
    (["--spread", "iqr"], "invalid choice", "std"),
    (["--bogus"], "unknown option --bogus", "error"),
]


@pytest.mark.parametrize(("argv", "says", "also"), ERRORS, ids=[e[1][:24] for e in ERRORS])
def test_errors_are_one_line(store: dict, tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], says: str,
                             also: str) -> None:
    from recipes.plot import main

    with pytest.raises(SystemExit) as exc:
        main(["--experiment", EXPERIMENT, "--out", str(tmp_path / "out"), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0] and also in err[0], err
    assert not (tmp_path / "out").exists()


def test_no_store_is_an_error_and_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    from recipes.plot import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: there is no MLflow store at ")
    assert "MLFLOW_TRACKING_URI" in err[0]
    assert not (tmp_path / "mlflow").exists() and not (tmp_path / "out").exists()


def test_binning_rule_unit() -> None:
    import numpy as np

    from dreamer_rl.analysis.curves import aggregate, bin_run

    x, y = bin_run(np.array([0, 30000, 30001, 95000]), np.array([1.0, 3.0, 5.0, 7.0]), 30000)
    assert list(x) == [30000, 60000, 90000, 120000]  # the partial last bin is kept
    assert np.allclose(y, [2.0, 5.0, np.nan, 7.0], equal_nan=True)
    stats = aggregate([np.array([1.0, 2.0]), np.array([3.0])])
    assert list(stats["count"]) == [2, 1] and list(stats["mean"]) == [2.0, 2.0] and list(stats["std"]) == [1.0, 0.0]
