"""The Hugging Face Hub in and out, through ``huggingface_hub``: files of a model repository, and uploads.

A repository is named as timm names it, ``hf-hub:ORG/NAME`` (``@REVISION`` picks a branch, tag or commit).
Its files come through huggingface_hub's cache and obey its settings: ``HF_HUB_CACHE`` (where the cache is,
default ``~/.cache/huggingface/hub``), ``HF_HUB_OFFLINE=1`` (read the cache only, never the network) and
``HF_TOKEN`` (private and gated repositories). A file that is neither cached nor reachable is one
``CheckpointError`` line saying what to do.

The layout is timm's: ``config.json`` next to ``model.safetensors`` (timm's older repositories hold
``pytorch_model.bin``, read with ``torch.load(weights_only=True)``). ``factory.create_model("hf-hub:...")`` reads
both our ``config.json`` and timm's; ``publish.push_to_hub`` writes a repository and ``upload`` sends it.

huggingface_hub is an optional dependency; ``factory`` imports this module only for an ``hf-hub:`` name, so
``import hybridvision`` never loads it.
"""

from __future__ import annotations

from pathlib import Path

try:
    from huggingface_hub import HfApi, constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        LocalTokenNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
except ImportError as e:
    raise ImportError(
        f"hf-hub: models need huggingface_hub ({e}). Install it with `pip install -c constraints.txt huggingface_hub`."
    ) from e

from .checkpoint import CONFIG_NAME, HUB_PREFIX, TIMM_BIN_NAME, WEIGHTS_NAME, CheckpointError

LIBRARY = "hybridvision"  # how our uploads and downloads introduce themselves to the Hub


def split_name(name: str) -> tuple[str, str | None]:
    """``hf-hub:ORG/NAME@REV`` -> ``("ORG/NAME", "REV")`` (revision None: the default branch)."""
    repo, _, revision = name.removeprefix(HUB_PREFIX).partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise CheckpointError(
            f"{name!r} is not a Hub model name; write it as 'hf-hub:ORG/NAME' (or 'hf-hub:ORG/NAME@REV')"
        )
    return repo, revision or None


def config_folder(name: str) -> Path:
    """The cached folder holding the repository's ``config.json`` (fetched when the cache lacks it)."""
    return download(name, CONFIG_NAME).parent


def weights(name: str) -> Path:
    """The cached folder holding the repository's weights, ``model.safetensors`` or timm's older
    ``pytorch_model.bin`` (fetched when the cache lacks them), read like a ``save_pretrained`` folder."""
    try:
        return download(name, WEIGHTS_NAME).parent
    except _NoFile as first:
        try:
            return download(name, TIMM_BIN_NAME).parent
        except _NoFile:
            raise CheckpointError(str(first)) from None


class _NoFile(CheckpointError):
    """The file is not in the repository, or not in the cache while the Hub is out of reach."""


def download(name: str, filename: str) -> Path:
    """``filename`` of repository ``name`` in huggingface_hub's cache (downloaded unless offline)."""
    repo, revision = split_name(name)
    try:
        return Path(hf_hub_download(repo, filename, revision=revision, library_name=LIBRARY))
    except LocalEntryNotFoundError:  # not cached, and offline or the Hub unreachable
        raise _NoFile(_not_cached(name, filename)) from None
    except RepositoryNotFoundError:  # also gated repositories without access
        raise CheckpointError(
            f"{name}: no model repository {repo!r} on the Hub, or it is private or gated. Check the name; for a "
            "private or gated one, log in with `hf auth login` (or set HF_TOKEN) with access to it"
        ) from None
    except RevisionNotFoundError:
        raise CheckpointError(
            f"{name}: repository {repo!r} has no revision {revision!r} (a branch, tag or commit)"
        ) from None
    except EntryNotFoundError:
        raise _NoFile(
            f"{name}: repository {repo!r} has no {filename}; is it a hybridvision or timm model repository?"
        ) from None


def _not_cached(name: str, filename: str) -> str:
    offline = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hub cannot be reached"
    return (
        f"{name}: {filename} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and {offline}. Fetch it once "
        f"with network (`hf download {split_name(name)[0]}`, or this call without HF_HUB_OFFLINE), or set "
        "HF_HUB_CACHE to a cache that holds it"
    )


def upload(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Add model",
    create_pr: bool = False,
) -> str:
    """Upload the files of ``folder`` to model repository ``repo_id`` (created when missing); returns the commit's
    address. Failures (offline mode, no login, no write access) are one ``CheckpointError`` line."""
    api = HfApi(token=token, library_name=LIBRARY)
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            revision=revision,
            commit_message=commit_message,
            create_pr=create_pr,
        )
    except OfflineModeIsEnabled:
        raise CheckpointError(f"pushing to {repo_id} needs the network, but HF_HUB_OFFLINE is set; unset it") from None
    except LocalTokenNotFoundError:
        raise CheckpointError(f"pushing to {repo_id} needs a login: run `hf auth login` or set HF_TOKEN") from None
    except HfHubHTTPError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f"pushing to {repo_id} failed ({first}); check your login (`hf auth whoami`) and write access"
        ) from None
    return str(getattr(commit, "commit_url", commit))
