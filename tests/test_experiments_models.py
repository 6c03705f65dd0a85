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
import torch

from nerfvae.errors import ConfigError, DataError, NerfVAEError
from nerfvae.experiment_reports import ablation as ablation_report
from nerfvae.experiment_reports import ood_cameras as cameras_report
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
    assert "ood_views.png" in text and report["ood_views_figure"]["scenes"] == [0]


def test_cameras_ood_views_figure(cameras_out: Path, tiny_run: Path, tiny_dataset: Path) -> None:
    """ood_views.png: per scene the truth of the OOD targets, then each model's render of them."""
    from PIL import Image

    from nerfvae.experiments.common import load_dataset, load_run

    report = json.loads((cameras_out / "cameras.json").read_text())
    shown = report["ood_views_figure"]
    evaluation = json.loads((cameras_out / "eval_nerfvae.json").read_text())
    assert shown["rows_per_scene"] == ["truth", "NeRF-VAE", "GQN"] and shown["context_size"] == 3
    assert shown["views"] == evaluation["view_lists"]["ood_targets"]
    dataset = load_dataset(tiny_dataset, "test")
    model = load_run(tiny_run)[0]
    rows = ood_cameras.ood_view_rows({"nerfvae": model}, evaluation, dataset, 3, 1)
    scene = dataset.load_scene(0)
    truth = scene.images[shown["views"]].float() / 255.0
    assert len(rows) == 2 and all(len(row) == len(shown["views"]) for row in rows)
    assert torch.equal(torch.stack(rows[0]), truth)
    rendered = torch.stack(rows[1])
    assert rendered.shape == truth.shape and 0 <= rendered.min() and rendered.max() <= 1
    assert not torch.allclose(rendered, truth, atol=1e-3)  # a render, not the truth again
    # the PNG holds 3 rows (truth, NeRF-VAE, GQN) of the OOD views, pixels repeated to >= 96 high
    height, width = truth.shape[1:3]
    scale = max(1, 96 // height)
    image = Image.open(cameras_out / "ood_views.png")
    assert image.size[1] >= 3 * height * scale and image.size[0] >= len(truth) * width * scale


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
    assert not (tmp_path / "ood_views.png").exists()  # no --data: the figure is not drawn
    assert "ood_views.png" not in (tmp_path / "cameras.md").read_text()


def test_cameras_bad_inputs(
    cameras_out: Path, tiny_run: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
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
    with pytest.raises(ConfigError, match="--figure-scenes -1"):
        ood_cameras.run(["--eval-json", nerfvae_json, "--figure-scenes", "-1"], prog)
    pruned = json.loads(Path(nerfvae_json).read_text())
    pruned["checkpoint_step"] = 999
    pruned_path = tmp_path / "pruned.json"
    pruned_path.write_text(json.dumps(pruned))
    with pytest.raises(ConfigError, match="no checkpoint of step 999, the one evaluated"):
        ood_cameras.run(
            ["--eval-json", str(pruned_path), "--gqn-eval-json", gqn_json, "--data",
             str(tiny_dataset), "--context", "3", "--out", str(tmp_path)], prog,
        )  # fmt: skip
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
    assert "| ⚠ total +" in text and "Parameter counts are not matched** within 10% (" in text
    flagged = next(entry for entry in report["runs"] if entry["parameter_flag"])
    assert f"{flagged['name']} {flagged['parameter_flag']}" in text  # what is over is named
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
    from nerfvae.training.warm_start import training_seconds

    rows = [  # 10 steps at 2/s, 10 at 2/s, then (after a pause and a resume) 10 at 5/s
        {"step": "10", "time": "100", "steps_per_s": "2"},
        {"step": "20", "time": "105", "steps_per_s": "2"},
        {"step": "30", "time": "9000", "steps_per_s": "5"},
    ]
    assert training_seconds(rows) == 5 + 5 + 2


def test_training_curves_leave_out_the_pauses_between_resumed_parts(tmp_path: Path):
    """The curves' minutes (against which the ablation draws validation PSNR) are minutes of
    training, as the budgets are: a pause between two parts of a run does not move the curve."""
    from nerfvae.evaluation.curves import run_curves

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text(  # 60 steps at 1/s, then after a day's pause 60 at 2/s
        "step,time,loss,steps_per_s\n60,1000,1.0,1\n120,87430,0.5,2\n"
    )
    (run / "validation.csv").write_text("step,psnr_id\n60,15.0\n90,16.0\n120,17.0\n")
    curves = run_curves(run)
    assert [row["minutes"] for row in curves["metrics"]] == [1.0, 1.5]
    assert [row["minutes"] for row in curves["validation"]] == [1.0, 1.25, 1.5]


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


# --- intervals over scenes, paired differences and the claims' verdicts ------------------------

STRONG = [20.0, 23.5, 18.0, 21.0, 25.0, 19.5]  # scenes differ by far more than the models
WEAK = [19.6, 23.0, 17.7, 20.4, 24.6, 19.0]  # below STRONG on every scene


def _contains(interval: dict, value: float) -> bool:
    return interval["low"] - 1e-9 <= value <= interval["high"] + 1e-9


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_claim_helpers() -> None:
    from nerfvae.experiment_reports import claims

    interval = claims.interval(STRONG)
    assert interval["count"] == 6 and _contains(interval, _mean(STRONG))
    assert claims.interval([None, None]) is None and claims.interval(None) is None
    assert claims.interval([20.0, None, 22.0])["count"] == 2  # scenes without a value left out
    record = claims.claim(STRONG, WEAK, "greater")
    assert record["difference"]["mean"] == pytest.approx(
        _mean([a - b for a, b in zip(STRONG, WEAK)])
    )
    assert record["verdict"] == "holds" and claims.claim(WEAK, STRONG, "greater")["verdict"] == (
        "not shown"
    )
    assert claims.claim(WEAK, STRONG, "less")["verdict"] == "holds"
    assert claims.claim(STRONG[:1], WEAK[:1], "greater")["verdict"] == claims.ONE_SCENE
    assert claims.claim(STRONG, None, "greater", 0.5) == {
        "mean": 0.5, "difference": None, "direction": "greater", "verdict": claims.NO_PER_SCENE,
    }  # fmt: skip
    with pytest.raises(NerfVAEError, match="same scenes"):
        claims.paired(STRONG, WEAK[:3])
    assert claims.cell(19.25, None) == "19.25" and claims.cell(None, None) == "–"
    assert claims.cell(19.25, {"mean": 19.0, "low": 18.5, "high": 20.125}) == "19.25 [18.50, 20.12]"
    # a verdict is recomputed from the interval: none is printed without one
    assert claims.claim_cells({"mean": 1.0, "difference": None, "verdict": "holds"}) == [
        "1.00",
        claims.NO_PER_SCENE,
    ]


def _evaluation(psnr_id: list[float], psnr_ood: list[float]) -> dict:
    """A hand-made `nerfvae eval` result at K = 3 with these per-scene PSNRs."""
    results, per_scene = {}, {}
    for kind, values in (("id", psnr_id), ("ood", psnr_ood)):
        results[kind] = {"psnr": _mean(values), "baseline_mean_train_psnr": 15.0, "num_views": 6}
        results[kind]["baseline_mean_context_psnr"] = 16.0
        per_scene[kind] = {"psnr": values, "baseline_mean_train_psnr": [15.0] * len(values)}
        per_scene[kind]["baseline_mean_context_psnr"] = [16.0] * len(values)
    return {"results": {"3": results}, "per_scene": {"3": per_scene}}


def test_cameras_rows_carry_intervals_and_the_drop_claim(cameras_out: Path) -> None:
    report = json.loads((cameras_out / "cameras.json").read_text())
    for k, row in report["results"].items():
        for name in ("nerfvae", "gqn", "mean_train_image"):
            entry = row[name]
            for part in ("id", "ood", "drop"):
                interval = entry["intervals"][part]["psnr"]
                assert interval["count"] == 1 and _contains(interval, entry[part]["psnr"])
            scenes = entry["per_scene"]
            assert scenes["drop"]["psnr"] == [
                pytest.approx(a - b) for a, b in zip(scenes["id"]["psnr"], scenes["ood"]["psnr"])
            ]
        claim = report["drop_difference"][k]["psnr"]
        gqn, vae = (
            row["gqn"]["per_scene"]["drop"]["psnr"],
            row["nerfvae"]["per_scene"]["drop"]["psnr"],
        )
        assert claim["difference"]["mean"] == pytest.approx(
            _mean([a - b for a, b in zip(gqn, vae)])
        )
        assert claim["mean"] == pytest.approx(
            row["gqn"]["drop"]["psnr"] - row["nerfvae"]["drop"]["psnr"]
        )
        # one scene: its interval has no width, and no verdict is read from it
        assert claim["verdict"] == "not shown (one scene)" and claim["direction"] == "greater"
    assert [row["comparison"] for row in report["claims"]] == [
        "GQN drop − NeRF-VAE drop (ID → OOD), K=1", "GQN drop − NeRF-VAE drop (ID → OOD), K=3",
    ]  # fmt: skip
    assert all(row["psnr_interval"]["count"] == 1 for row in report["headline"])
    text = (cameras_out / "cameras.md").read_text()
    assert "GQN drop − NeRF-VAE drop (paired) | verdict" in text
    interval = report["results"]["3"]["nerfvae"]["intervals"]["id"]["psnr"]
    assert f"[{interval['low']:.2f}, {interval['high']:.2f}]" in text


def test_cameras_drop_claim_flips_when_the_models_swap(cameras_out: Path) -> None:
    """GQN loses 1 dB on OOD cameras on every scene, NeRF-VAE 0.1–0.3 dB: the claim holds; with
    the models swapped it is not shown."""
    vae = _evaluation(STRONG, [v - 0.1 - 0.04 * i for i, v in enumerate(STRONG)])
    gqn = _evaluation(WEAK, [v - 1.0 for v in WEAK])
    for evaluations, verdict in (({"nerfvae": vae, "gqn": gqn}, "holds"),
                                 ({"nerfvae": gqn, "gqn": vae}, "not shown")):  # fmt: skip
        results = ood_cameras.compare_cameras(evaluations, (3,))
        claim = ood_cameras.drop_differences(results, 3.0)["3"]["psnr"]
        assert claim["verdict"] == verdict and claim["difference"]["count"] == 6
        assert claim["not_read"] is None  # both models 4.7-5.2 dB above the mean context colour
        drops = {
            name: [
                a - b
                for a, b in zip(
                    e["per_scene"]["3"]["id"]["psnr"], e["per_scene"]["3"]["ood"]["psnr"]
                )
            ]
            for name, e in evaluations.items()
        }
        assert claim["difference"]["mean"] == pytest.approx(
            _mean([a - b for a, b in zip(drops["gqn"], drops["nerfvae"])])
        )
        report = json.loads((cameras_out / "cameras.json").read_text())
        report.update(results=results, drop_difference=ood_cameras.drop_differences(results, 3))
        text = "\n".join(cameras_report.markdown_report(report))
        row = next(line for line in text.splitlines() if line.startswith("| 3 | PSNR |"))
        assert row.endswith(f"| {verdict} |")


def test_cameras_claim_is_not_read_below_the_margin_over_trivial() -> None:
    """The drop comparison is read only where both models clear the mean context colour on ID
    views by --min-margin-db: below it the verdict says which model fell short, by how much."""
    from nerfvae.experiment_reports import claims

    vae = _evaluation(STRONG, [v - 0.1 for v in STRONG])  # ID 21.17 dB: +5.17 over 16
    gqn = _evaluation(WEAK, [v - 1.0 for v in WEAK])  # ID 20.72 dB: +4.72
    results = ood_cameras.compare_cameras({"nerfvae": vae, "gqn": gqn}, (3,))
    assert ood_cameras.drop_differences(results, 4.7)["3"]["psnr"]["not_read"] is None
    claim = ood_cameras.drop_differences(results, 5.0)["3"]["psnr"]
    assert claim["verdict"] == "holds"  # the interval alone would say so...
    assert claim["not_read"] == "ID PSNR above the mean context colour: GQN +4.72 dB; needs 5"
    assert (
        claims.claim_cells(claim)[1] == f"not read ({claim['not_read']})"
    )  # ...but it is not read
    both = ood_cameras.drop_differences(results, 6.0)["3"]["psnr"]["not_read"]
    assert both == "ID PSNR above the mean context colour: NeRF-VAE +5.17 dB, GQN +4.72 dB; needs 6"


def _strip_per_scene(data: Any) -> Any:
    """``data`` as saved before the per-scene values: no per_scene, intervals or claims."""
    dropped = {
        "per_scene",
        "intervals",
        "drop_difference",
        "comparisons",
        "claims",
        "psnr_interval",
    }
    if isinstance(data, dict):
        return {key: _strip_per_scene(value) for key, value in data.items() if key not in dropped}
    if isinstance(data, list):
        return [_strip_per_scene(value) for value in data]
    return data


def test_cameras_json_without_per_scene_values_reads_as_not_shown(cameras_out: Path) -> None:
    from nerfvae.experiment_reports.claims import NO_PER_SCENE

    report = _strip_per_scene(json.loads((cameras_out / "cameras.json").read_text()))
    text = "\n".join(cameras_report.markdown_report(report))
    rows = [line for line in text.splitlines() if line.startswith("| 3 | PSNR |")]
    assert len(rows) == 1 and NO_PER_SCENE in rows[0] and "[" not in rows[0]
    assert "| holds |" not in text and "| not shown |" not in text
    claims = ood_cameras.cameras_claims(report)
    assert [claim["verdict"] for claim in claims] == [NO_PER_SCENE] * 2


def _ablation_with(report: dict, attention: list[float], concat: list[float]) -> dict:
    """The tiny ablation report with its second run made a concat run, both runs given these
    per-scene PSNRs (ID and OOD) and −ELBOs of 30 − PSNR / 10, and the comparisons recomputed."""
    report = json.loads(json.dumps(report))
    report["runs"][1]["conditioning"] = "concat"
    for entry, values in zip(report["runs"], (attention, concat)):
        nelbo = [30 - value / 10 for value in values]
        entry["per_scene"] = {
            "nelbo_bits_per_dim": nelbo, "id": {"psnr": values}, "ood": {"psnr": values},
        }  # fmt: skip
        entry["metrics"]["nelbo_bits_per_dim"] = _mean(nelbo)
        for kind in ("id", "ood"):
            entry["metrics"][kind]["psnr"] = _mean(values)
        entry["intervals"] = {}
    report["comparisons"] = ablation_report.compare_runs(report["runs"])
    return report


def test_ablation_rows_carry_intervals_and_the_claim_flips_when_the_runs_swap(
    ablation_out: Path,
) -> None:
    report = json.loads((ablation_out / "ablation.json").read_text())
    for entry in report["runs"]:
        for kind in ("id", "ood"):
            interval = entry["intervals"][kind]["psnr"]
            assert interval["count"] == 1 and _contains(interval, entry["metrics"][kind]["psnr"])
        nelbo = entry["intervals"]["nelbo_bits_per_dim"]
        assert _contains(nelbo, entry["metrics"]["nelbo_bits_per_dim"])
    # attention and GQN: no concat or AIN run, no claim
    assert report["comparisons"] == [] and report["claims"] == []
    assert "no claim to read" in (ablation_out / "ablation.md").read_text()

    better = _ablation_with(report, STRONG, WEAK)
    rows = better["comparisons"]
    assert [(row["reference"], row["other"], row["title"]) for row in rows] == [
        ("attention", "gqn", "PSNR ID (dB)"), ("attention", "gqn", "PSNR OOD (dB)"),
        ("attention", "gqn", "−ELBO bits/dim"),
    ]  # fmt: skip
    assert [row["direction"] for row in rows] == ["greater", "greater", "less"]
    assert [row["verdict"] for row in rows] == ["holds"] * 3
    assert rows[0]["difference"]["mean"] == pytest.approx(
        _mean([a - b for a, b in zip(STRONG, WEAK)])
    )
    text = "\n".join(ablation_report.markdown_report(better))
    assert "| attention − gqn | PSNR ID (dB) |" in text and text.count("| holds |") == 3
    worse = _ablation_with(report, WEAK, STRONG)
    assert [row["verdict"] for row in worse["comparisons"]] == ["not shown"] * 3
    assert [row["verdict"] for row in ablation.ablation_claims(worse)] == ["not shown"] * 3


def test_ablation_json_without_per_scene_values_reads_as_not_shown(ablation_out: Path) -> None:
    from nerfvae.experiment_reports.claims import NO_PER_SCENE

    report = _ablation_with(json.loads((ablation_out / "ablation.json").read_text()), STRONG, WEAK)
    old = _strip_per_scene(report)
    rows = ablation_report.comparisons_of(old)
    assert [row["verdict"] for row in rows] == [NO_PER_SCENE] * 3
    assert rows[0]["mean"] == pytest.approx(_mean(STRONG) - _mean(WEAK))
    text = "\n".join(ablation_report.markdown_report(old))
    assert text.count(f"| {NO_PER_SCENE} |") == 3 and "| holds |" not in text


def test_summary_states_each_claims_verdict_with_its_interval(
    cameras_out: Path, ablation_out: Path, tmp_path: Path
) -> None:
    from nerfvae.experiment_reports.claims import NO_PER_SCENE, verdict_text

    results = tmp_path / "results"
    cameras = json.loads((cameras_out / "cameras.json").read_text())
    _write(results / "cameras" / "cameras.json", cameras)
    ablation_report = _ablation_with(
        json.loads((ablation_out / "ablation.json").read_text()), STRONG, WEAK
    )
    ablation_report["claims"] = ablation.ablation_claims(ablation_report)
    _write(results / "ablation" / "ablation.json", _strip_per_scene(ablation_report))  # older
    out = tmp_path / "README.md"
    assert summary.run(["--results", str(results), "--out", str(out)], "s") == 0
    text = out.read_text()
    assert "## Claims" in text and "95% bootstrap interval over scenes" in text
    claim = cameras["claims"][0]
    interval = claim["difference"]
    row = next(line for line in text.splitlines() if claim["comparison"] in line)
    assert f"[{interval['low']:.2f}, {interval['high']:.2f}]" in row
    # the tiny runs are below the mean context colour: the comparison is not read
    assert row.endswith(f"| {verdict_text(claim)} |") and "| not read (ID PSNR above" in row
    headline = next(line for line in text.splitlines() if "NeRF-VAE, K=3, ID views" in line)
    assert f"{cameras['headline'][0]['psnr']:.2f} [" in headline
    # the older ablation JSON: margins of the means, no interval and no verdict
    rows = [line for line in text.splitlines() if "attention − gqn, K=3" in line]
    assert len(rows) == 3 and all(line.endswith(f"| {NO_PER_SCENE} |") for line in rows)
