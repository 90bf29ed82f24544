"""Published baselines (dreamer_rl.analysis.baselines): stored files, units, the numbers of REFERENCE.md, errors.

Frames are env frames after action repeat; values are raw episode returns (mean over seeds). Fast, no network.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dreamer_rl.analysis.baselines import (
    Baseline,
    baseline_dir,
    list_baselines,
    load_baseline_file,
    load_baselines,
)
from dreamer_rl.errors import UserError

EXPECTED = [
    "dreamer_v1_dmc_vision",
    "dreamer_v2_atari",
    "dreamer_v2_dmc_vision",
    "dreamer_v3_atari100k",
    "dreamer_v3_dmc_proprio",
    "dreamer_v3_dmc_vision",
    "planet_table1",
]

#: REFERENCE.md "Published numbers": baseline -> frames -> task -> value.
_DMC_V1_V2 = ["cheetah_run", "walker_walk", "cartpole_swingup", "reacher_easy", "finger_spin", "cup_catch",
              "quadruped_walk", "hopper_hop"]  # fmt: skip
REFERENCE: dict[str, dict[int, dict[str, float]]] = {
    "planet_table1": {1_000_000: dict(zip(
        ["dmc_cartpole_swingup", "dmc_reacher_easy", "dmc_cheetah_run", "dmc_finger_spin", "dmc_cup_catch",
         "dmc_walker_walk"], [821, 832, 662, 700, 930, 951]))},
    "dreamer_v1_dmc_vision": {
        1_000_000: dict(zip([f"dmc_{t}" for t in _DMC_V1_V2], [713, 956, 855, 603, 515, 967, 446, 266])),
        5_000_000: dict(zip([f"dmc_{t}" for t in _DMC_V1_V2], [870, 956, 869, 936, 433, 961, 926, 489])),
    },
    "dreamer_v2_dmc_vision": {
        1_000_000: dict(zip([f"dmc_{t}" for t in _DMC_V1_V2], [732, 956, 865, 951, 425, 804, 703, 244])),
        2_000_000: dict(zip([f"dmc_{t}" for t in _DMC_V1_V2], [807, 949, 870, 952, 443, 777, 936, 292])),
    },
    "dreamer_v2_atari": {200_000_000: {"atari_pong": 20, "atari_breakout": 312, "atari_boxing": 92}},
    "dreamer_v3_dmc_proprio": {500_000: {
        "dmc_cartpole_balance": 991, "dmc_cartpole_swingup": 856, "dmc_cheetah_run": 596, "dmc_walker_walk": 881,
        "dmc_reacher_easy": 962, "dmc_finger_spin": 924}},
    "dreamer_v3_dmc_vision": {1_000_000: {
        "dmc_cartpole_balance": 996, "dmc_cartpole_swingup": 862, "dmc_cheetah_run": 841, "dmc_walker_walk": 959,
        "dmc_reacher_easy": 930, "dmc_quadruped_walk": 801}},
    "dreamer_v3_atari100k": {400_000: {"atari_boxing": 87, "atari_pong": -5}},
}  # fmt: skip

REFERENCE_AGGREGATES = {
    "dreamer_v2_atari": {("gamer_normalized_median", 200_000_000): 2.15, ("gamer_normalized_mean", 200_000_000): 11.33},
    "dreamer_v3_dmc_proprio": {("mean_return", 500_000): 758},
    "dreamer_v3_dmc_vision": {("mean_return", 1_000_000): 787},
    "dreamer_v3_atari100k": {("human_normalized_mean", 400_000): 1.28, ("human_normalized_median", 400_000): 0.49},
}


@pytest.fixture(scope="module")
def baselines() -> dict[str, Baseline]:
    return {b.name: b for b in load_baselines()}


def _valid(**changes: object) -> dict:
    data = {
        "method": "Mine", "suite": "dmc_proprio", "metric": "eval/return", "source": "my runs", "url": "https://x",
        "seeds": 3, "scores": [{"task": "dmc_cheetah_run", "frames": 100_000, "value": 300.0}],
        "curves": [{"task": "dmc_cheetah_run", "frames": [50_000, 100_000], "values": [100.0, 300.0]}],
    }  # fmt: skip
    data.update(changes)
    return data


def _write(tmp_path: Path, data: object, name: str = "mine.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _user_error(path: Path) -> str:
    with pytest.raises(UserError) as info:
        load_baseline_file(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


# ---------------------------------------------------------------- stored files


def test_every_stored_file_loads(baselines: dict[str, Baseline]) -> None:
    assert list_baselines() == EXPECTED
    assert sorted(baselines) == EXPECTED
    assert load_baselines(["all"]) == load_baselines(None)
    for name, b in baselines.items():
        assert b.source.strip() and b.url.startswith("https://") and b.notes.strip(), name
        assert b.metric == "eval/return" and b.suite in {"dmc_proprio", "dmc_vision", "atari", "atari100k"}, name
        assert b.scores and b.tasks(), name
        assert (baseline_dir() / f"{name}.json").stat().st_size < 100_000, name


def test_units(baselines: dict[str, Baseline]) -> None:
    for b in baselines.values():
        frames = [s.frames for s in b.scores] + [a.frames for a in b.aggregates]
        frames += [f for c in b.curves for f in c.frames]
        assert all(f > 0 for f in frames), b.name
        for c in b.curves:
            assert len(c.frames) <= 40, (b.name, c.task)  # coarse curves keep the files small
    # Atari100k: 100K agent steps x repeat 4; DreamerV3 DMC "500K steps" are env frames (repeat 2 in the logger)
    assert {s.frames for s in baselines["dreamer_v3_atari100k"].scores} == {400_000}
    assert max(f for c in baselines["dreamer_v3_atari100k"].curves for f in c.frames) == 400_000
    assert {s.frames for s in baselines["dreamer_v3_dmc_proprio"].scores} == {500_000}
    assert {s.frames for s in baselines["dreamer_v2_atari"].scores} == {200_000_000}
    assert {s.frames for s in baselines["planet_table1"].scores} == {1_000_000}


def test_task_names_are_ours(baselines: dict[str, Baseline]) -> None:
    from envs.dmc import DREAMER_TASKS

    games = json.loads((Path(__file__).parents[1] / "envs" / "atari_scores.json").read_text())["games"]
    for b in baselines.values():
        for task in b.tasks():
            if task.startswith("dmc_"):
                assert task in DREAMER_TASKS, (b.name, task)
            else:
                assert task.startswith("atari_") and task.removeprefix("atari_") in games, (b.name, task)


def test_reference_numbers_present(baselines: dict[str, Baseline]) -> None:
    for name, by_frames in REFERENCE.items():
        for frames, values in by_frames.items():
            for task, value in values.items():
                assert (frames, value) in baselines[name].score_points(task), (name, task, frames)
    for name, aggregates in REFERENCE_AGGREGATES.items():
        got = {(a.name, a.frames): a.value for a in baselines[name].aggregates}
        for key, value in aggregates.items():
            assert got[key] == value, (name, key)


def test_hopper_hop_disagreement_is_documented(baselines: dict[str, Baseline]) -> None:
    # REFERENCE.md lists 108; the score file's mean over seeds at 490K frames is 107.48 (see the file's notes)
    b = baselines["dreamer_v3_dmc_proprio"]
    assert b.score_points("dmc_hopper_hop") == [(500_000, 107.0)]
    assert "hopper_hop 108" in b.notes


def test_accessors(baselines: dict[str, Baseline]) -> None:
    b = baselines["dreamer_v2_dmc_vision"]
    assert b.score_points("dmc_cheetah_run") == [(1_000_000, 732.0), (2_000_000, 807.0)]
    assert b.score_points("dmc_nope_nope") == [] and b.curve("dmc_nope_nope") is None
    curve = b.curve("dmc_cheetah_run")
    assert curve is not None and curve.frames == sorted(curve.frames) and len(curve.values) == len(curve.frames)
    assert baselines["planet_table1"].curve("dmc_cheetah_run") is None
    atari = baselines["dreamer_v2_atari"]
    assert "atari_ms_pacman" in atari.tasks() and atari.score_points("atari_ms_pacman") == []  # curve only


# ---------------------------------------------------------------- names, paths, errors


def test_unknown_name_lists_available() -> None:
    with pytest.raises(UserError) as info:
        load_baselines(["dreamer_v3_dmc_propio"])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown baseline 'dreamer_v3_dmc_propio'; did you mean dreamer_v3_dmc_proprio?")
    assert "available: " + ", ".join(EXPECTED) in message


def test_custom_file_by_path(tmp_path: Path) -> None:
    path = _write(tmp_path, _valid())
    b = load_baseline_file(path)
    assert b.name == "mine" and b.score_points("dmc_cheetah_run") == [(100_000, 300.0)]
    both = load_baselines([str(path), "planet_table1"])
    assert [x.name for x in both] == ["mine", "planet_table1"]
    assert load_baselines(str(path))[0] == b


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"curves": [{"task": "dmc_cheetah_run", "frames": [1, 2, 3], "values": [1.0, 2.0]}]}, "curves.0",
         "3 frames but 2 values"),
        ({"curves": [{"task": "dmc_cheetah_run", "frames": [2, 1], "values": [1.0, 2.0]}]}, "curves.0",
         "strictly increasing"),
        ({"scores": [{"task": "cheetah_run", "frames": 1, "value": 1.0}]}, "scores.0.task", "must start with"),
        ({"scores": [{"task": "dmc_cheetah_run", "frames": 0, "value": 1.0}]}, "scores.0.frames", "greater than 0"),
        ({"scores": [{"task": "dmc_cheetah_run", "frames": 5, "value": 1.0}] * 2}, "(top level)", "duplicate score"),
        ({"scores": [{"task": "dmc_cheetah_run", "frames": 5, "value": 1.0, "stdev": 2}]}, "scores.0.stdev",
         "unknown field"),
        ({"source": None}, "source", "valid string"),
        ({"name": "other"}, "name", "differs from the file name"),
    ],
)  # fmt: skip
def test_bad_file_names_path_and_field(tmp_path: Path, changes: dict, field: str, words: str) -> None:
    message = _user_error(_write(tmp_path, _valid(**changes)))
    assert message.startswith(f"bad baseline file {tmp_path / 'mine.json'}: {field}: "), message
    assert words in message


def test_missing_field(tmp_path: Path) -> None:
    data = _valid()
    del data["url"]
    assert "url: Field required" in _user_error(_write(tmp_path, data))


@pytest.mark.parametrize("text", ['{"method": "x",', "[1, 2]", "\xff"])
def test_broken_json_is_one_line(tmp_path: Path, text: str) -> None:
    message = _user_error(_write(tmp_path, text))
    assert message.startswith(f"bad baseline file {tmp_path / 'mine.json'}: ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read baseline file .*nope.json"):
        load_baselines([str(tmp_path / "nope.json")])
    _user_error(tmp_path / "absent.json")
