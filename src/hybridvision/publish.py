"""A model or a run on the Hugging Face Hub: ``push_to_hub(RUN_OR_MODEL, "ORG/NAME")``.

The repository is in timm's layout with a model card:

- ``model.safetensors``: one set of weights (a run's EMA weights when it kept them, unless ``use_ema=False``);
- ``config.json``: our fields and timm's (``architecture``, ``num_classes``, ``pretrained_cfg``, ``model_args``,
  ``label_names``), so ``hybridvision.load_model("hf-hub:ORG/NAME")``, ``create_model("hf-hub:ORG/NAME",
  pretrained=True)`` and, once ``hybridvision.timm`` is imported, ``timm.create_model("hf-hub:ORG/NAME",
  pretrained=True)`` all rebuild it; a run's description rides along (task, class names);
- ``README.md``: the model card (architecture, parameters, MACs, weights, license; for a run its results and
  recipe);
- for a run, its recipe and result file as the run wrote them: ``config.yaml`` and ``summary.json``.

``write_repo`` writes the same files to a folder without uploading them (to read them first, or to upload them
with ``hf upload``). A run's mean/std (``data.mean``/``data.std`` of its recipe) become the ``pretrained_cfg``'s, so
timm's ``resolve_data_config`` normalises as the run trained.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint import HUB_PREFIX
from .engine.rundir import RunDir, open_model
from .factory import TIMM_PREFIX, model_config_dict, save_pretrained
from .fileio import save_text
from .macs import count_params, model_cost
from .registry import get_entry

LICENSE = "apache-2.0"  # the default license of what is pushed (timm's default; the library's own)
# The command that trains each task's recipe (the card says how to reproduce a run).
TRAIN_COMMANDS = {
    "classification": "hybridvision train",
    "segmentation": "hybridvision seg train",
    "detection": "hybridvision det train",
    "diffusion": "hybridvision diffusion train",
}


def push_to_hub(
    source: str | Path | nn.Module,
    repo_id: str,
    *,
    use_ema: bool = True,
    license: str = LICENSE,
    private: bool = False,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Add model",
    create_pr: bool = False,
) -> str:
    """Upload a model, a ``save_pretrained`` folder or a run's folder to Hub model repository ``repo_id``.

    Args:
        source: a model made by ``create_model``, a saved folder, or a run's folder (its final weights, else
            its newest verified checkpoint; its recipe and result file go along).
        repo_id: ``"ORG/NAME"``; created when missing (``private`` then applies).
        use_ema: push the EMA weights where the folder has them (default), else the raw ones.
        license: the model card's license (a Hub license id).
        private: create a new repository as private.
        token: a Hub token (default: huggingface_hub's login, or ``HF_TOKEN``).
        revision: the branch to push to (default: the default branch).
        commit_message: the commit's message.
        create_pr: open a pull request instead of committing to the branch.

    Returns:
        The address of the commit (or pull request). Failures (offline, no login, no write access) are one
        ``CheckpointError`` line.
    """
    from . import hub  # huggingface_hub loads only when something is pushed

    with tempfile.TemporaryDirectory() as tmp:
        write_repo(source, tmp, repo_id=repo_id, use_ema=use_ema, license=license)
        return hub.upload(
            tmp,
            repo_id,
            token=token,
            private=private,
            revision=revision,
            commit_message=commit_message,
            create_pr=create_pr,
        )


def write_repo(
    source: str | Path | nn.Module, folder: str | Path, *, repo_id: str, use_ema: bool = True, license: str = LICENSE
) -> Path:
    """Write the files ``push_to_hub`` uploads to ``folder`` (see the module's docstring); returns the folder."""
    folder = Path(folder)
    run = RunDir(source) if not isinstance(source, nn.Module) and RunDir(source).is_run() else None
    model, info, weights = _open(source, use_ema)
    recipe = run.config_dict() if run is not None else {}
    config = repo_config(model, info, recipe, license)
    save_pretrained(model, folder, extra=config)
    if run is not None:
        run.copy_record(folder, (RunDir.CONFIG, RunDir.SUMMARY))
    card = model_card(model, config, repo_id=repo_id, weights=weights, license=license, run=run)
    save_text(card, folder / "README.md")
    return folder


def _open(source: str | Path | nn.Module, use_ema: bool) -> tuple[nn.Module, dict[str, Any], str]:
    """The model to push, its saved description ({} for a model in memory) and which weights these are."""
    if isinstance(source, nn.Module):
        return source, {}, "the weights of the model as pushed"
    saved = open_model(source)
    ema = use_ema and saved.has_ema
    kind = "EMA weights" if ema else "weights"
    if not RunDir(source).is_run():
        return saved.load(use_ema=ema), saved.info, f"{kind} of the saved folder {Path(source).name}"
    where = "final weights" if saved.folder.name == RunDir.FINAL else f"checkpoint {saved.folder.name}"
    return saved.load(use_ema=ema), saved.info, f"{kind} ({where} of the run {Path(source).name})"


def repo_config(model: nn.Module, info: dict[str, Any], recipe: dict[str, Any], license: str) -> dict[str, Any]:
    """``config.json`` of the repository: the model's fields (ours and timm's) over its saved description, with
    timm's ``label_names`` from the class names and the recipe's mean/std and the license in ``pretrained_cfg``."""
    config = {**info, **model_config_dict(model)}
    classes = info.get("classes")
    if isinstance(classes, list) and len(classes) == config.get("num_classes"):
        config["label_names"] = classes
    if "pretrained_cfg" in config:
        data = recipe.get("data") if isinstance(recipe.get("data"), dict) else {}
        normalise = {k: list(data[k]) for k in ("mean", "std") if isinstance(data.get(k), list | tuple)}
        config["pretrained_cfg"] = {**config["pretrained_cfg"], **normalise, "license": license}
    return config


def model_card(
    model: nn.Module, config: dict[str, Any], *, repo_id: str, weights: str, license: str, run: RunDir | None
) -> str:
    """The repository's ``README.md``: Hub metadata, then the model's facts, a run's results and recipe, usage."""
    task = config.get("task") or ("classification" if "pretrained_cfg" in config else "")
    lines = _front_matter(license, task)
    lines += [f"# {repo_id.rpartition('/')[2]}", "", *_details(model, config, weights, license)]
    if run is not None and run.summary_file.is_file():
        lines += ["", "## Results", "", f"From the run's result file, [`{RunDir.SUMMARY}`]({RunDir.SUMMARY}):", ""]
        lines += _results_table(run.read_summary())
    if run is not None and run.config_file.is_file():
        lines += ["", "## Training recipe", "", f"The run's resolved config, [`{RunDir.CONFIG}`]({RunDir.CONFIG}):"]
        lines += ["", "```yaml", run.config_file.read_text().rstrip(), "```"]
        if task in TRAIN_COMMANDS:
            lines += ["", f"Train it again with `{TRAIN_COMMANDS[task]} --config {RunDir.CONFIG}`."]
    lines += ["", *_usage(repo_id, timm="pretrained_cfg" in config)]
    return "\n".join(lines) + "\n"


def _front_matter(license: str, task: str) -> list[str]:
    tags = ["hybridvision", "timm", "image-classification"] if task == "classification" else ["hybridvision"]
    lines = ["---", "library_name: hybridvision", f"license: {license}", "tags:", *[f"- {t}" for t in tags]]
    if task == "classification":
        lines.append("pipeline_tag: image-classification")
    return [*lines, "---", ""]


def _details(model: nn.Module, config: dict[str, Any], weights: str, license: str) -> list[str]:
    name, overrides = config["model"], config.get("overrides", {})
    card = getattr(model, "card", {})
    entry = get_entry(name)
    about = f": {entry.description}" if entry.description else ""
    lines = [f"A hybridvision {entry.family} model, `{name}`{about}.", "", "## Model details", ""]
    lines.append(f"- **Architecture:** `{name}`" + (f" with {_args(overrides)}" if overrides else ""))
    if "architecture" in config:
        lines.append(f"- **timm name:** `{TIMM_PREFIX}{name}` (with `import hybridvision.timm`)")
    lines.append(f"- **Parameters:** {count_params(model) / 1e6:.2f} M")
    lines.append(_macs_line(name, overrides, "pretrained_cfg" in config))
    if "pretrained_cfg" in config:
        cfg = config["pretrained_cfg"]
        size = "x".join(str(v) for v in cfg["input_size"])
        lines.append(f"- **Input:** {size}, mean {tuple(cfg['mean'])}, std {tuple(cfg['std'])}")
        named = " (`label_names` in config.json)" if config.get("label_names") else ""
        lines.append(f"- **Classes:** {config['num_classes']}{named}")
    lines.append(f"- **Weights:** {weights}" + (", fused for inference" if config.get("fused") else ""))
    if card.get("timm_twin"):
        lines.append(f"- **timm twin:** `{card['timm_twin']}` (same weights layout)")
    lines.append(f"- **License:** {license}")
    return lines


def _args(overrides: dict[str, Any]) -> str:
    return ", ".join(f"`{k}={v!r}`" for k, v in overrides.items())


def _macs_line(name: str, overrides: dict[str, Any], backbone: bool) -> str:
    """MACs of one image at the model's input size (backbones; a task model's depend on more than its input)."""
    if not backbone:
        return "- **MACs:** not counted (a task model's work depends on more than its input size)"
    cost = model_cost(name, **overrides)
    size = "x".join(str(v) for v in cost.input_shape[1:])
    return f"- **MACs:** {cost.macs / 1e9:.3g} G at {size}"


def _results_table(summary: dict[str, Any]) -> list[str]:
    """The result file's numbers (scores, steps, times), one row each."""
    rows = [(k, v) for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    return ["| key | value |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in rows]]


def _usage(repo_id: str, timm: bool) -> list[str]:
    name = f"{HUB_PREFIX}{repo_id}"
    lines = ["## Usage", "", "```python", "import hybridvision as hv", "", f'model = hv.load_model("{name}").eval()']
    lines += ["```"]
    if timm:
        lines += [
            "",
            "In timm:",
            "",
            "```python",
            "import timm",
            "",
            "import hybridvision.timm  # registers the models",
        ]
        lines += ["", f'model = timm.create_model("{name}", pretrained=True).eval()', "```"]
    return lines
