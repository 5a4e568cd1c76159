"""A model's shapes and preprocessing read from its config files as plain JSON.

Importing ``transformers`` takes about 3.5 s on a 2-core machine, most of what a batch of videos
that are all done costs. Where a model's ``config.json`` and ``preprocessor_config.json`` are on
this machine (a folder, or the Hugging Face cache) and state every value that
:func:`core.model.loading.describe_model` needs, they are read here without it. Anything else (a
file missing or not cached, a value left to a class default, another model type) returns ``None``,
and the caller reads the files through ``transformers`` as before, with its errors and defaults.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.model.preprocess import Preprocessing
from core.model.setup import ModelShape
from core.model.source import ModelSource, local_file

logger = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("dinov2", "dinov2_with_registers")
"""The ``model_type`` values of the DINOv2 family: the only backbones this tool loads."""

CONFIG_FILE = "config.json"
PROCESSOR_FILE = "preprocessor_config.json"

# what Preprocessing.from_processor_dict reads, each only where the switch before it is on: a key
# left out falls to the processor class's default, which only transformers knows
_PROCESSOR_KEYS: tuple[tuple[str | None, tuple[str, ...]], ...] = (
    (None, ("do_resize", "do_center_crop", "do_rescale", "do_normalize")),
    ("do_resize", ("size", "resample")),
    ("do_center_crop", ("crop_size",)),
    ("do_rescale", ("rescale_factor",)),
    ("do_normalize", ("image_mean", "image_std")),
)


def shape_from_config(config: Any, processor: dict[str, Any] | None) -> ModelShape:
    """A model's shape from its config (a ``transformers`` config, or one read here) and its
    image processor's settings (``None``: DINOv2's defaults)."""
    patch_size = int(config.patch_size)
    prep = (
        Preprocessing(patch_size=patch_size)
        if processor is None
        else Preprocessing.from_processor_dict(processor, patch_size=patch_size)
    )
    return ModelShape(
        preprocessing=prep,
        hidden_size=int(config.hidden_size),
        num_layers=int(config.num_hidden_layers),
        patch_size=patch_size,
        num_register_tokens=int(getattr(config, "num_register_tokens", 0) or 0),
    )


@dataclass(frozen=True, slots=True)
class _Config:
    """The fields of a ``config.json`` that a shape needs, as a ``transformers`` config has them."""

    hidden_size: int
    num_hidden_layers: int
    patch_size: int
    num_register_tokens: int


def read_shape(source: ModelSource) -> ModelShape | None:
    """The model's shape from its config files on this machine, or ``None`` where only
    ``transformers`` can tell (see the module's docstring). Never touches the network."""
    config = _read_json(source, CONFIG_FILE)
    processor = _read_json(source, PROCESSOR_FILE)
    if config is None or processor is None:
        return None
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        return None  # transformers says what it is, and loading refuses it
    needed = ["hidden_size", "num_hidden_layers", "patch_size"]
    if model_type == "dinov2_with_registers":
        needed.append("num_register_tokens")  # its class default (4) applies where the file is silent
    if any(not isinstance(config.get(key), int) for key in needed):
        return None
    for switch, keys in _PROCESSOR_KEYS:
        if (switch is None or processor.get(switch)) and any(key not in processor for key in keys):
            return None
    fields = _Config(
        hidden_size=config["hidden_size"],
        num_hidden_layers=config["num_hidden_layers"],
        patch_size=config["patch_size"],
        num_register_tokens=config.get("num_register_tokens") or 0,
    )
    try:
        return shape_from_config(fields, processor)
    except (TypeError, ValueError, KeyError) as err:  # a value of an unexpected form
        logger.debug("%s: %s is read through transformers (%s)", source.label, PROCESSOR_FILE, err)
        return None


def _read_json(source: ModelSource, name: str) -> dict[str, Any] | None:
    path: Path | None = local_file(source, name)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # transformers says what is wrong with it
    return data if isinstance(data, dict) else None
