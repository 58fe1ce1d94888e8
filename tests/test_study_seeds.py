"""The pre-registered seed rule on fabricated records: the points of close comparisons (baseline included) get
the extra seeds, decided from the first seeds alone; ``--dry-run`` lists them from the records; the study runner
trains exactly those runs after the first round and tables them; a rule-less study adds nothing."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

import hybridvision.study as study_pkg
from hybridvision.cli.main import main
from hybridvision.config import dump_yaml, to_dict
from hybridvision.study import PointConfig, StudyConfig, grid, make_plan, read_finished, run_study, with_extra_seeds
from hybridvision.study.config import ExtraSeedsConfig
from hybridvision.study.seeds import seed_rule

FIRST = {  # top-1 over seeds 0, 1, 2: near is 0.07 pp from ref (pooled SD 0.18), far 1.97 pp
    "ref": [90.0, 90.2, 89.9],
    "near": [90.1, 89.9, 90.3],
    "far": [92.0, 92.1, 91.9],
    "other": [88.0, 88.3, 87.8],
}


def fabricated_study(tmp_path: Path, **changes) -> StudyConfig:
    recipe = {"data": {"root": str(tmp_path / "data")}, "img_size": 32, "epochs": 1, "budget_minutes": 0}
    points = tuple(PointConfig(label, "coatnet_test") for label in FIRST)
    fields = dict(
        name="fab",
        recipe=recipe,
        points=points,
        seeds=(0, 1, 2),
        out_dir=str(tmp_path / "runs"),
        results_dir=str(tmp_path / "results"),
        run_minutes=0.01,
        overhead_minutes=0.01,
        equivalence_margin_pp=0.5,
        comparisons=(("far", "other"),),  # 4.0 pp apart: not close
        extra_seeds=ExtraSeedsConfig(within_sd=2, seeds=5),
    )
    return StudyConfig(**{**fields, **changes})


def write_record(plan, label: str, seed: int, top1: float) -> None:
    """A finished run's record as the study leaves it: its summary and its saved config."""
    record = plan.record_dir(plan.point(label), seed)
    record.mkdir(parents=True, exist_ok=True)
    (record / "config.yaml").write_text(dump_yaml(plan.run_config(plan.point(label), seed)))
    summary = {"top1": top1, "ema_top1": top1, "train_img_s": 100.0, "epochs": 1.0, "train_s": 1.0}
    (record / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def plan(tmp_path):
    plan = make_plan(fabricated_study(tmp_path))
    for label, values in FIRST.items():
        for seed, top1 in enumerate(values):
            write_record(plan, label, seed, top1)
    return plan


def test_the_rule_sends_close_comparisons_to_five_seeds_baseline_included(plan):
    decided = with_extra_seeds(plan, read_finished(plan))
    assert decided.extra == {"ref": (3, 4), "near": (3, 4)}
    assert decided.seeds_of("near") == (0, 1, 2, 3, 4) and decided.seeds_of("far") == (0, 1, 2)
    assert len(decided.runs) == 4 * 3 + 2 * 2
    rule = {(e["a"], e["b"]): e for e in seed_rule(plan.study, read_finished(plan))}
    assert rule["near", "ref"]["close"] and not rule["far", "ref"]["close"] and not rule["far", "other"]["close"]
    assert rule["near", "ref"]["diff"] == pytest.approx(0.1 / 3 * 2)


def test_unfinished_first_seeds_decide_nothing_and_no_rule_adds_nothing(plan, tmp_path):
    (plan.record_dir(plan.point("near"), 2) / "summary.json").unlink()
    assert with_extra_seeds(plan, read_finished(plan)).extra == {}  # near vs ref undecided until seed 2 is in
    rule = {(e["a"], e["b"]): e["close"] for e in seed_rule(plan.study, read_finished(plan))}
    assert rule["near", "ref"] is None and rule["far", "ref"] is False
    off = make_plan(fabricated_study(tmp_path, extra_seeds=ExtraSeedsConfig()))
    assert with_extra_seeds(off, read_finished(plan)).extra == {}


def test_dry_run_lists_the_points_the_rule_sends_to_more_seeds(plan, tmp_path, capsys):
    path = tmp_path / "fab.yaml"
    path.write_text(dump_yaml(to_dict(plan.study)))
    assert main(["study", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "near vs ref: |+0.07| = 0.37 pooled SDs: close, 5 seeds" in out
    assert "far vs other:" in out and "not close" in out
    assert "more seeds for: ref (seeds 3,4), near (seeds 3,4)" in out
    assert "16 runs (4 points x seeds 0,1,2 + 4 by the seed rule)" in out
    assert not (tmp_path / "runs" / "fab").exists()  # a dry run trains and writes nothing


def test_the_runner_trains_the_extra_seeds_after_the_first_round(plan, monkeypatch):
    """With every first seed recorded, running the study trains the four extra runs only, then tables them. The
    extra seeds are drawn far off (95%) so that, were they read by the rule, it would decide otherwise: it
    does not."""
    trained = []

    def fake_train(cfg):
        trained.append(cfg.run_name)
        label, seed = cfg.run_name.rsplit("-s", 1)
        write_record(plan, label, int(seed), 95.0)
        return types.SimpleNamespace(
            summary=json.loads((plan.record_dir(plan.point(label), int(seed)) / "summary.json").read_text())
        )

    monkeypatch.setattr(grid, "train", fake_train)
    monkeypatch.setattr(grid, "write_record", lambda run_dir, record: None)  # fake_train wrote the record
    speed = {label: {"latency_ms": 1.0, "throughput_img_s": 100.0} for label in FIRST}
    monkeypatch.setattr(study_pkg, "measure_speed", lambda plan: speed)
    run_study(plan)
    assert trained == ["ref-s3", "ref-s4", "near-s3", "near-s4"]
    table = json.loads((Path(plan.study.results_dir) / "table.json").read_text())
    rows = {r["label"]: r for r in table["rows"]}
    assert rows["near"]["n"] == 5 and rows["near"]["top1"] == [*FIRST["near"], 95.0, 95.0]
    assert rows["far"]["n"] == 3 and table["extra_seeds"] == {"ref": [3, 4], "near": [3, 4]}
    assert with_extra_seeds(plan, read_finished(plan)).extra == {"ref": (3, 4), "near": (3, 4)}  # unchanged
    run_study(plan)  # everything finished: nothing more is trained
    assert len(trained) == 4


def test_rejudge_reads_the_records_and_the_measured_speed_and_trains_and_times_nothing(plan, monkeypatch):
    """--rejudge: the table again from the records, the speed columns taken from the existing table.json; no
    table there yet is one clear line naming the command that measures the speed."""
    from hybridvision.config import ConfigError
    from hybridvision.study import rejudge

    with pytest.raises(ConfigError, match=r"no table.json in .* aggregate once with --aggregate-only"):
        rejudge(plan)
    monkeypatch.setattr(grid, "train", lambda cfg: pytest.fail(f"{cfg.run_name} was trained"))
    speed = {label: {"latency_ms": 2.0, "throughput_img_s": 50.0 + i} for i, label in enumerate(FIRST)}
    monkeypatch.setattr(study_pkg, "measure_speed", lambda plan: speed)
    study_pkg.aggregate(plan)  # the first table, with its speed measurement (faked)
    first = json.loads((Path(plan.study.results_dir) / "table.json").read_text())
    monkeypatch.setattr(study_pkg, "measure_speed", lambda plan: pytest.fail("speed measured again"))
    rejudge(plan)
    again = json.loads((Path(plan.study.results_dir) / "table.json").read_text())
    assert [r["throughput_img_s"] for r in again["rows"]] == [50.0, 51.0, 52.0, 53.0]
    assert again["rows"] == first["rows"] and again["comparisons"] == first["comparisons"]
    assert again["environment"] == first["environment"]
