"""The Hugging Face Hub in and out: ``hf-hub:`` names, timm's repository layout, ``push_to_hub``.

Nothing downloads: each test lays out a huggingface_hub cache (``models--ORG--NAME/{refs/main,snapshots/REV}``)
under a temporary ``HF_HUB_CACHE`` with ``HF_HUB_OFFLINE=1``, timm-format folders come from timm's own saver, and
the upload API is a fake that keeps what it was sent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from synthetic_data import write_fmnist_like

import hybridvision as hv
from hybridvision.config import parse_overrides, resolve
from hybridvision.engine import RunDir

huggingface_hub = pytest.importorskip("huggingface_hub")
hub_constants = pytest.importorskip("huggingface_hub.constants")  # submodules: the package loads them lazily
hub_errors = pytest.importorskip("huggingface_hub.errors")

REVISION = "0123456789abcdef0123456789abcdef01234567"  # a commit hash, as the cache names snapshots


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty huggingface_hub cache, offline: the environment a fresh process reads, and the constants this
    one already read when huggingface_hub was imported."""
    root = tmp_path / "hf-cache"
    root.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    return root


def lay_out(cache: Path, repo_id: str, files: Path) -> Path:
    """Put the files of folder ``files`` in ``cache`` as huggingface_hub keeps a downloaded repository."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    shutil.copytree(files, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot


@pytest.fixture
def uploads(tmp_path, monkeypatch) -> SimpleNamespace:
    """HfApi's repository creation and folder upload replaced by a fake that copies what it is sent."""
    sent = SimpleNamespace(folder=tmp_path / "sent", repos=[], commits=[])

    def create_repo(self, repo_id, **kw):
        sent.repos.append((repo_id, kw))
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, *, repo_id, folder_path, **kw):
        shutil.copytree(folder_path, sent.folder)
        sent.commits.append((repo_id, kw))
        return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/{REVISION}")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    return sent


def logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


# ---- In: timm's repositories


@pytest.fixture(scope="module")
def timm_coatnet(timm, tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    """timm's CoAtNet-nano (at 64 px: a quick forward) and its Hub folders by timm's saver, in both weight files."""
    from conftest import _randomize_batchnorms
    from timm.models._hub import save_for_hf

    theirs = timm.create_model("coatnet_nano_rw_224", num_classes=10, img_size=64).eval()
    _randomize_batchnorms(theirs)
    root = tmp_path_factory.mktemp("timm-repos")
    for safe in (True, False):
        save_for_hf(theirs, root / str(safe), safe_serialization=safe)
    return theirs, root


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "pytorch_model.bin"])
def test_a_timm_coatnet_repository_loads_into_ours(timm_coatnet, cache, safe):
    theirs, root = timm_coatnet
    assert {p.name for p in (root / str(safe)).iterdir()} == {
        "config.json",
        "model.safetensors" if safe else "pytorch_model.bin",
    }
    lay_out(cache, "timm-user/coatnet-nano", root / str(safe))

    ours = hv.load_model("hf-hub:timm-user/coatnet-nano")
    assert ours.model_name == "coatnet_nano_rw_224" and ours.num_classes == 10 and ours.config.img_hw == (64, 64)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(logits(ours, x), logits(theirs, x), atol=1e-5, rtol=0)  # the parity tolerance
    if safe:
        fresh = hv.create_model("hf-hub:timm-user/coatnet-nano")  # no weights without pretrained=True, as in timm
        assert fresh.num_classes == 10 and not torch.equal(fresh.head.fc.weight, ours.head.fc.weight)


def test_a_timm_model_without_a_twin_here_is_named(cache, tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "config.json").write_text(json.dumps({"architecture": "resnet50.a1_in1k", "num_classes": 3}))
    lay_out(cache, "timm-user/resnet", tmp_path / "repo")
    with pytest.raises(hv.CheckpointError, match="timm's 'resnet50.a1_in1k' has no twin in hybridvision") as e:
        hv.create_model("hf-hub:timm-user/resnet")
    assert "coatnet_nano_rw_224" in str(e.value) and "timm.create_model" in str(e.value)


# ---- Out and back in


