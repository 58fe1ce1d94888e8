"""``hybridvision study``: a two-point, two-seed grid of test variants runs, resumes after an interruption
(only what is missing is trained; finished runs' files stay untouched), and aggregates (the table equals the
runs' summaries); over-budget grids are refused; param matching lands within its tolerance; the committed
study configs resolve within their budgets. Tiny synthetic data, a few steps per run, 1 thread."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from scipy import stats as sp
from synthetic_data import write_fmnist_like

import hybridvision as hv
from hybridvision.cli.main import main
from hybridvision.cli.study import print_plan
from hybridvision.config import ConfigError, dump_yaml, to_dict
from hybridvision.engine.checkpoint import checkpoint_dirs
from hybridvision.engine.rundir import RunDir
from hybridvision.study import (
    PointConfig,
    SpeedConfig,
    StudyConfig,
    is_finished,
    load_study,
    make_plan,
    read_finished,
    run_study,
    with_extra_seeds,
)
from hybridvision.study.aggregate import point_rows
from hybridvision.study.config import ExtraSeedsConfig
from hybridvision.study.grid import _changes, check_budget, grid_lock

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "study"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_fmnist_like(tmp_path_factory.mktemp("fmnist"), train=96, test=48)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_study(data: Path, out: Path, **changes) -> StudyConfig:
    recipe = {
        "data": {"root": str(data)},
        "img_size": 32,
        "epochs": 1,
        "budget_minutes": 0,
        "max_steps": 4,
        "ckpt_every": 1,
        "keep_ckpts": 5,
        "batch_size": 16,
        "eval_batch_size": 48,
        "amp": "off",
        "progress": False,
        "tensorboard": False,
        "threads": 1,
    }
    fields = dict(
        name="tiny",
        recipe=recipe,
        points=(PointConfig("a", "coatnet_test"), PointConfig("b", "ascan_test")),
        seeds=(0, 1),
        out_dir=str(out),
        run_minutes=0.01,
        overhead_minutes=0.01,
        speed=SpeedConfig(batch_size=4, rounds=1, seconds=0.01),
    )
    return StudyConfig(**{**fields, **changes})


def snapshot(run: Path) -> dict[str, tuple[int, bytes]]:
    """Every file of a run directory with its modification time and bytes."""
    return {str(p.relative_to(run)): (p.stat().st_mtime_ns, p.read_bytes()) for p in run.rglob("*") if p.is_file()}


class Stop(Exception):
    pass


def stop_after_first_run(index, total, point, seed, status):
    if status == "start" and index == 1:
        raise Stop  # the grid is interrupted between its first and second run


def test_grid_runs_resumes_and_aggregates(data, tmp_path):
    plan = make_plan(tiny_study(data, tmp_path))
    with pytest.raises(Stop):
        run_study(plan, report=stop_after_first_run)
    first = plan.run_dir(plan.points[0], 0)
    assert is_finished(first) and not (tmp_path / "tiny" / "a-s1").exists()
    before = snapshot(first)

    table = run_study(plan)  # continues: trains the three missing runs only
    assert snapshot(first) == before
    runs = {(p.label, s): plan.run_dir(p, s) for p, s in plan.runs}
    assert all(is_finished(r) for r in runs.values())

    # A run killed midway: its final weights, summary and newest checkpoint are lost; the rest is kept.
    killed = runs["b", 1]
    shutil.rmtree(killed / "final")
    (killed / "summary.json").unlink()
    shutil.rmtree(checkpoint_dirs(killed)[0])
    others = {k: snapshot(r) for k, r in runs.items() if r != killed}
    run_study(plan)
    assert {k: snapshot(r) for k, r in runs.items() if r != killed} == others
    assert json.loads((killed / "summary.json").read_text())["steps"] == 4

    # The aggregate equals the runs' summaries.
    summaries = {k: json.loads((r / "summary.json").read_text()) for k, r in runs.items()}
    rows = {r["label"]: r for r in json.loads((tmp_path / "tiny" / "table.json").read_text())["rows"]}
    for label in ("a", "b"):
        top1 = [summaries[label, s]["top1"] for s in (0, 1)]
        assert rows[label]["top1"] == top1
        assert rows[label]["top1_mean"] == pytest.approx(statistics.fmean(top1))
        assert rows[label]["top1_std"] == pytest.approx(statistics.stdev(top1))
        assert rows[label]["params"] == summaries[label, 0]["params"]  # counted on the meta device beforehand
        assert rows[label]["train_img_s"] == pytest.approx(
            statistics.fmean(summaries[label, s]["train_img_s"] for s in (0, 1))
        )
        assert rows[label]["throughput_img_s"] > 0 and rows[label]["latency_ms"] > 0
    diff = rows["b"]["top1_mean"] - rows["a"]["top1_mean"]  # the test, from the per-seed values themselves
    if statistics.stdev(rows["b"]["top1"]) + statistics.stdev(rows["a"]["top1"]) > 0:
        p = sp.ttest_ind(rows["b"]["top1"], rows["a"]["top1"], equal_var=False).pvalue  # one comparison: Holm = p
        assert rows["b"]["p"] == pytest.approx(p) and rows["b"]["p_holm"] == pytest.approx(p)
        expected = "inconclusive" if p >= 0.05 else "better" if diff > 0 else "worse"  # no margin: never equivalent
        assert rows["b"]["verdict"] == expected
    assert rows["a"]["verdict"] == "reference"
    assert rows["b"]["vs_baseline"] == pytest.approx(diff)
    assert rows["b"]["speed_ratio"] == pytest.approx(rows["b"]["throughput_img_s"] / rows["a"]["throughput_img_s"])
    assert (tmp_path / "tiny" / "accuracy_vs_throughput.png").stat().st_size > 0
    assert "| a | coatnet_test |" in table.read_text()
    assert summaries["a", 0]["precision"] == "fp32"  # what amp resolved to, recorded per run
    assert f"Trained on: {summaries['a', 0]['environment']['device']}, " in table.read_text()
    assert ", 1 threads, fp32 (4 runs)" in table.read_text()  # every run's host, counted

    # The same grid asked for with another recipe: an error naming the change, before anything is trained.
    changed = make_plan(dataclasses.replace(plan.study, recipe={**plan.study.recipe, "batch_size": 8}))
    with pytest.raises(ConfigError, match="batch_size: 16 -> 8"):
        run_study(changed)


def test_records_in_results_dir_carry_a_grid_to_a_fresh_clone(data, tmp_path, monkeypatch):
    """Each finished run leaves its summary, config and logs in results_dir/runs; with out_dir empty (another
    machine, a fresh clone) those runs are read from there, only a run without a record is trained, and a changed
    recipe is refused against the records as against the runs."""
    from hybridvision.study import grid

    results = tmp_path / "results"
    plan = make_plan(tiny_study(data, tmp_path / "runs", results_dir=str(results)))
    run_study(plan)
    for point, seed in plan.runs:
        record, run_dir = plan.record_dir(point, seed), plan.run_dir(point, seed)
        assert sorted(p.name for p in record.iterdir()) == sorted(RunDir.RECORD)
        assert (record / "summary.json").read_bytes() == (run_dir / "summary.json").read_bytes()
    table = json.loads((results / "table.json").read_text())["rows"]

    shutil.rmtree(tmp_path / "runs")  # a fresh clone: the committed records only
    trained = []
    real_train = grid.train
    monkeypatch.setattr(grid, "train", lambda cfg: trained.append(cfg.run_name) or real_train(cfg))
    run_study(plan)
    assert trained == []
    again = json.loads((results / "table.json").read_text())["rows"]
    assert [(r["label"], r["top1"]) for r in again] == [(r["label"], r["top1"]) for r in table]

    shutil.rmtree(results / "runs" / "b-s1")  # a deleted record is trained again, and recorded again
    run_study(plan)
    assert trained == ["b-s1"] and grid.has_record(results / "runs" / "b-s1")

    changed = make_plan(dataclasses.replace(plan.study, recipe={**plan.study.recipe, "batch_size": 8}))
    with pytest.raises(ConfigError, match="batch_size: 16 -> 8"):
        run_study(changed)


def test_a_point_reads_the_same_runs_from_another_studys_records(data, tmp_path, monkeypatch):
    """``same_runs_as`` names another study's records of the very same runs: they are read, not trained again, and
    not copied; a point whose settings differ from those records is an error naming the difference."""
    from hybridvision.study import grid

    first = make_plan(tiny_study(data, tmp_path / "runs", results_dir=str(tmp_path / "one")))
    run_study(first)
    shared = str(tmp_path / "one" / "runs" / "a-s{seed}")
    points = (PointConfig("ref", "coatnet_test", same_runs_as=shared), PointConfig("c", "ascan_test"))
    two = tiny_study(data, tmp_path / "runs", name="two", points=points, results_dir=str(tmp_path / "two"))
    second = make_plan(two)
    assert second.estimate_minutes(only_missing=True) < second.estimate_minutes()  # the shared runs count as done
    trained = []
    real_train = grid.train
    monkeypatch.setattr(grid, "train", lambda cfg: trained.append(cfg.run_name) or real_train(cfg))
    run_study(second)
    assert trained == ["c-s0", "c-s1"]
    assert not (tmp_path / "two" / "runs" / "ref-s0").exists()
    rows = {r["label"]: r for r in json.loads((tmp_path / "two" / "table.json").read_text())["rows"]}
    ones = {r["label"]: r for r in json.loads((tmp_path / "one" / "table.json").read_text())["rows"]}
    assert rows["ref"]["top1"] == ones["a"]["top1"]

    # Settings that differ from the shared records: refused before anything trains, naming same_runs_as.
    other = (
        PointConfig("c", "ascan_test"),
        PointConfig("ref", "coatnet_test", {"drop_path_rate": 0.1}, same_runs_as=shared),
    )
    third = make_plan(tiny_study(data, tmp_path / "runs", name="three", points=other))
    with pytest.raises(ConfigError, match=r"reads seed 0 from .*same_runs_as.*drop_path_rate.*remove same_runs_as"):
        run_study(third)
    assert not (tmp_path / "runs" / "three" / "c-s0").exists()
    # Shared records not there (that study not run yet, or another directory): refused, not trained here instead.
    missing = (points[1], PointConfig("ref", "coatnet_test", same_runs_as=str(tmp_path / "none" / "a-s{seed}")))
    fourth = make_plan(tiny_study(data, tmp_path / "runs", name="four", points=missing))
    with pytest.raises(ConfigError, match=r"has none for seed 0\. Run that study first"):
        run_study(fourth)
    assert trained == ["c-s0", "c-s1"] and not list((tmp_path / "runs" / "four").glob("*-s*"))
    with pytest.raises(ValueError, match="must contain {seed}"):
        PointConfig("x", "coatnet_test", same_runs_as="results/runs/a-s0")


def test_a_record_is_held_to_its_length_but_not_to_where_the_data_lived(data, tmp_path, monkeypatch):
    """A record cut short by max_steps is not a full run (max_steps may change only when resuming an unfinished
    run); a record made on another machine, where the built-in data set lives elsewhere, is the same run."""
    from hybridvision.study import grid

    plan = make_plan(tiny_study(data, tmp_path / "runs", results_dir=str(tmp_path / "results")))
    run_study(plan)
    shutil.rmtree(tmp_path / "runs")  # another machine: the records only
    record = tmp_path / "results" / "runs" / "a-s0" / "config.yaml"
    saved = yaml.safe_load(record.read_text())
    record.write_text(yaml.safe_dump({**saved, "data": {**saved["data"], "root": "/elsewhere/fashion-mnist"}}))
    monkeypatch.setattr(grid, "train", lambda cfg: pytest.fail(f"{cfg.run_name} was trained again"))
    run_study(plan)  # read, not refused and not trained
    record.write_text(yaml.safe_dump({**saved, "max_steps": 2}))
    with pytest.raises(ConfigError, match=r"a-s0 was trained with other settings \(max_steps: 2 -> 4\)"):
        run_study(plan)


def test_an_epoch_budgeted_grid_states_its_run_minutes(data, tmp_path):
    with pytest.raises(ConfigError, match="budgeted in epochs .* state run_minutes"):
        make_plan(tiny_study(data, tmp_path, run_minutes=0))


def test_over_budget_grid_is_refused_before_anything_runs(data, tmp_path):
    study = tiny_study(data, tmp_path, recipe={"data": {"root": str(data)}, "budget_minutes": 8}, budget_minutes=20)
    with pytest.raises(
        ValueError, match=r"about 32 min \(2 points x 2 seeds, each \(8 min training .*budget_minutes of 20"
    ):
        run_study(make_plan(study))
    assert not (tmp_path / "tiny").exists()


def test_matched_params_land_within_tolerance():
    layouts = {"ref": "C-CT-CT-CT", "all_c": "C-CC-CC-CC", "t_late": "C-C-TT-TT"}
    points = tuple(PointConfig(k, "ascan_test", {"layout": v}) for k, v in layouts.items())
    plan = make_plan(StudyConfig(name="m", points=points, match_params=True))
    ref = plan.point("ref").params
    for p in plan.points:
        assert abs(p.params / ref - 1) <= 0.10, (p.label, p.params, ref)
        assert p.matched == (p.label != "ref")
    # Without matching the all-C layout is far off, so the matching did the work; T stages split into heads.
    unmatched = make_plan(StudyConfig(name="u", points=points)).point("all_c").params
    assert abs(unmatched / ref - 1) > 0.10
    dims = plan.point("t_late").kwargs["dims"]
    assert all(d % 16 == 0 for d in dims[2:])


@pytest.mark.parametrize("name", ["ascan_layouts", "ascan_blocks", "families", "ascan_blocks_matched", "effmod_block"])
def test_committed_studies_resolve_within_budget(name, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(CONFIGS.parents[1])  # base_recipe paths are relative to the repository root
    study = load_study(CONFIGS / f"{name}.yaml")
    plan = make_plan(study)  # every point builds (meta device); matched widths found
    check_budget(plan)
    # Epoch-budgeted, fp32 and under 10 minutes a run: a run's accuracy does not depend on the host's speed.
    assert len(study.seeds) >= 2 and plan.recipe.budget_minutes == 0 and plan.recipe.amp == "off"
    assert 0 < study.run_minutes <= 10
    # The test's margin and the seed rule are stated in every committed study, and the rule's extra seeds (as the
    # committed records decide them) fit its budget.
    assert study.equivalence_margin_pp == 0.5 and study.alpha == 0.05
    assert study.extra_seeds == ExtraSeedsConfig(within_sd=2, seeds=5)
    check_budget(with_extra_seeds(plan, read_finished(plan)))
    # One recipe for all three studies, so that their shared reference runs are the same runs.
    layouts = make_plan(load_study(CONFIGS / "ascan_layouts.yaml"))
    assert to_dict(plan.recipe) == to_dict(layouts.recipe)
    for p in plan.points:
        if p.same_runs_as:
            assert p.same_runs_as == "results/study/study_ascan_layouts/runs/asym-s{seed}"
            saved = tmp_path / "asym-s0"  # what a finished asym run of study 1 saves, checked as a shared record
            saved.mkdir(exist_ok=True)
            (saved / "config.yaml").write_text(dump_yaml(layouts.run_config(layouts.point("asym"), 0)))
            assert _changes(plan.run_config(p, 0), saved, finished=True) == ""
    for p in plan.points:
        if p.matched:
            assert abs(p.params / plan.point(p.baseline).params - 1) <= study.param_tolerance
    print_plan(plan)  # what --dry-run prints
    assert "within" in capsys.readouterr().out


def test_e1_on_one_stem_dry_run_plans_its_runs(capsys, monkeypatch):
    """configs/study/effmod_block.yaml: --dry-run plans 2 points x 3 seeds on ascan_nano's macro design; the two
    points share the stem, layout and recipe and differ in the C block, the modulation point's widths matched to
    the ConvNeXt point's params."""
    monkeypatch.chdir(CONFIGS.parents[1])
    path = CONFIGS / "effmod_block.yaml"
    assert main(["study", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "6 runs (2 points x seeds 0,1,2)" in out and "(matched)" in out
    plan = make_plan(load_study(path))
    conv, mod = plan.point("plain_conv"), plan.point("modulation")
    assert mod.matched and mod.baseline == "plain_conv" and abs(mod.params / conv.params - 1) <= 0.10
    a, b = (hv.get_config(p.model, **p.kwargs) for p in (conv, mod))
    assert (a.conv_block, b.conv_block) == ("convnext", "modulation")
    macro = (("CC", "CCCC", "CCCC", "CCCC"), (16, 24), 1)  # layout, stem widths, stem stride: ascan_nano's stem
    assert [(c.layout, c.stem_dims, c.stem_stride) for c in (a, b)] == [macro, macro]
    runs = [to_dict(plan.run_config(p, 0)) for p in (conv, mod)]
    recipes = [{k: v for k, v in r.items() if k not in ("run_name", "model_kwargs")} for r in runs]
    assert recipes[0] == recipes[1] and recipes[0]["model"] == "ascan_nano"  # one recipe, one model family


def test_a_fractional_modulation_ratio_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(CONFIGS.parents[1])
    study = yaml.safe_load((CONFIGS / "effmod_block.yaml").read_text())
    study["points"][1]["model_kwargs"]["expand_ratio"] = 2.5
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["study", str(path), "--dry-run"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: ascan_nano: conv_block 'modulation' needs a whole expand_ratio (its value branch is r times the "
        "block width), got 2.5; set expand_ratio to a whole number such as 4"
    ]


def test_cli_dry_run_and_overrides(data, tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    study = tiny_study(data, tmp_path)
    path.write_text(yaml.safe_dump(to_dict(study)))
    assert main(["study", str(path), "--dry-run", "--seeds", "3,4", "--recipe.budget_minutes", "2"]) == 0
    out = capsys.readouterr().out
    assert "4 runs (2 points x seeds 3,4)" in out and "(2 min training" in out
    assert not (tmp_path / "tiny").exists()


def test_a_second_process_never_trains_the_same_grid(data, tmp_path):
    plan = make_plan(tiny_study(data, tmp_path))
    lock = plan.study.study_dir / ".lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(str(os.getppid()))  # a live process holds the grid
    with pytest.raises(FileExistsError, match=f"pid {os.getppid()}"):
        run_study(plan)
    assert not plan.run_dir(plan.points[0], 0).exists()
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    lock.write_text(str(dead.pid))  # left by a killed process: taken over
    with grid_lock(plan.study.study_dir):
        assert lock.read_text() == str(os.getpid())
    assert not lock.exists()


def test_study_records_are_not_git_ignored():
    """The records under results/study/study_<name>/runs/ are committed; an ignore rule for `runs/` must not hide
    them."""
    root = CONFIGS.parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout: the ignore rules cannot be asked")
    record = "results/study/study_ascan_layouts/runs/asym-s0/summary.json"
    ignored = subprocess.run(["git", "check-ignore", "-q", record], cwd=root, check=False).returncode == 0
    assert not ignored, f"{record} is git-ignored: anchor the ignore rule to the repository root (/runs/)"
    assert subprocess.run(["git", "check-ignore", "-q", "runs/x"], cwd=root, check=False).returncode == 0


@pytest.mark.parametrize(
    "shift, expected",
    [(1.0, "better"), (-1.0, "worse"), (0.0, "equivalent"), (0.05, "equivalent")],
)
def test_the_verdict_of_simulated_seeds_with_a_known_difference(data, tmp_path, shift, expected):
    """Five seeds per point drawn around 90% with a spread of 0.1 pp; point b is a's seeds shifted by ``shift`` pp
    plus their own noise. A shift of 10 spreads is called; none, or half a spread, is equivalent within the 0.5 pp
    margin."""
    gen = torch.Generator().manual_seed(0)
    seeds = (0, 1, 2, 3, 4)
    plan = make_plan(tiny_study(data, tmp_path / "runs", seeds=seeds, equivalence_margin_pp=0.5))
    base = 90 + 0.1 * torch.randn(len(seeds), generator=gen, dtype=torch.float64)
    other = base + shift + 0.1 * torch.randn(len(seeds), generator=gen, dtype=torch.float64)

    def summary(top1: float) -> dict:
        return {"top1": top1, "ema_top1": top1, "train_img_s": 100.0, "epochs": 1.0, "train_s": 1.0}

    summaries = {("a", s): summary(float(v)) for s, v in zip(seeds, base)}
    summaries |= {("b", s): summary(float(v)) for s, v in zip(seeds, other)}
    speed = {"a": {"throughput_img_s": 100.0}, "b": {"throughput_img_s": 103.0}}
    rows = {r["label"]: r for r in point_rows(plan, summaries, speed)[0]}
    b = rows["b"]
    assert b["vs_baseline"] == pytest.approx(float(other.mean() - base.mean()))
    assert b["p"] == pytest.approx(sp.ttest_ind(other.numpy(), base.numpy(), equal_var=False).pvalue)
    assert abs(b["vs_baseline"] - shift) < 0.2  # the difference the seeds were drawn with
    assert b["verdict"] == expected and rows["a"]["verdict"] == "reference"
    standings = {"better": "dominates", "worse": "dominated", "equivalent": "equivalent"}
    assert b["standing"] == standings.get(expected, expected)
