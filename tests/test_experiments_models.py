"""The experiments that compare trained models (`nerfvae experiment cameras`, `ablation`) and the
results summary (`summary`), end to end on the tiny dataset with the tiny NeRF-VAE run and a
GQN-style run trained here for a few steps."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from nerfvae.errors import ConfigError, DataError
from nerfvae.experiments import ablation, ood_cameras, summary

GQN_OPTIONS = [
    "--gqn.tower-channels", "8", "16", "--gqn.representation-channels", "16",
    "--gqn.latent-channels", "4", "--gqn.latent-grid", "3", "--gqn.generator-channels", "16",
    "--gqn.generator-blocks", "1", "--gqn.upsample-stages", "2",
]  # fmt: skip


@pytest.fixture(scope="module")
def gqn_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nerfvae.cli.main import main

    run = tmp_path_factory.mktemp("gqn") / "gqn"
    code = main(
        [
            "train", "--model", "gqn", "--config", "tiny", "--data", str(tiny_dataset),
            "--run", str(run), "--steps", "4", "--scenes-per-batch", "2", "--log-every", "2",
            "--checkpoint-every", "4", "--validation-scenes", "1", "--threads", "1",
            *GQN_OPTIONS,
        ]
    )  # fmt: skip
    assert code == 0
    return run


def _finite_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and math.isfinite(value))


def _all_numbers_finite_or_null(data: Any) -> bool:
    if isinstance(data, dict):
        return all(_all_numbers_finite_or_null(v) for v in data.values())
    if isinstance(data, list):
        return all(_all_numbers_finite_or_null(v) for v in data)
    if isinstance(data, float):
        return math.isfinite(data)
    return True


@pytest.fixture(scope="module")
def cameras_out(tiny_run: Path, gqn_run: Path, tiny_dataset: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cameras")
    argv = [
        "--run", str(tiny_run), "--gqn-run", str(gqn_run), "--data", str(tiny_dataset),
        "--max-scenes", "1", "--context", "1,3", "--out", str(out), "--threads", "1",
    ]  # fmt: skip
    assert ood_cameras.run(argv, "nerfvae experiment cameras") == 0
    return out


@pytest.fixture(scope="module")
def ablation_out(tiny_run: Path, gqn_run: Path, tiny_dataset: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ablation")
    argv = [
        "--runs", f"attention={tiny_run}", f"gqn={gqn_run}", "--data", str(tiny_dataset),
        "--max-scenes", "1", "--context", "3", "--out", str(out), "--threads", "1",
    ]  # fmt: skip
    assert ablation.run(argv, "nerfvae experiment ablation") == 0
    return out


def test_cameras_end_to_end(cameras_out: Path, tiny_run: Path, gqn_run: Path) -> None:
    report = json.loads((cameras_out / "cameras.json").read_text())
    assert report["experiment"] == "cameras" and report["num_scenes"] == 1
    assert report["context_sizes"] == [1, 3]
    assert set(report["results"]) == {"1", "3"}
    for row in report["results"].values():
        assert set(row) == {"nerfvae", "gqn", "mean_train_image", "mean_context_colour"}
        for name in ("nerfvae", "gqn"):
            entry = row[name]
            for kind in ("id", "ood"):
                assert math.isfinite(entry[kind]["psnr"]) and math.isfinite(entry[kind]["ssim"])
                assert _finite_or_null(entry[kind]["object_psnr"])
            assert entry["drop"]["psnr"] == pytest.approx(
                entry["id"]["psnr"] - entry["ood"]["psnr"]
            )
            assert entry["id"]["num_views"] == 3 and entry["ood"]["num_views"] == 2
            margin = entry["margin_over_mean_train_image"]["ood"]["psnr"]
            assert margin == pytest.approx(
                entry["ood"]["psnr"] - row["mean_train_image"]["ood"]["psnr"]
            )
        assert math.isfinite(row["mean_train_image"]["id"]["psnr"])
        assert math.isfinite(row["mean_context_colour"]["ood"]["psnr"])
    assert _all_numbers_finite_or_null(report)
    # the same scenes and targets for both models: the raw evaluations agree on them
    evaluations = {
        name: json.loads((cameras_out / f"eval_{name}.json").read_text())
        for name in ("nerfvae", "gqn")
    }
    assert evaluations["nerfvae"]["view_lists"] == evaluations["gqn"]["view_lists"]
    assert evaluations["gqn"]["model"] == "GQN"
    assert report["results"]["3"]["gqn"]["ood"]["psnr"] == pytest.approx(
        evaluations["gqn"]["results"]["3"]["ood"]["psnr"]
    )
    provenance = report["provenance"]
    assert provenance["command"].startswith("nerfvae experiment cameras --run")
    assert [Path(r["run"]) for r in provenance["runs"]] == [tiny_run, gqn_run]
    assert all(r["steps"] > 0 and r["wall_minutes"] is not None for r in provenance["runs"])
    assert len(report["headline"]) == 4
    assert (cameras_out / "cameras.png").stat().st_size > 1000
    text = (cameras_out / "cameras.md").read_text()
    assert "NeRF-VAE" in text and "GQN" in text and "mean training image" in text
    assert "nerfvae experiment cameras --run" in text and "cameras.png" in text


def test_cameras_reuses_eval_json(cameras_out: Path, tmp_path: Path, monkeypatch) -> None:
    import nerfvae.evaluation.evaluate as evaluation

    def no_evaluation(*args, **kwargs):
        raise AssertionError("evaluated again despite --eval-json")

    monkeypatch.setattr(evaluation, "evaluate_run", no_evaluation)
    argv = [
        "--eval-json", str(cameras_out / "eval_nerfvae.json"),
        "--gqn-eval-json", str(cameras_out / "eval_gqn.json"),
        "--context", "3", "--out", str(tmp_path),
    ]  # fmt: skip
    assert ood_cameras.run(argv, "nerfvae experiment cameras") == 0
    reused = json.loads((tmp_path / "cameras.json").read_text())
    original = json.loads((cameras_out / "cameras.json").read_text())
    assert reused["results"]["3"] == original["results"]["3"]
    assert not reused["models"]["nerfvae"]["evaluated_here"]
    assert len(reused["provenance"]["runs"]) == 2  # found from the eval JSONs' `run`
    assert (tmp_path / "cameras.png").exists() and (tmp_path / "cameras.md").exists()


def test_cameras_bad_inputs(cameras_out: Path, tiny_run: Path, tmp_path: Path) -> None:
    nerfvae_json = str(cameras_out / "eval_nerfvae.json")
    gqn_json = str(cameras_out / "eval_gqn.json")
    prog = "nerfvae experiment cameras"
    with pytest.raises(ConfigError, match="--gqn-run RUN or --gqn-eval-json"):
        ood_cameras.run(["--eval-json", nerfvae_json, "--out", str(tmp_path)], prog)
    with pytest.raises(ConfigError, match="--data is needed"):
        ood_cameras.run(["--run", str(tiny_run), "--gqn-eval-json", gqn_json], prog)
    with pytest.raises(ConfigError, match=r"asks for 2"):
        ood_cameras.run(
            ["--eval-json", nerfvae_json, "--gqn-eval-json", gqn_json, "--context", "2,3"], prog
        )
    with pytest.raises(ConfigError, match="is a GQN model; expected NeRF-VAE"):
        ood_cameras.run(
            ["--eval-json", gqn_json, "--gqn-eval-json", gqn_json, "--context", "3"], prog
        )
    with pytest.raises(ConfigError, match="no such file"):
        ood_cameras.run(
            ["--eval-json", str(tmp_path / "none.json"), "--gqn-eval-json", gqn_json], prog
        )
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataError, match="not a JSON file"):
        ood_cameras.run(["--eval-json", str(broken), "--gqn-eval-json", gqn_json], prog)
    other = json.loads(Path(gqn_json).read_text())
    other["num_scenes"] = 2
    other_path = tmp_path / "other.json"
    other_path.write_text(json.dumps(other))
    with pytest.raises(ConfigError, match="differ in num_scenes"):
        ood_cameras.run(["--eval-json", nerfvae_json, "--gqn-eval-json", str(other_path)], prog)
    with pytest.raises(ConfigError, match="--context"):
        ood_cameras.run(
            ["--eval-json", nerfvae_json, "--gqn-eval-json", gqn_json, "--context", "x"], prog
        )


def test_ablation_end_to_end(ablation_out: Path, tiny_run: Path, gqn_run: Path) -> None:
    report = json.loads((ablation_out / "ablation.json").read_text())
    assert report["experiment"] == "ablation" and report["context"] == 3
    assert [entry["name"] for entry in report["runs"]] == ["attention", "gqn"]
    attention, gqn = report["runs"]
    assert attention["conditioning"] == "attention" and gqn["model"] == "gqn"
    for entry in report["runs"]:
        assert entry["parameters"]["total"] > 0
        assert entry["steps"] > 0 and entry["wall_minutes"] is not None
        assert math.isfinite(entry["metrics"]["nelbo_bits_per_dim"])
        for kind in ("id", "ood"):
            assert math.isfinite(entry["metrics"][kind]["psnr"])
            assert _finite_or_null(entry["metrics"][kind]["object_psnr"])
        final = entry["validation"]["final"]  # training validates at its last step
        assert final is not None and final["step"] == entry["steps"]
    assert 0 < attention["parameters"]["scene_function"] < attention["parameters"]["total"]
    assert gqn["parameters"]["scene_function"] is None
    # the tiny NeRF-VAE and the tiny GQN differ in size by far more than 10%
    assert report["parameters_matched"] is False and report["max_parameter_ratio"] > 1.1
    assert [entry["parameter_flag"] is None for entry in report["runs"]].count(True) == 1
    assert math.isfinite(report["trivial"]["id"]["baseline_mean_train_psnr"])
    assert _all_numbers_finite_or_null(report)
    text = (ablation_out / "ablation.md").read_text()
    assert "| ⚠ total +" in text and "Parameter counts are not matched" in text
    assert "nerfvae experiment ablation --runs" in text
    assert (ablation_out / "ablation.png").stat().st_size > 1000


def test_ablation_reuses_eval_json_and_matched_runs(
    ablation_out: Path, tiny_run: Path, tmp_path: Path, monkeypatch
) -> None:
    import nerfvae.evaluation.evaluate as evaluation

    def no_evaluation(*args, **kwargs):
        raise AssertionError("evaluated again despite --eval-json")

    monkeypatch.setattr(evaluation, "evaluate_run", no_evaluation)
    saved = str(ablation_out / "eval_attention.json")
    argv = [
        "--runs", f"first={tiny_run}", f"second={tiny_run}",
        "--eval-json", f"first={saved}", f"second={saved}", "--out", str(tmp_path),
    ]  # fmt: skip
    assert ablation.run(argv, "nerfvae experiment ablation") == 0
    report = json.loads((tmp_path / "ablation.json").read_text())
    original = json.loads((ablation_out / "ablation.json").read_text())
    assert report["parameters_matched"] is True
    assert report["runs"][0]["metrics"] == original["runs"][0]["metrics"]
    assert all(entry["parameter_flag"] is None for entry in report["runs"])
    text = (tmp_path / "ablation.md").read_text()
    assert "matched within 10%" in text and "| ⚠" not in text and text.count("| ✓ |") == 2


def test_ablation_bad_inputs(ablation_out: Path, tiny_run: Path, tmp_path: Path) -> None:
    prog = "nerfvae experiment ablation"
    saved = str(ablation_out / "eval_attention.json")
    with pytest.raises(ConfigError, match="give the runs"):
        ablation.run([], prog)
    with pytest.raises(ConfigError, match="NAME=PATH"):
        ablation.run(["--runs", str(tiny_run)], prog)
    with pytest.raises(ConfigError, match="given twice"):
        ablation.run(["--runs", f"a={tiny_run}", f"a={tiny_run}"], prog)
    with pytest.raises(ConfigError, match="not given in --runs"):
        ablation.run(["--runs", f"a={tiny_run}", "--eval-json", f"b={saved}"], prog)
    with pytest.raises(ConfigError, match="not a run directory"):
        ablation.run(["--runs", f"a={tmp_path}"], prog)
    with pytest.raises(ConfigError, match="asks for 2"):
        ablation.run(
            ["--runs", f"a={tiny_run}", "--eval-json", f"a={saved}", "--context", "2"], prog
        )
    with pytest.raises(ConfigError, match="--data is needed"):
        ablation.run(["--runs", f"a={tiny_run}", "--out", str(tmp_path)], prog)


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_summary_collects_present_and_lists_missing(
    cameras_out: Path, ablation_out: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    for name, source in (("cameras", cameras_out), ("ablation", ablation_out)):
        (results / name).mkdir(parents=True)
        for suffix in (".json", ".md", ".png"):
            shutil.copy(source / f"{name}{suffix}", results / name / f"{name}{suffix}")
    fake_provenance = {
        "command": "nerfvae experiment views --run runs/fake --data data/fake",
        "git_commit": "abc123",
        "hardware": {"cpu": "Fake CPU", "cpu_count": 2, "torch_threads": 1, "gpu": None},
        "runs": [{"run": "runs/fake", "steps": 1234, "wall_minutes": 56.7, "config": {}}],
    }
    # views: no headline, eval-like results nested per model (found by the generic walk)
    _write(
        results / "views" / "views.json",
        {
            "experiment": "views",
            "results": {
                "NeRF-VAE": {"1": {"id": {"psnr": 17.25, "baseline_mean_train_psnr": 15.5}}}
            },
            "provenance": fake_provenance,
        },
    )
    # cost: no PSNR at all, only provenance
    _write(
        results / "cost" / "cost.json",
        {"experiment": "cost", "seconds_per_step": 0.3, "provenance": fake_provenance},
    )
    # a variant of a known experiment written with --out elsewhere: collected under its folder
    _write(
        results / "cost-long" / "cost.json",
        {
            "experiment": "cost",
            "results": {"7": {"id": {"psnr": 19.75}}},
            "provenance": fake_provenance,
        },
    )
    (results / "cost-long" / "cost.md").write_text("# cost, longer NeRF\n")
    (results / "uncertainty").mkdir()
    (results / "uncertainty" / "uncertainty.json").write_text("{broken")
    (results / "hand-written").mkdir()
    (results / "hand-written" / "README.md").write_text("# notes\n")

    out = tmp_path / "README.md"
    assert summary.run(["--results", str(results), "--out", str(out)], "s") == 0
    text = out.read_text()
    assert "not run yet: `nerfvae experiment samples" in text
    assert "not run yet: `nerfvae experiment views" not in text
    assert "NeRF-VAE / 1 / id" in text and "17.25" in text and "15.50" in text
    assert "nerfvae experiment views --run runs/fake" in text and "1234 steps" in text
    assert "Fake CPU (2 cores, 1 torch threads)" in text
    assert "Could not read" in text and "uncertainty.json" in text
    assert "[hand-written](results/hand-written/README.md)" in text
    assert "[table](results/cameras/cameras.md)" in text
    assert "| [views](results/views/views.json) |" in text  # no views.md: links the JSON
    assert "| [cost-long](results/cost-long/cost.md) | results / 7 / id | 19.75 |" in text
    assert "[table](results/cost-long/cost.md) · [JSON](results/cost-long/cost.json)" in text
    assert "## How each was produced" in text and "`fake`: 1234 steps, 56.7 min" in text
    # the cameras and ablation headline numbers are copied from their JSONs
    cameras_report = json.loads((results / "cameras" / "cameras.json").read_text())
    first = cameras_report["headline"][0]
    assert first["label"] in text and f"{first['psnr']:.2f}" in text
    assert "nerfvae experiment cameras --run" in text
    ablation_report = json.loads((results / "ablation" / "ablation.json").read_text())
    assert ablation_report["provenance"]["command"] in text
    assert f"{ablation_report['headline'][0]['psnr']:.2f}" in text

    # the default output is RESULTS/README.md; an empty directory lists every experiment
    empty = tmp_path / "empty"
    empty.mkdir()
    assert summary.run(["--results", str(empty)], "s") == 0
    text = (empty / "README.md").read_text()
    assert text.count("not run yet") == 6 and "No experiment has been run yet." in text
    with pytest.raises(ConfigError, match="no such directory"):
        summary.run(["--results", str(tmp_path / "missing")], "s")


def test_help_lists_documented_options(capsys) -> None:
    for module in (ood_cameras, ablation, summary):
        with pytest.raises(SystemExit) as exit_info:
            module.run(["--help"], "nerfvae experiment x")
        assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--gqn-eval-json" in text and "--runs" in text and "--results" in text


def test_dispatcher_prints_input_errors_as_one_line(tmp_path: Path, capsys) -> None:
    from nerfvae.cli.main import main

    assert main(["experiment", "summary", "--results", str(tmp_path / "missing")]) == 1
    assert "error: --results" in capsys.readouterr().err
    assert main(["experiment", "ablation", "--runs", "nothing"]) == 1
    assert "NAME=PATH" in capsys.readouterr().err


def test_summary_includes_the_hand_written_findings(tmp_path):
    from nerfvae.experiments import summary

    (tmp_path / "findings.md").write_text("## Reading\n\nAttention leads at this budget.\n")
    assert summary.run(["--results", str(tmp_path)], "nerfvae experiment summary") == 0
    text = (tmp_path / "README.md").read_text()
    assert "Attention leads at this budget." in text
    assert text.index("## Headline") < text.index("## Reading")


def test_training_seconds_leave_out_the_pauses_between_resumed_parts():
    from nerfvae.experiments.provenance import training_seconds

    rows = [  # 10 steps at 2/s, 10 at 2/s, then (after a pause and a resume) 10 at 5/s
        {"step": "10", "time": "100", "steps_per_s": "2"},
        {"step": "20", "time": "105", "steps_per_s": "2"},
        {"step": "30", "time": "9000", "steps_per_s": "5"},
    ]
    assert training_seconds(rows) == 5 + 5 + 2


def test_eval_of_gqn_refuses_refinement_before_any_work(
    gqn_run: Path, tiny_dataset: Path, tmp_path: Path, capsys
) -> None:
    from nerfvae.cli.main import main

    out = tmp_path / "gqn.json"
    base = ["eval", "--run", str(gqn_run), "--data", str(tiny_dataset), "--context", "1"]
    assert main([*base, "--test-time.steps", "5", "--out", str(out)]) == 1
    assert "refinement needs a model that renders rays (NeRF-VAE); GQN does not" in (
        capsys.readouterr().err
    )
    assert not out.exists()
    assert main([*base, "--out", str(out)]) == 0  # without refinement GQN evaluates as before