def test_push_uploads_weights_config_and_card_that_load_back_exactly(timm, cache, uploads, randomize_batchnorms):
    import hybridvision.timm  # noqa: F401  (registers our models in timm)

    model = hv.create_model("coatnet_test", num_classes=4, drop_path_rate=0.1).eval()
    randomize_batchnorms(model)
    url = hv.push_to_hub(model, "me/tiny", private=True)
    assert url == f"https://huggingface.co/me/tiny/commit/{REVISION}"
    assert uploads.repos == [("me/tiny", {"private": True, "exist_ok": True})]
    assert sorted(p.name for p in uploads.folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((uploads.folder / "config.json").read_text())
    assert (config["model"], config["architecture"], config["num_classes"]) == (
        "coatnet_test",
        "hybridvision_coatnet_test",
        4,
    )
    assert config["model_args"] == {"num_classes": 4, "drop_path_rate": 0.1}
    weights = load_file(uploads.folder / "model.safetensors")
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    card = (uploads.folder / "README.md").read_text()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert "license: apache-2.0" in card and f"**Parameters:** {params:.2f} M" in card
    macs = hv.macs.model_cost("coatnet_test", num_classes=4).macs / 1e9
    assert f"**MACs:** {macs:.3g} G at 3x64x64" in card and 'hv.load_model("hf-hub:me/tiny")' in card

    lay_out(cache, "me/tiny", uploads.folder)
    x = torch.randn(2, 3, 64, 64)
    expected = logits(model, x)
    assert torch.equal(logits(hv.load_model("hf-hub:me/tiny"), x), expected)
    assert torch.equal(logits(hv.create_model("hf-hub:me/tiny", pretrained=True), x), expected)
    in_timm = timm.create_model("hf-hub:me/tiny", pretrained=True)
    assert torch.equal(logits(in_timm, x), expected)
    assert type(in_timm) is type(model) and in_timm.num_classes == 4


def test_timm_s_own_saver_writes_our_models_so_that_timm_and_we_load_them(timm, cache, tmp_path):
    from timm.models._hub import save_for_hf

    import hybridvision.timm  # noqa: F401

    model = timm.create_model("hybridvision_efficientmod_test", num_classes=3).eval()
    save_for_hf(model, tmp_path / "repo", safe_serialization=True)
    assert (
        json.loads((tmp_path / "repo" / "config.json").read_text())["architecture"] == "hybridvision_efficientmod_test"
    )
    lay_out(cache, "me/saved-by-timm", tmp_path / "repo")
    x = torch.randn(1, 3, 64, 64)
    for loaded in (
        timm.create_model("hf-hub:me/saved-by-timm", pretrained=True),
        hv.load_model("hf-hub:me/saved-by-timm"),
        hv.load_model(tmp_path / "repo"),  # a local folder in timm's layout
    ):
        assert torch.equal(logits(loaded, x), logits(model, x))


def test_a_fused_model_round_trips_fused(cache, uploads, randomize_batchnorms):
    model = hv.create_model("ascan_test", num_classes=5).eval()
    randomize_batchnorms(model)
    model.fuse()
    hv.push_to_hub(model, "me/fused")
    lay_out(cache, "me/fused", uploads.folder)
    loaded = hv.load_model("hf-hub:me/fused")
    x = torch.randn(1, 3, 64, 64)
    assert loaded.fused and torch.equal(logits(loaded, x), logits(model, x))
    assert "fused for inference" in (uploads.folder / "README.md").read_text()


# ---- A run folder


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished two-step classification run (coatnet_test on Fashion-MNIST-like data, one channel)."""
    from hybridvision.classify import TrainConfig, train

    data = write_fmnist_like(tmp_path_factory.mktemp("fmnist"), train=64, test=32)
    flags = ["--model", "coatnet_test", "--data.root", str(data), "--out_dir", str(tmp_path_factory.mktemp("runs"))]
    flags += ["--run_name", "tiny", "--threads", "1", "--batch_size", "16", "--max_steps", "2", "--epochs", "1"]
    flags += ["--eval_batch_size", "32", "--budget_minutes", "0", "--amp", "off", "--progress", "false"]
    flags += ["--tensorboard", "false", "--data.mean", "0.25", "--data.std", "0.5"]
    return train(resolve(TrainConfig, None, parse_overrides(flags))).run_dir


def test_a_run_is_pushed_with_its_recipe_results_and_ema_weights(timm, run, cache, uploads):
    import hybridvision.timm  # noqa: F401

    hv.push_to_hub(run, "me/run")
    names = sorted(p.name for p in uploads.folder.iterdir())
    assert names == ["README.md", "config.json", "config.yaml", "model.safetensors", "summary.json"]
    assert (uploads.folder / "config.yaml").read_text() == (run / "config.yaml").read_text()
    assert (uploads.folder / "summary.json").read_text() == (run / "summary.json").read_text()
    ema = load_file(run / "final" / "model_ema.safetensors")
    pushed = load_file(uploads.folder / "model.safetensors")
    assert pushed.keys() == ema.keys() and all(torch.equal(pushed[k], ema[k]) for k in ema)

    config = json.loads((uploads.folder / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert config["task"] == "classification" and config["label_names"] == summary["classes"]
    cfg = config["pretrained_cfg"]
    assert (cfg["mean"], cfg["std"], cfg["input_size"]) == ([0.25], [0.5], [1, 32, 32])  # the run's, not ImageNet's
    card = (uploads.folder / "README.md").read_text()
    assert f"| top1 | {summary['top1']} |" in card and "## Training recipe" in card
    assert "hybridvision train --config config.yaml" in card and "EMA weights (final weights of the run tiny)" in card

    lay_out(cache, "me/run", uploads.folder)
    x = torch.randn(2, 1, 32, 32)
    from_run, _ = RunDir(run).load_model()
    loaded = hv.load_model("hf-hub:me/run")
    assert torch.equal(logits(loaded, x), logits(from_run, x))
    assert (loaded.pretrained_cfg["mean"], loaded.pretrained_cfg["std"]) == ((0.25,), (0.5,))  # normalise as trained
    data = timm.data.resolve_model_data_config(timm.create_model("hf-hub:me/run", pretrained=True))
    assert (data["mean"], data["std"], data["input_size"]) == ((0.25,), (0.5,), (1, 32, 32))


def test_a_run_can_push_its_raw_weights(run, uploads):
    hv.push_to_hub(run, "me/raw", use_ema=False, license="mit")
    raw = load_file(run / "final" / "model.safetensors")
    pushed = load_file(uploads.folder / "model.safetensors")
    assert all(torch.equal(pushed[k], raw[k]) for k in raw)
    card = (uploads.folder / "README.md").read_text()
    assert "license: mit" in card and "**Weights:** weights (final weights of the run tiny)" in card


def test_a_saved_folder_is_pushed_without_a_recipe(run, uploads):
    hv.push_to_hub(run / "final", "me/folder")
    assert sorted(p.name for p in uploads.folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (uploads.folder / "README.md").read_text()
    assert "EMA weights of the saved folder final" in card and "## Results" not in card and "## Training" not in card


# ---- Offline, and what a user is told


def test_missing_repository_or_file_offline_is_one_line_saying_what_to_do(cache, tmp_path):
    with pytest.raises(hv.CheckpointError) as e:
        hv.load_model("hf-hub:nobody/nothing")
    message = str(e.value)
    assert "\n" not in message and "config.json is not in the Hugging Face cache" in message
    assert "HF_HUB_OFFLINE is set" in message and "hf download nobody/nothing" in message and str(cache) in message

    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "config.json").write_text(json.dumps({"model": "coatnet_test", "overrides": {}}))
    lay_out(cache, "me/no-weights", tmp_path / "repo")
    assert hv.create_model("hf-hub:me/no-weights").model_name == "coatnet_test"  # the config alone builds it
    with pytest.raises(hv.CheckpointError, match=r"^hf-hub:me/no-weights: model.safetensors is not in the Hugging"):
        hv.create_model("hf-hub:me/no-weights", pretrained=True)
    with pytest.raises(hv.CheckpointError, match="write it as 'hf-hub:ORG/NAME'"):
        hv.create_model("hf-hub:no-org")


def hub_error(cls: type) -> Exception:
    """An error of huggingface_hub's as its HTTP layer raises it (built without a response: only its type counts)."""
    error = cls.__new__(cls)
    Exception.__init__(error, "404 Client Error")
    return error


@pytest.mark.parametrize(
    "error, said",
    [
        ("RepositoryNotFoundError", "no model repository 'me/x' on the Hub, or it is private or gated"),
        ("RevisionNotFoundError", "repository 'me/x' has no revision 'v2' (a branch, tag or commit)"),
        ("RemoteEntryNotFoundError", "repository 'me/x' has no config.json; is it a hybridvision or timm model"),
    ],
)
def test_what_the_hub_answers_is_one_line(monkeypatch, error, said):
    from hybridvision import hub

    def refuse(*args, **kwargs):
        raise hub_error(getattr(hub_errors, error))

    monkeypatch.setattr(hub, "hf_hub_download", refuse)
    with pytest.raises(hv.CheckpointError, match="^" + re.escape(f"hf-hub:me/x@v2: {said}")) as e:
        hv.load_model("hf-hub:me/x@v2")
    assert "\n" not in str(e.value)


def test_a_refused_upload_is_one_line(monkeypatch):
    def refuse(self, repo_id, **kwargs):
        raise hub_error(hub_errors.HfHubHTTPError)

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", refuse)
    with pytest.raises(hv.CheckpointError, match=r"^pushing to me/x failed \(404 Client Error\); check your login"):
        hv.push_to_hub(hv.create_model("coatnet_test"), "me/x")


def test_pushing_offline_is_one_line(cache):
    with pytest.raises(hv.CheckpointError, match="^pushing to me/x needs the network, but HF_HUB_OFFLINE is set"):
        hv.push_to_hub(hv.create_model("coatnet_test"), "me/x")


def test_a_fresh_process_reads_the_cache_its_environment_names(cache, uploads, tmp_path):
    model = hv.create_model("efficientmod_test", num_classes=2).eval()
    hv.push_to_hub(model, "me/env")
    lay_out(cache, "me/env", uploads.folder)
    x = torch.randn(1, 3, 64, 64)
    torch.save(x, tmp_path / "x.pt")
    script = (
        "import sys, torch, hybridvision as hv\n"
        "assert 'huggingface_hub' not in sys.modules, 'import hybridvision loaded huggingface_hub'\n"
        f"m = hv.load_model('hf-hub:me/env').eval()\n"
        f"torch.save(m(torch.load({str(tmp_path / 'x.pt')!r})), {str(tmp_path / 'y.pt')!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)  # env: the fixture's
    assert done.returncode == 0, done.stderr[-2000:]
    assert torch.equal(torch.load(tmp_path / "y.pt"), logits(model, x))
