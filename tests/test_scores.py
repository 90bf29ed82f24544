"""``python -m recipes.scores`` on synthetic runs in a temporary MLflow SQLite store (no training).

Hand computation (budget 30 frames):

    cartpole s0: (10,100) (20,300) (30,200) (40,250)  final 250, best 300 @20, nearest to 30: 200, window 20: 250
    cartpole s1: (10,50) (25,150) (35,400) (50,350)   final 350, best 400 @35, nearest: tie 25/35 -> 35: 400,
                                                      window (10,30]: 150
    cartpole s2: (10,80) (20,90)                      final 90, last evaluation 20 < 30: reached false
    summary: final mean (250+350+90)/3 = 230, std sqrt(34400/3); at (s0, s1) 300 ± 100 nearest, 200 ± 50 window
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_plot import blank_db, make_store

EXPERIMENT = "scores"
CART = {"algo": "dreamer_v1", "task": "dmc_cartpole_balance"}
RUNS = {
    "cart-s0": ({**CART, "seed": "0"}, {}, {"eval/return": [(10, 100.0), (20, 300.0), (30, 200.0), (40, 250.0)]}),
    "cart-s1": ({**CART, "seed": "1"}, {}, {"eval/return": [(10, 50.0), (25, 150.0), (35, 400.0), (50, 350.0)]}),
    "cart-s2": ({**CART, "seed": "2"}, {}, {"eval/return": [(10, 80.0), (20, 90.0)]}),
    # human-normalised: pong random -20.7 human 14.6, breakout 1.7 / 30.5, boxing 0.1 / 12.1
    "pong-s0": ({"algo": "dreamer_v3", "task": "atari_pong", "seed": "0"}, {},
                {"eval/return": [(100, -20.7), (200, 14.6)]}),
    "pong-s1": ({"algo": "dreamer_v3", "task": "atari_pong", "seed": "1"}, {},
                {"eval/return": [(100, -20.7), (200, -3.05)]}),
    "breakout-s0": ({"algo": "dreamer_v3", "task": "atari_breakout", "seed": "0"}, {},
                    {"eval/return": [(100, 1.7), (200, 30.5)]}),
    "boxing-s0": ({"algo": "dreamer_v3", "task": "atari_boxing", "seed": "0"}, {},
                  {"eval/return": [(100, 12.1), (200, 0.1)]}),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("scores_store")
    db = blank_db(tmp_path_factory, root / "mlflow.db")
    make_store(db, RUNS, EXPERIMENT)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
        mp.chdir(root)
        yield db


def scores(tmp_path: Path, *argv: str) -> dict:
    from recipes.scores import main

    assert main(["--experiment", EXPERIMENT, "--out", str(tmp_path / "s.json"), *argv]) == 0
    return json.loads((tmp_path / "s.json").read_text())


def by_name(payload: dict) -> dict[str, dict]:
    return {r["run_name"]: r for r in payload["runs"]}


def entry(payload: dict, task: str) -> dict:
    return next(s for s in payload["summary"] if s["task"] == task)


def test_final_best_and_nearest_at_budget(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    payload = scores(tmp_path, "--at", "30")
    runs = by_name(payload)
    s0, s1, s2 = runs["cart-s0"], runs["cart-s1"], runs["cart-s2"]
    assert (s0["frames"], s0["final"], s0["best"], s0["best_frames"], s0["evaluations"]) == (40, 250.0, 300.0, 20, 4)
    assert (s0["at"], s0["at_frames"], s0["reached"]) == (200.0, 30, True)
    assert (s1["final"], s1["best"], s1["at"], s1["at_frames"], s1["reached"]) == (350.0, 400.0, 400.0, 35, True)
    assert (s2["final"], s2["frames"], s2["at"], s2["reached"]) == (90.0, 20, 90.0, False)
    assert (s0["task"], s0["algo"], s0["method"], s0["seed"], s0["status"]) == (
        "dmc_cartpole_balance", "dreamer_v1", "dreamer_v1", "0", "FINISHED")
    assert "final_hn" not in s0
    cart = entry(payload, "dmc_cartpole_balance")
    assert cart["seeds"] == 3 and cart["final_mean"] == pytest.approx(230.0)
    assert cart["final_std"] == pytest.approx(math.sqrt(34400 / 3))
    assert (cart["at_mean"], cart["at_std"], cart["at_seeds"]) == (pytest.approx(300.0), pytest.approx(100.0), 2)
    out = capsys.readouterr().out
    assert "runs=7" in out.splitlines() and f"out={tmp_path / 's.json'}" in out.splitlines()
    assert "dmc_cartpole_balance" in out and "300.0 ± 100.0" in out and "cart-s2" in out


def test_window_at_budget(store: Path, tmp_path: Path) -> None:
    payload = scores(tmp_path, "--at", "30", "--window", "20", "--tasks", "dmc_*")
    runs = by_name(payload)
    assert set(runs) == {"cart-s0", "cart-s1", "cart-s2"}
    assert (runs["cart-s0"]["at"], runs["cart-s0"]["at_evaluations"]) == (250.0, 2)
    assert (runs["cart-s1"]["at"], runs["cart-s1"]["at_evaluations"]) == (150.0, 1)
    cart = entry(payload, "dmc_cartpole_balance")
    assert (cart["at_mean"], cart["at_std"]) == (pytest.approx(200.0), pytest.approx(50.0))
    assert payload["budget"] == 30 and payload["window"] == 20


def test_atari_human_normalised(store: Path, tmp_path: Path) -> None:
    from envs.atari import human_normalized

    assert human_normalized("pong", 14.6) == pytest.approx(1.0)
    payload = scores(tmp_path, "--at", "150", "--tasks", "atari_*")
    runs = by_name(payload)
    assert runs["pong-s0"]["final_hn"] == pytest.approx(1.0) and runs["pong-s0"]["best_hn"] == pytest.approx(1.0)
    assert runs["pong-s1"]["final_hn"] == pytest.approx(0.5)
    assert runs["pong-s0"]["at"] == 14.6 and runs["pong-s0"]["at_hn"] == pytest.approx(1.0)  # tie 100/200 -> 200
    assert runs["boxing-s0"]["final_hn"] == pytest.approx(0.0) and runs["boxing-s0"]["best_hn"] == pytest.approx(1.0)
    pong = entry(payload, "atari_pong")
    assert pong["final_mean"] == pytest.approx((14.6 - 3.05) / 2) and pong["final_hn_mean"] == pytest.approx(0.75)
    (v3,) = payload["atari"]
    assert (v3["method"], v3["games"]) == ("dreamer_v3", 3)
    assert v3["final_hn_mean"] == pytest.approx((0.75 + 1.0 + 0.0) / 3) and v3["final_hn_median"] == pytest.approx(0.75)
    assert v3["at_hn_median"] == pytest.approx(0.75) and v3["at_games"] == 3


def test_score_run_unit() -> None:
    import numpy as np

    from dreamer_rl.analysis.scores import score_run

    row = score_run({"task": "dmc_x"}, np.array([10, 20, 20, 40]), np.array([1.0, 5.0, 7.0, np.nan]), at=25)
    assert (row["frames"], row["final"], row["best"], row["evaluations"]) == (20, 7.0, 7.0, 3)  # NaN ignored
    assert (row["at"], row["at_frames"], row["reached"]) == (7.0, 20, False)  # the last one logged at step 20


@pytest.mark.parametrize(("argv", "says"), [
    (["--at", "0"], "bad --at 0"),
    (["--window", "10"], "--window needs --at"),
    (["--at", "30", "--window", "-1"], "bad --window -1"),
    (["--experiment", "nope"], "no experiment named 'nope'"),
    (["--metric", "eval/none"], "metric 'eval/none' was logged by none"),
    (["--tasks", "walker_*"], "no runs left after --tasks walker_*"),
])
def test_errors_are_one_line(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str],
                             says: str) -> None:
    from recipes.scores import main

    argv = ["--experiment", EXPERIMENT, *argv] if "--experiment" not in argv else argv
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(tmp_path / "s.json")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0], err
    assert not (tmp_path / "s.json").exists()


def test_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from recipes.scores import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'missing' / 'mlflow.db'}")
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "s.json")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: there is no MLflow store at ")
    assert not (tmp_path / "missing").exists()
