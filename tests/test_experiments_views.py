"""The `views` and `cost` experiments: end to end on the tiny dataset and run (one scene, a
per-scene NeRF of a few steps), reuse of earlier results, the time-to-reach interpolation and the
errors for bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from nerfvae.errors import ConfigError, DataError
from nerfvae.evaluation.per_scene_nerf import probe_view_count
from nerfvae.experiment_reports import context_views as views_report
from nerfvae.experiments import context_views

# A per-scene NeRF small enough to take a second or two (the flags of `nerfvae baseline nerf`).
TINY_NERF = [
    "--steps", "3", "--rays-per-scene", "32", "--width", "16", "--depth", "2",
    "--skip-layer", "-1", "--point-frequencies", "2", "--direction-frequencies", "1",
    "--num-coarse", "8", "--num-fine", "4", "--log-every", "1", "--probe-points", "2",
    "--scenes-per-batch", "1", "--threads", "1",
]  # fmt: skip
MODEL_KEYS = {"psnr", "ssim", "mse", "object_psnr", "depth_mae"}


def finite_or_null(value) -> bool:
    return value is None or (isinstance(value, int | float) and math.isfinite(value))


@pytest.fixture(scope="module")
def views_output(tiny_run: Path, tiny_dataset: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("views")
    argv = [
        "--run", str(tiny_run), "--data", str(tiny_dataset), "--max-scenes", "1",
        "--context", "1,2,all", "--id-targets", "2", "--out", str(out), *TINY_NERF,
    ]  # fmt: skip
    assert context_views.run(argv, "nerfvae experiment views") == 0
    return out


def test_views_end_to_end(views_output: Path) -> None:
    result = json.loads((views_output / "views.json").read_text())
    assert result["experiment"] == "views"
    # The tiny scenes have 6 ID views: `all` with 2 ID targets is K = 4, targets ID views 4, 5.
    assert result["context"] == {"1": 1, "2": 2, "all": 4}
    assert result["view_lists"]["id_targets"] == [4, 5]
    assert result["view_lists"]["ood_targets"] == [6, 7]
    assert result["nerf_source"] == "computed"
    assert list(result["results"]) == ["1", "2", "all"]
    for entry in result["results"].values():
        assert entry["context_views"] == list(range(entry["k"]))
        for kind in ("id", "ood"):
            cell = entry[kind]
            assert cell["num_views"] == 2
            for model in ("nerfvae", "nerf"):
                assert MODEL_KEYS <= set(cell[model])
                assert all(finite_or_null(v) for v in cell[model].values())
                assert cell[model]["psnr"] is not None
            for trivial in ("mean_train_image", "mean_context_colour"):
                assert set(cell[trivial]) == {"psnr", "object_psnr"}
                assert cell[trivial]["psnr"] is not None
                assert all(finite_or_null(v) for v in cell[trivial].values())
    for timing in result["timing"].values():
        assert timing["nerfvae"]["inference_s_per_scene"] >= 0
        assert timing["nerf"]["fit_s_per_scene"] > 0
    # Probes cover every target view by default, so the last probe is the final score.
    nerf = result["models"]["nerf"]
    assert nerf["probe_views"] == 2
    last = nerf["history"]["4"][-1]
    assert last["step"] == 3
    assert last["probe_psnr_id"] == pytest.approx(nerf["results"]["4"]["id"]["psnr"], abs=1e-4)
    provenance = result["provenance"]
    assert provenance["command"].startswith("nerfvae experiment views --run")
    assert provenance["runs"][0]["steps"] == 8
    assert (views_output / "views.png").stat().st_size > 0
    markdown = (views_output / "views.md").read_text()
    assert "all (4)" in markdown and "nerfvae experiment views --run" in markdown
    assert "wall minutes" in markdown and "3 steps × 32 rays" in markdown


def test_views_reuses_nerf_json(
    views_output: Path, tiny_run: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    base = ["--run", str(tiny_run), "--data", str(tiny_dataset), "--max-scenes", "1"]
    previous = views_output / "views.json"
    argv = [*base, "--context", "2,all", "--id-targets", "2", "--nerf-json", str(previous)]
    assert context_views.run([*argv, "--out", str(tmp_path)], "nerfvae experiment views") == 0
    result = json.loads((tmp_path / "views.json").read_text())
    before = json.loads(previous.read_text())
    assert result["nerf_source"] == str(previous)
    assert list(result["results"]) == ["2", "all"]
    for label in ("2", "all"):
        assert result["results"][label]["id"]["nerf"] == before["results"][label]["id"]["nerf"]
    assert "results reused from" in (tmp_path / "views.md").read_text()

    # One K at a time on the sweep's targets: --id-targets holds out the last 2 ID views for K = 1
    one = tmp_path / "one"
    argv = [*base, "--context", "1", "--id-targets", "2", "--nerf-json", str(previous)]
    assert context_views.run([*argv, "--out", str(one)], "nerfvae experiment views") == 0
    alone = json.loads((one / "views.json").read_text())
    assert alone["view_lists"]["id_targets"] == [4, 5]
    for model in ("nerfvae", "nerf"):  # the same scores as K = 1 of the whole sweep
        cell, whole = alone["results"]["1"]["id"][model], before["results"]["1"]["id"][model]
        assert cell["psnr"] == pytest.approx(whole["psnr"])

    # Other targets (no `all`: ID targets 2..5) than the reused results (4, 5): refused.
    with pytest.raises(ConfigError, match=r"does not match these views.*id_targets"):
        context_views.run([*base, "--context", "1,2", "--nerf-json", str(previous)], "views")
    with pytest.raises(ConfigError, match="no such file"):
        context_views.run(
            [*base, "--context", "1", "--nerf-json", str(tmp_path / "nope.json")], "views"
        )
    with pytest.raises(ConfigError, match="exclude each other"):
        context_views.run([*base, "--skip-nerf", "--nerf-json", str(previous)], "views")


def test_views_with_test_time_refinement(
    views_output: Path, tiny_run: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    """--test-time.steps refines NeRF-VAE's posteriors (its scores change, the reused NeRF's do
    not) and the report says how the posteriors were inferred."""
    previous = views_output / "views.json"
    argv = [
        "--run", str(tiny_run), "--data", str(tiny_dataset), "--max-scenes", "1", "--context",
        "1,2,all", "--id-targets", "2", "--nerf-json", str(previous), "--test-time.steps", "3",
        "--test-time.learning-rate", "0.5", "--out", str(tmp_path),
    ]  # fmt: skip
    assert context_views.run(argv, "nerfvae experiment views") == 0
    refined, before = (json.loads(p.read_text()) for p in (tmp_path / "views.json", previous))
    assert refined["models"]["nerfvae"]["refinement"]["steps"] == 3
    assert before["models"]["nerfvae"]["refinement"]["steps"] == 0
    cells = [(refined["results"][k]["id"], before["results"][k]["id"]) for k in ("1", "2")]
    assert all(new["nerf"] == old["nerf"] for new, old in cells)
    assert any(new["nerfvae"]["psnr"] != old["nerfvae"]["psnr"] for new, old in cells)
    assert "then 3 Adam steps on the context views' ELBO" in (tmp_path / "views.md").read_text()
    assert "no test-time refinement" in (views_output / "views.md").read_text()


def test_views_merges_nerf_results_made_for_different_k(
    views_output: Path, tiny_run: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    """Per-scene NeRF results split by K into two files (as two `baseline nerf --id-targets`
    runs write them) give the same views results as the one file; bad merges are refused."""
    before = json.loads((views_output / "views.json").read_text())
    nerf = before["models"]["nerf"]
    parts = []
    for name, ks in (("low", ["1"]), ("high", ["2", "4"])):
        part = json.loads(json.dumps(nerf))
        for key in ("results", "timing", "history"):
            part[key] = {k: v for k, v in part[key].items() if k in ks}
        part["view_lists"]["context"] = {k: nerf["view_lists"]["context"][k] for k in ks}
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(part))
        parts.append(path)
    base = ["--run", str(tiny_run), "--data", str(tiny_dataset), "--max-scenes", "1"]
    argv = [*base, "--context", "1,2,all", "--id-targets", "2", "--out", str(tmp_path / "out")]
    assert (
        context_views.run([*argv, "--nerf-json", *map(str, parts)], "nerfvae experiment views") == 0
    )
    result = json.loads((tmp_path / "out" / "views.json").read_text())
    assert result["nerf_source"] == f"{parts[0]}, {parts[1]}"
    assert result["models"]["nerf"]["sources"] == [str(p) for p in parts]
    for label in ("1", "2", "all"):
        for kind in ("id", "ood"):
            assert result["results"][label][kind]["nerf"] == before["results"][label][kind]["nerf"]
        assert result["timing"][label]["nerf"] == before["timing"][label]["nerf"]

    assert result["models"]["nerf"]["probe_views"] == nerf["probe_views"] == 2
    # parts that probed different numbers of views: the merge does not claim either
    other = json.loads(parts[1].read_text())
    other["probe_views"] = 5
    (tmp_path / "other.json").write_text(json.dumps(other))
    merged = context_views.load_nerf_json(
        [parts[0], tmp_path / "other.json"], result["models"]["nerfvae"], [1, 2, 4]
    )
    assert merged["probe_views"] is None

    with pytest.raises(ConfigError, match=r"K = 1 is in both"):
        context_views.run([*argv, "--nerf-json", str(parts[0]), str(parts[0])], "views")
    other = json.loads(parts[1].read_text())
    other["config"]["steps"] += 1
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(ConfigError, match=r"differ in config"):
        context_views.run(
            [*argv, "--nerf-json", str(parts[0]), str(tmp_path / "other.json")], "views"
        )
    other = json.loads(parts[1].read_text())
    other["view_lists"]["id_targets"] = [3, 4, 5]
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(ConfigError, match=r"score different id_targets.*--id-targets"):
        context_views.run(
            [*argv, "--nerf-json", str(parts[0]), str(tmp_path / "other.json")], "views"
        )
    with pytest.raises(ConfigError, match=r"no results for K = 2, 4.*--id-targets 2"):
        context_views.run([*argv, "--nerf-json", str(parts[0])], "views")


def test_views_skip_nerf_and_cost_refuses_it(
    tiny_run: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    argv = [
        "--run", str(tiny_run), "--data", str(tiny_dataset), "--max-scenes", "1",
        "--context", "1", "--skip-nerf", "--out", str(tmp_path),
    ]  # fmt: skip
    assert context_views.run(argv, "views") == 0
    result = json.loads((tmp_path / "views.json").read_text())
    assert result["models"]["nerf"] is None
    assert result["results"]["1"]["ood"]["nerf"] is None
    assert result["results"]["1"]["ood"]["nerfvae"]["psnr"] is not None
    with pytest.raises(ConfigError, match="no per-scene NeRF results"):
        context_views.run_cost(["--views-json", str(tmp_path / "views.json")], "cost")


def test_cost_from_views_json(views_output: Path, tmp_path: Path) -> None:
    argv = ["--views-json", str(views_output / "views.json"), "--out", str(tmp_path)]
    assert context_views.run_cost(argv, "nerfvae experiment cost") == 0
    result = json.loads((tmp_path / "cost.json").read_text())
    assert result["experiment"] == "cost"
    assert list(result["results"]) == ["1", "2", "all"]
    # two headline rows (NeRF-VAE, NeRF) per K and kind, copied from the results, for the summary
    headline = result["headline"]
    assert len(headline) == 3 * 2 * 2
    first, second = headline[0], headline[1]
    assert first["label"] == "NeRF-VAE, K=1, ID views"
    assert first["psnr"] == result["results"]["1"]["id"]["nerfvae"]["psnr"]
    assert second["label"] == "per-scene NeRF (3 steps), K=1, ID views"
    assert second["psnr"] == result["results"]["1"]["id"]["nerf"]["final_psnr"]
    assert second["note"].startswith("optimisation ")
    assert first["baseline_mean_train_psnr"] == second["baseline_mean_train_psnr"] is not None
    for entry in result["results"].values():
        for kind in ("id", "ood"):
            cell = entry[kind]
            vae, reach = cell["nerfvae"], cell["time_to_reach"]
            assert vae["s_per_scene"] == pytest.approx(
                vae["inference_s_per_scene"] + vae["render_s_per_view"]
            )
            assert cell["nerf"]["probe_is_all_targets"] is True
            assert isinstance(reach["reached"], bool)
            if reach["reached"]:
                assert 0 <= reach["step"] <= 3 and reach["wall_s_per_scene"] >= 0
                assert cell["speedup"] > 0
            else:
                assert reach["note"].startswith("not reached within 3 steps")
                assert reach["wall_s_per_scene"] is None and cell["speedup"] is None
            assert all(finite_or_null(v) for v in (*vae.values(), cell["speedup"]))
    assert result["views_provenance"]["command"].startswith("nerfvae experiment views")
    assert (tmp_path / "cost.png").stat().st_size > 0
    markdown = (tmp_path / "cost.md").read_text()
    assert "nerfvae experiment cost --views-json" in markdown and "all (4)" in markdown

    # A subset of the K; a K the views results lack is refused.
    assert context_views.run_cost([*argv, "--context", "2"], "cost") == 0
    assert list(json.loads((tmp_path / "cost.json").read_text())["results"]) == ["2"]
    with pytest.raises(ConfigError, match="hold only K = 1, 2, all"):
        context_views.run_cost([*argv, "--context", "3"], "cost")


def test_cost_computes_afresh(tiny_run: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    argv = [
        "--run", str(tiny_run), "--data", str(tiny_dataset), "--max-scenes", "1",
        "--context", "1", "--out", str(tmp_path), *TINY_NERF,
    ]  # fmt: skip
    assert context_views.run_cost(argv, "cost") == 0
    result = json.loads((tmp_path / "cost.json").read_text())
    assert result["source"] == "computed"
    assert result["view_lists"]["id_targets"] == [1, 2, 3, 4, 5]
    assert set(result["results"]["1"]) == {"k", "id", "ood"}
    assert result["provenance"]["runs"][0]["run"] == str(tiny_run)
    assert (tmp_path / "cost.png").exists() and (tmp_path / "cost.md").exists()


def test_cost_argument_errors(views_output: Path, tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="give --run and --data"):
        context_views.run_cost(["--run", str(tiny_run)], "cost")
    with pytest.raises(ConfigError, match="leave out --run"):
        context_views.run_cost(
            ["--views-json", str(views_output / "views.json"), "--run", "x"], "cost"
        )
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not a JSON file"):
        context_views.run_cost(["--views-json", str(broken)], "cost")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"results": {}}))
    with pytest.raises(ConfigError, match=r"not the views\.json"):
        context_views.run_cost(["--views-json", str(other)], "cost")


def test_context_parsing_and_resolution() -> None:
    assert context_views.parse_context_labels("3, 1,all") == ["3", "1", "all"]
    for bad in ("0", "a,2", " , ", "3,1,all,1", "all,all"):
        with pytest.raises(ConfigError, match="--context"):
            context_views.parse_context_labels(bad)
    # 10 ID views: `all` = all but the last 3 targets.
    assert context_views.resolve_context(["5", "all", "1"], 10, 3) == {"1": 1, "5": 5, "all": 7}
    # `all` equal to a numeric K keeps both labels.
    assert context_views.resolve_context(["7", "all"], 10, 3) == {"7": 7, "all": 7}
    assert context_views.resolve_context(["1", "3"], 6, 3) == {"1": 1, "3": 3}
    with pytest.raises(ConfigError, match="K = 8 exceeds `all` = 7"):
        context_views.resolve_context(["8", "all"], 10, 3)
    with pytest.raises(ConfigError, match="no context view would remain"):
        context_views.resolve_context(["all"], 6, 6)
    with pytest.raises(ConfigError, match="--id-targets must be at least 1"):
        context_views.resolve_context(["all"], 6, 0)
    with pytest.raises(ConfigError, match="at most 5 can be context"):
        context_views.resolve_context(["6"], 6, 3)
    assert probe_view_count(-1, 3, 5) == 5 and probe_view_count(2, 3, 5) == 2
    with pytest.raises(ConfigError, match="--probe-views"):
        probe_view_count(-2, 1, 0)


def test_views_bad_inputs(tiny_run: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    base = ["--run", str(tiny_run), "--data", str(tiny_dataset), "--skip-nerf"]
    with pytest.raises(ConfigError, match="at most 5 can be context"):
        context_views.run([*base, "--context", "1,6"], "views")
    with pytest.raises(ConfigError, match="--max-scenes"):
        context_views.run([*base, "--max-scenes", "0"], "views")
    with pytest.raises(DataError):
        context_views.run([*base, "--split", "nonexistent"], "views")
    with pytest.raises(DataError):
        context_views.run(["--run", str(tiny_run), "--data", str(tmp_path), "--skip-nerf"], "views")


HISTORY = [
    {"step": 0, "wall_s": 0.0, "cpu_s": 0.0, "probe_psnr_id": 10.0},
    {"step": 5, "wall_s": 1.0, "cpu_s": 0.5, "train_psnr": 12.0},  # no probe: ignored
    {"step": 10, "wall_s": 2.0, "cpu_s": 1.0, "probe_psnr_id": 14.0},
    {"step": 20, "wall_s": 6.0, "cpu_s": 3.0, "probe_psnr_id": 18.0},
    {"step": 40, "wall_s": 14.0, "cpu_s": 7.0, "probe_psnr_id": 17.0},
]


def test_time_to_reach_interpolates() -> None:
    # 16 dB lies halfway between the probes at steps 10 (14 dB, 2 s) and 20 (18 dB, 6 s).
    reach = context_views.time_to_reach(HISTORY, 16.0)
    assert reach["reached"] is True
    assert reach["step"] == pytest.approx(15.0)
    assert reach["wall_s"] == pytest.approx(4.0)
    assert reach["cpu_s"] == pytest.approx(2.0)
    # The first crossing counts, even though the curve later dips below it again.
    reach = context_views.time_to_reach(list(reversed(HISTORY)), 17.5)
    assert reach["step"] == pytest.approx(18.75) and reach["wall_s"] == pytest.approx(5.5)
    # Exactly on a probe; already reached at step 0.
    assert context_views.time_to_reach(HISTORY, 14.0)["wall_s"] == pytest.approx(2.0)
    reach = context_views.time_to_reach(HISTORY, 9.0)
    assert reach["reached"] and reach["step"] == 0 and reach["wall_s"] == 0
    # Never reached.
    reach = context_views.time_to_reach(HISTORY, 20.0)
    assert reach["reached"] is False and reach["wall_s"] is None and reach["step"] is None
    assert reach["note"] == "not reached within 40 steps (best 18.00 dB)"
    assert reach["best_psnr"] == 18.0 and reach["max_step"] == 40
    # No target; another probe key; no probe at all.
    assert context_views.time_to_reach(HISTORY, None)["reached"] is None
    assert context_views.time_to_reach(HISTORY, float("nan"))["reached"] is None
    with pytest.raises(DataError, match="probe_psnr_ood"):
        context_views.time_to_reach(HISTORY, 15.0, psnr_key="probe_psnr_ood")


# --- intervals over scenes and the claim NeRF-VAE − per-scene NeRF ---------------------------


def _contains(interval: dict, value: float) -> bool:
    return interval["low"] - 1e-9 <= value <= interval["high"] + 1e-9


def test_views_rows_carry_intervals_over_scenes(views_output: Path) -> None:
    from nerfvae.experiment_reports.claims import NO_PER_SCENE

    result = json.loads((views_output / "views.json").read_text())
    nerf_has_scenes = "per_scene" in result["models"]["nerf"]
    for entry in result["results"].values():
        for kind in ("id", "ood"):
            cell = entry[kind]
            for model in ("nerfvae", "mean_train_image", "mean_context_colour"):
                values = cell["per_scene"][model]["psnr"]
                assert len(values) == result["num_scenes"] == 1
                interval = cell["intervals"][model]["psnr"]
                assert set(interval) == {"mean", "low", "high", "count", "confidence"}
                assert interval["count"] == 1 and interval["confidence"] == 0.95
                assert _contains(interval, interval["mean"])
                assert interval["mean"] == pytest.approx(cell[model]["psnr"], abs=1e-6)
            claim = cell["nerfvae_minus_nerf"]["psnr"]
            assert claim["direction"] == "greater"
            assert claim["mean"] == pytest.approx(cell["nerfvae"]["psnr"] - cell["nerf"]["psnr"])
            if nerf_has_scenes:
                differences = [
                    a - b
                    for a, b in zip(
                        cell["per_scene"]["nerfvae"]["psnr"], cell["per_scene"]["nerf"]["psnr"]
                    )
                ]
                assert claim["difference"]["mean"] == pytest.approx(sum(differences) / 1)
            else:  # the per-scene NeRF's evaluation records no per-scene values
                assert claim["difference"] is None and claim["verdict"] == NO_PER_SCENE
    assert len(result["claims"]) == 3 * 2
    assert result["claims"][0]["comparison"] == "NeRF-VAE − per-scene NeRF, K=1, ID views"
    markdown = (views_output / "views.md").read_text()
    assert "NeRF-VAE − NeRF PSNR (paired) | verdict" in markdown
    assert "95% bootstrap interval over scenes" in markdown
    vae = result["results"]["1"]["id"]["intervals"]["nerfvae"]["psnr"]
    assert f"[{vae['low']:.2f}, {vae['high']:.2f}]" in markdown


def _evaluation(psnr: dict[str, list[float]], k: int = 1) -> dict:
    """A hand-made `nerfvae eval` result at one K: per kind the per-scene PSNRs (SSIM = PSNR/100)
    and their means."""
    results, per_scene = {}, {}
    for kind, values in psnr.items():
        ssim = [value / 100 for value in values]
        results[kind] = {
            "psnr": sum(values) / len(values), "ssim": sum(ssim) / len(ssim),
            "baseline_mean_train_psnr": 15.0, "num_views": 2 * len(values),
        }  # fmt: skip
        per_scene[kind] = {"psnr": values, "ssim": ssim, "baseline_mean_train_psnr": [15.0] * 6}
    return {
        "view_lists": {"context": {str(k): list(range(k))}},
        "results": {str(k): results},
        "per_scene": {str(k): per_scene},
    }


STRONG = [20.0, 23.5, 18.0, 21.0, 25.0, 19.5]  # scenes differ by far more than the models
WEAK = [19.6, 23.0, 17.7, 20.4, 24.6, 19.0]  # below STRONG on every scene


def test_views_paired_difference_and_its_verdict_flips_when_the_models_swap(
    views_output: Path,
) -> None:
    from nerfvae.experiment_reports.claims import NO_PER_SCENE

    vae, nerf = _evaluation({"id": STRONG}), _evaluation({"id": WEAK})
    cell = context_views.summarise({"1": 1}, vae, nerf)["1"]["id"]
    claim = cell["nerfvae_minus_nerf"]["psnr"]
    differences = [a - b for a, b in zip(STRONG, WEAK)]
    assert claim["difference"]["mean"] == pytest.approx(sum(differences) / len(differences))
    assert claim["mean"] == pytest.approx(claim["difference"]["mean"])
    assert claim["difference"]["count"] == 6 and claim["verdict"] == "holds"
    # the rows' own intervals overlap widely: only the paired difference shows it
    assert cell["intervals"]["nerf"]["psnr"]["high"] > cell["intervals"]["nerfvae"]["psnr"]["low"]
    assert cell["intervals"]["mean_train_image"]["psnr"]["mean"] == 15.0
    swapped = context_views.summarise({"1": 1}, nerf, vae)["1"]["id"]["nerfvae_minus_nerf"]
    assert swapped["psnr"]["verdict"] == "not shown"
    assert swapped["psnr"]["difference"]["mean"] == pytest.approx(-claim["difference"]["mean"])

    # the markdown of a result holding them: mean [low, high] per row, the paired column, verdict
    result = json.loads((views_output / "views.json").read_text())
    for first, second, verdict in ((vae, nerf, "| holds |"), (nerf, vae, "| not shown |")):
        result["results"] = context_views.summarise({"1": 1}, first, second)
        result["claims"] = context_views.views_claims(result)
        markdown = "\n".join(views_report.views_markdown(result))
        row = next(line for line in markdown.splitlines() if line.startswith("| 1 | ID |"))
        assert verdict in row and NO_PER_SCENE not in row
        strong = cell["intervals"]["nerfvae"]["psnr"]  # in the NeRF-VAE or, swapped, NeRF column
        assert f"[{strong['low']:.2f}, {strong['high']:.2f}]" in row
        assert result["claims"][0]["verdict"] == verdict.strip("| ")


def test_views_json_without_per_scene_values_reads_as_not_shown(views_output: Path) -> None:
    """A views.json saved before the per-scene values: means without intervals, no verdict."""
    from nerfvae.experiment_reports.claims import NO_PER_SCENE

    result = json.loads((views_output / "views.json").read_text())
    result.pop("claims")
    for entry in result["results"].values():
        for kind in ("id", "ood"):
            for key in ("per_scene", "intervals", "nerfvae_minus_nerf"):
                entry[kind].pop(key)
    markdown = "\n".join(views_report.views_markdown(result))
    rows = [line for line in markdown.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert rows and all(NO_PER_SCENE in row for row in rows[:4])
    assert all("[" not in row for row in rows)
    claims = context_views.views_claims(result)
    assert [claim["verdict"] for claim in claims] == [NO_PER_SCENE] * 6
    assert all(claim["difference"] is None for claim in claims)
    cell = result["results"]["1"]["id"]
    assert claims[0]["mean"] == pytest.approx(cell["nerfvae"]["psnr"] - cell["nerf"]["psnr"])


def test_merged_nerf_results_keep_their_per_scene_values(views_output: Path) -> None:
    nerf = json.loads((views_output / "views.json").read_text())["models"]["nerf"]
    nerf["per_scene"] = {k: {"id": {"psnr": [float(k)]}} for k in ("1", "2", "4")}
    parts = []
    for ks in (["1"], ["2", "4"]):
        part = json.loads(json.dumps(nerf))
        for key in ("results", "timing", "history", "per_scene"):
            part[key] = {k: v for k, v in part[key].items() if k in ks}
        part["view_lists"]["context"] = {k: nerf["view_lists"]["context"][k] for k in ks}
        parts.append((Path(f"{ks[0]}.json"), part))
    merged = context_views.merge_nerf_results(parts)
    assert merged["per_scene"] == nerf["per_scene"]
    for _, part in parts:
        part.pop("per_scene")  # older baseline JSONs: none recorded, none claimed
    assert "per_scene" not in context_views.merge_nerf_results(parts)


def test_views_to_match_finds_the_fewest_nerf_views(views_output: Path) -> None:
    """The NeRF 'matches' at the smallest K whose mean PSNR reaches NeRF-VAE's; none when no K
    of the sweep does."""
    result = json.loads((views_output / "views.json").read_text())
    assert {(row["label"], row["kind"]) for row in result["views_to_match"]} == {
        (label, kind) for label in ("1", "2", "all") for kind in ("id", "ood")
    }
    psnr = {"1": (20.0, 15.0), "2": (21.0, 19.0), "all": (22.0, 21.5)}  # label: (NeRF-VAE, NeRF)
    for label, (vae, nerf) in psnr.items():
        result["results"][label]["id"]["nerfvae"]["psnr"] = vae
        result["results"][label]["id"]["nerf"]["psnr"] = nerf
    rows = {
        row["label"]: row for row in context_views.views_to_match(result) if row["kind"] == "id"
    }
    # K = 1: 20 dB is not reached by the NeRF at K = 1 or 2 (15, 19), first at `all` (21.5)
    first = rows["1"]
    assert (first["nerf_label"], first["nerf_k"], first["nerf_psnr"]) == ("all", 4, 21.5)
    assert first["nerf_fit_s_per_scene"] == result["timing"]["all"]["nerf"]["fit_s_per_scene"]
    assert rows["2"]["nerf_k"] == 4  # 21 dB: reached at `all` only
    assert rows["all"]["nerf_k"] is None and rows["all"]["largest_k_tried"] == 4  # 22 > 21.5
    result["results"]["1"]["id"]["nerf"]["psnr"] = 20.0  # equal counts as a match
    assert context_views.views_to_match(result)[0]["nerf_k"] == 1
    blocks = views_report.match_section(result | {"views_to_match": [rows["all"]]})
    text = "\n".join(context_views.md.document("views", *blocks))
    assert "not within K ≤ 4" in text
    assert "Views the per-scene NeRF needs" in (views_output / "views.md").read_text()
