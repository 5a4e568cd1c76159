"""Where a model comes from (a Hub repository with a revision, or a local folder), and whether
its weights are on this machine, found without loading anything."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.config import DEFAULT_MODEL_ID as DEFAULT_HUB_ID
from core.config import default_model_id
from core.errors import ModelLoadError


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where a model comes from: a Hub repository (with revision) or a local folder."""

    model_id: str  # as stored with collections: hub id, or the folder's absolute path
    revision: str | None
    is_local: bool

    @property
    def label(self) -> str:
        return f"{self.model_id}@{self.revision}" if self.revision else self.model_id


def resolve_source(model: str | os.PathLike | None = None, revision: str | None = None) -> ModelSource:
    """Decide whether ``model`` names a local folder or a Hub repository."""
    text = str(model) if model is not None else default_model_id()
    if revision is None:
        text, revision = split_label(text)
    if not text.strip():
        raise ModelLoadError(
            "No model given: pass a Hub id such as facebook/webssl-dino300m-full2b-224 or a folder."
        )
    path = Path(text).expanduser()
    if path.is_dir():
        return ModelSource(str(path.resolve()), None, True)
    looks_like_path = (
        text.startswith(("/", ".", "~")) or text.count("/") > 1 or "\\" in text or path.suffix in {".json"}
    )
    if looks_like_path or path.exists():
        raise ModelLoadError(f"Model folder {text!r} does not exist (or is not a folder). {folder_fix()}")
    return ModelSource(text, revision, False)


def split_label(label: str) -> tuple[str, str | None]:
    """``"org/name@rev"`` (a :attr:`ModelSource.label`) → ``("org/name", "rev")``.

    Folders and plain ids have no revision.
    """
    if "@" in label and not os.path.isdir(label) and not label.startswith(("/", ".", "~")):
        name, _, revision = label.rpartition("@")
        return name, revision or None
    return label, None


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids the network."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


CLI_FOLDER_OPTION = "--model /path/to/model"
"""How a command-line user passes a local model folder (see :func:`how_to_fix`)."""


def folder_fix(folder_option: str | None = None) -> str:
    """What a user does about a model folder that is missing or not a usable model
    (``folder_option``: how the caller's user passes a folder, where it is known)."""
    how = f" with {folder_option}" if folder_option else ""
    return (
        "To fix: pass a folder that holds config.json (of a DINOv2-family model) and model.safetensors, "
        f"e.g. one written by save_pretrained(){how}, or a Hub id such as {DEFAULT_HUB_ID}."
    )


def how_to_fix(model_id: str, folder_option: str = CLI_FOLDER_OPTION) -> str:
    """What a user does when a Hub model's weights are missing (``folder_option``: how to pass a folder)."""
    return (
        f"To fix: on a machine with internet run `hf download {model_id}` once (it is cached under "
        "~/.cache/huggingface), then set HF_HUB_OFFLINE=1 to use the cache without network; "
        f"or pass a local folder with {folder_option} (config.json + model.safetensors)."
    )


def local_file(source: ModelSource, name: str) -> Path | None:
    """Where one of a model's files is on this machine: in its folder, or in the Hugging Face
    cache for its revision (``None``: not there). Looks at files only, never at the network."""
    if source.is_local:
        path = Path(source.model_id) / name
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(source.model_id, name, revision=source.revision)
    return Path(hit) if isinstance(hit, str) else None


@dataclass(frozen=True, slots=True)
class ModelAvailability:
    """Whether a model's weights are on this machine, found without loading anything."""

    model_id: str
    available: bool
    detail: str  # where the weights are, or why they are not usable
    fix: str  # what to do when not available ("" when available)


def model_availability(model: str, folder_option: str = CLI_FOLDER_OPTION) -> ModelAvailability:
    """Look for the weights of ``model`` (a folder, or a Hub id in the Hugging Face cache).

    Cheap: looks at files only; never loads the model or touches the network.
    """
    try:
        source = resolve_source(model)
    except ModelLoadError as err:
        return ModelAvailability(model, False, str(err), how_to_fix(DEFAULT_HUB_ID, folder_option))
    found = {
        name: local_file(source, name)
        for name in ("config.json", "model.safetensors", "model.safetensors.index.json")
    }
    has_config = found["config.json"] is not None
    has_weights = found["model.safetensors"] is not None or found["model.safetensors.index.json"] is not None
    if source.is_local:
        path = Path(source.model_id)
        missing = [
            name for name, ok in (("config.json", has_config), ("model.safetensors", has_weights)) if not ok
        ]
        if missing:
            return ModelAvailability(
                model,
                False,
                f"the folder {path} lacks {', '.join(missing)}",
                how_to_fix(DEFAULT_HUB_ID, folder_option),
            )
        return ModelAvailability(model, True, f"local folder {path}", "")
    if has_config and has_weights:
        return ModelAvailability(
            model, True, f"in the Hugging Face cache ({found['config.json'].parent})", ""
        )
    detail = "not in the local Hugging Face cache"
    if not offline():
        detail += " (it will be downloaded on first use if this machine can reach huggingface.co)"
    return ModelAvailability(model, False, detail, how_to_fix(source.model_id, folder_option))
