"""Config values from flags and files: signed numbers and exponents in lists, YAML/JSON mistakes as one line,
and the one validation vocabulary (``check``, ``one_of``, ``parse_device``) every config speaks."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from hybridvision.bench.config import BenchConfig
from hybridvision.classify.config import EvalConfig, TrainConfig
from hybridvision.cli.main import main
from hybridvision.config import ConfigError, at_least, check, in_unit, one_of, parse_device, replace
from hybridvision.engine.distributed import pick_device


@dataclass(frozen=True)
class Knobs:
    ratios: tuple[float, ...] = (1.0,)
    betas: tuple[float, float] = (0.9, 0.999)
    steps: tuple[int, ...] = (1,)
    layout: tuple[str, ...] = ("CC",)
    names: tuple[str, ...] = ()
    size: int | tuple[int, int] = 8
    lr: float = 1e-3
    epochs: int = 1


@pytest.mark.parametrize(
    "key, text, expected",
    [
        ("ratios", "0.5,-1", (0.5, -1.0)),  # was (0.5, 1.0): the minus read as a separator
        ("ratios", "-0.5", (-0.5,)),  # --data.mean=-0.5 was 0.5
        ("ratios", "1.1,-3.6", (1.1, -3.6)),  # --sample.ramp
        ("ratios", "0.5 -1", (0.5, -1.0)),
        ("ratios", "[0.5, -1]", (0.5, -1.0)),  # YAML's list form
        ("betas", "0.9,9.99e-1", (0.9, 0.999)),  # was "expected float, got '9.99e'"
        ("betas", "+0.5,1E-3", (0.5, 0.001)),
        ("steps", "-3,+4,1_000", (-3, 4, 1000)),
        ("size", "-64", -64),
        ("size", "64,-48", (64, -48)),
        ("layout", "CC-CCCT-CTTT", ("CC", "CCCT", "CTTT")),  # layouts still split on dashes
        ("names", "T-shirt/top,Trouser", ("T-shirt/top", "Trouser")),  # a list with commas keeps its dashes
        ("lr", "-1e-3", -0.001),
        ("epochs", "-2", -2),
    ],
)
def test_flag_values_keep_their_signs_and_exponents(key, text, expected):
    assert getattr(replace(Knobs(), **{key: text}), key) == expected


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("lr", "nan", "lr: expected a finite number, got 'nan'"),
        ("lr", "-inf", "lr: expected a finite number, got '-inf'"),
        ("lr", float("inf"), "lr: expected a finite number, got inf"),  # YAML's .inf
        ("ratios", "1,inf", "ratios: expected a finite number, got 'inf'"),
        ("betas", "0.9,9.99e", "betas: expected float, got '9.99e'"),
        ("lr", True, "lr: expected float, got True"),  # YAML's yes
        ("epochs", "1.5", "epochs: expected int, got '1.5'"),
        ("epochs", 2.5, "epochs: expected int, got 2.5"),
        ("ratios", "[0.5, -1", "--ratios, line 1, column 9: expected ',' or ']'"),
    ],
)
def test_what_is_not_a_finite_number_is_refused_by_name(key, value, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        replace(Knobs(), **{key: value})


def test_signed_lists_reach_every_task_config_through_the_cli(capsys):
    assert main(["train", "--dry-run", "--data.mean=-0.5", "--optim.betas", "0.9,9.99e-1"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["data"]["mean"] == [-0.5] and cfg["optim"]["betas"] == [0.9, 0.999]
    assert main(["train", "--dry-run", "--data.mean", "-0.5"]) == 0  # the value as its own word
    assert yaml.safe_load(capsys.readouterr().out)["data"]["mean"] == [-0.5]
    # Negative values that a config then refuses: the message shows the sign was read.
    assert main(["seg", "train", "--dry-run", "--infer.ratios", "0.5,-1"]) == 2
    assert "infer.ratios must be positive and finite, got (0.5, -1.0)" in capsys.readouterr().err
    assert main(["diffusion", "train", "--dry-run", "--sample.ramp", "1.1,-3.6"]) == 2
    assert "sample.ramp's scales must be finite and >= 0" in (err := capsys.readouterr().err)
    assert "got (1.1, -3.6)" in err
    assert main(["train", "--dry-run", "--optim.lr", "nan"]) == 2
    assert "optim.lr: expected a finite number, got 'nan'" in capsys.readouterr().err


# ---- YAML and JSON mistakes: one line naming the file, the place and the fix; exit 2

MALFORMED = {
    "unclosed.yaml": (
        "epochs: 3\noptim: {lr: [0.1\n",
        "line 3, column 1: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence from "
        "line 2, column 13); check the brackets",
    ),
    "indent.yaml": ("optim:\n  lr: 0.1\n warmup_lr: 0\n", "line 3, column 2:"),
    "tag.yaml": ("epochs: !!python/object/apply:os.system ['touch pwned']\n", "remove the tag"),
    "broken.json": ('{"epochs": 3,\n "seed": }\n', "line 2, column 10: Expecting value; check the JSON syntax"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_config_file_is_one_line_naming_where_and_the_fix(tmp_path, capsys, monkeypatch, name):
    text, where = MALFORMED[name]
    path = tmp_path / name
    path.write_text(text)
    monkeypatch.chdir(tmp_path)
    for argv in (["train", "--dry-run", "--config", str(path)], ["study", str(path), "--dry-run"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}, ") and where in err and err.count("\n") == 1, err
    assert not (tmp_path / "pwned").exists()  # the tag was never constructed


def test_a_run_whose_saved_config_is_malformed_is_one_line_on_resume(tmp_path, capsys):
    text, where = MALFORMED["unclosed.yaml"]
    saved = tmp_path / "runs" / "r" / "config.yaml"
    saved.parent.mkdir(parents=True)
    saved.write_text(text)
    argv = [
        "train",
        "--out_dir",
        str(tmp_path / "runs"),
        "--run_name",
        "r",
        "--resume",
        "auto",
        "--budget_minutes",
        "0",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {saved}, ") and where in err and err.count("\n") == 1, err
    assert saved.read_text() == text  # nothing written over it


def test_malformed_mapping_flags_and_tags_exit_cleanly_in_a_fresh_process(tmp_path):
    (tmp_path / "tag.yaml").write_text(MALFORMED["tag.yaml"][0])
    commands = [
        ["train", "--dry-run", "--model_kwargs", "{dims: [32, 64"],
        ["seg", "train", "--dry-run", "--config", "tag.yaml"],
        ["study", "tag.yaml", "--dry-run"],
    ]
    errors = []
    for argv in commands:
        proc = subprocess.run(
            [sys.executable, "-m", "hybridvision", *argv], capture_output=True, text=True, cwd=tmp_path
        )
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
        errors.append(proc.stderr)
    assert "--model_kwargs, line 1, column 15: expected ',' or ']'" in errors[0]
    assert not (tmp_path / "pwned").exists()


# ---- One validation vocabulary


def test_the_vocabulary_raises_config_errors_that_name_the_key():
    with pytest.raises(ConfigError, match="^x must be > 0, got -1$"):
        check(False, "x must be > 0, got -1")
    cfg = Knobs(lr=-1.0, epochs=0)
    with pytest.raises(ConfigError, match=r"^optim\.lr must be >= 0, got -1.0$"):
        at_least(cfg, 0, "lr", prefix="optim.")
    with pytest.raises(ConfigError, match=r"^aug\.lr must be in \[0, 1\], got -1.0$"):
        in_unit(cfg, "epochs", "lr", prefix="aug.")
    with pytest.raises(ConfigError, match="^amp must be one of auto, bf16, off, got 'bf61'. Did you mean 'bf16'"):
        one_of("amp", "bf61", ("auto", "bf16", "off"))
    with pytest.raises(ConfigError, match=r"^pool must be one of avg, '', got 3$"):
        one_of("pool", 3, ("avg", ""))


@pytest.mark.parametrize(
    "text, parsed",
    [("auto", ("auto", None)), ("cpu", ("cpu", None)), ("cuda", ("cuda", None)), ("cuda:1", ("cuda", 1))],
)
def test_device_strings_parse_one_way(text, parsed):
    assert parse_device(text) == parsed


@pytest.mark.parametrize(
    "text, message",
    [
        ("gpu", "device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        ("cuda:x", "device must be auto, cpu, cuda or cuda:N, got 'cuda:x'"),
        (" cpu", "device must be auto, cpu, cuda or cuda:N, got ' cpu'"),
        ("cpu:0", "device: only cuda takes an index"),
    ],
)
def test_every_reader_of_device_strings_refuses_alike(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_device(text)
    with pytest.raises(ConfigError, match=message):
        TrainConfig(device=text)  # a run
    with pytest.raises(ConfigError, match=message):
        EvalConfig(device=text)  # an evaluation
    with pytest.raises(ConfigError, match=message):
        pick_device(text)  # what evaluation, prediction and generation call
    with pytest.raises(ConfigError, match=message.replace("auto, ", "")):
        BenchConfig(device=text)  # the benchmark names its device


def test_auto_is_for_runs_not_benchmarks():
    assert TrainConfig(device="auto").device == "auto" and pick_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="device must be cpu, cuda or cuda:N, got 'auto'"):
        BenchConfig(device="auto")
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available; use --device cpu"):
            pick_device("cuda:0")


ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p for task in ("train", "seg", "det", "diffusion") for p in (ROOT / "configs" / task).glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_committed_recipe_states_where_its_settings_were_chosen(path):
    """A reader must know whether a recipe's numbers carry a selection on the split they are reported on."""
    stated = yaml.safe_load(path.read_text()).get("selected_on", "")
    assert stated and stated.split()[0] in ("val", "paper", "test", "held-out", "validation", "none"), stated
