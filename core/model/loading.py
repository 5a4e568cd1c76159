"""Loading a DINOv2-family backbone: hub id or local folder, device and precision.

Weights load from safetensors only and never run remote code. When the weights cannot be
had, :class:`~core.errors.ModelLoadError` says which model, why, and what to do.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, replace
from urllib.parse import urlparse

from core.errors import ModelLoadError
from core.lazy import torch
from core.model.config_files import SUPPORTED_MODEL_TYPES, read_shape, shape_from_config
from core.model.heap import keep_activation_memory
from core.model.precision import apply_precision, resolve_precision
from core.model.setup import ModelSetup, ModelShape
from core.model.source import CLI_FOLDER_OPTION, ModelSource, folder_fix, how_to_fix, offline, resolve_source

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A backbone ready for inference, with its setup (whose precision is the one it runs in)."""

    model: torch.nn.Module
    setup: ModelSetup


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU."""
    name = str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError("CUDA was requested but no CUDA GPU is available; use --device cpu or auto.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelLoadError("Apple MPS was requested but is not available; use --device cpu or auto.")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise ModelLoadError(f"Unknown device {name!r}; use one of {', '.join(DEVICES)}.") from err


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check so that an offline machine fails in seconds, not after minutes of retries."""
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        endpoint = "https://huggingface.co"
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _explain(source: ModelSource, err: BaseException, folder_option: str) -> str:
    """Map Hub / transformers errors to one clear sentence plus the fix."""
    chain: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and len(chain) < 10:
        chain.append(e)
        e = e.__cause__ or e.__context__
    names = {type(x).__name__ for x in chain}
    text = " ".join(str(x) for x in chain)
    if "RepositoryNotFoundError" in names or "GatedRepoError" in names or "401" in text:
        why = "no such model on the Hugging Face Hub (or it is private or gated)"
    elif "RevisionNotFoundError" in names:
        why = f"revision {source.revision!r} does not exist"
    elif "safetensors" in text.lower() and ("not found" in text.lower() or "does not appear" in text.lower()):
        why = "it has no safetensors weights (only safetensors are loaded, never pickled .bin files)"
    elif "LocalEntryNotFoundError" in names or "OfflineModeIsEnabled" in names or "couldn't connect" in text:
        why = "its files are not in the local cache and the Hub cannot be reached"
    elif source.is_local:
        why = f"the folder is not a usable model ({str(err).splitlines()[0][:200]})"
    else:
        why = str(err).splitlines()[0][:300]
    fix = folder_fix(folder_option) if source.is_local else how_to_fix(source.model_id, folder_option)
    return f"Cannot load model {source.label!r}: {why}. {fix}"


def describe_model(
    model: str | os.PathLike | None = None,
    *,
    revision: str | None = None,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    folder_option: str = CLI_FOLDER_OPTION,
) -> ModelSetup:
    """What a DINOv2-family model is, from its config files only: no weights are read.

    Files on this machine that state every value are read as JSON
    (:func:`core.model.config_files.read_shape`); otherwise through ``transformers``.

    Args: as :func:`load_model`.

    Raises:
        ModelLoadError: the model cannot be had (not on this machine and no network, not
            DINOv2-family) or the options are invalid; the message says what to do.
    """
    from core.model.linear import linear_kernel  # its layer class needs PyTorch at import

    source = resolve_source(model, revision)
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    if dev.type == "cpu":
        try:  # the CPU settings, checked before the weights are read
            linear_kernel()
            keep_activation_memory()
        except ValueError as err:
            raise ModelLoadError(str(err)) from err
    shape = read_shape(source) or _read_shape_with_transformers(source, folder_option)
    return ModelSetup(source=source, device=dev, precision=prec, shape=shape, requested=precision)


def _read_shape_with_transformers(source: ModelSource, folder_option: str) -> ModelShape:
    """The model's shape through ``transformers``: the Hub when the files are not cached, class
    defaults for what the files leave out, and its errors explained."""
    from transformers import AutoConfig, AutoImageProcessor

    kwargs = _hub_options(source)
    if not source.is_local and not offline():
        # Try the local cache first; only go online when needed, and fail fast without network.
        try:
            AutoConfig.from_pretrained(source.model_id, local_files_only=True, **kwargs)
        except (OSError, ValueError):
            if not _hub_reachable():
                raise ModelLoadError(
                    f"Cannot load model {source.label!r}: it is not in the local cache and "
                    f"huggingface.co cannot be reached (no network?). {how_to_fix(source.model_id, folder_option)}"
                ) from None
    try:
        config = AutoConfig.from_pretrained(source.model_id, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        raise ModelLoadError(_explain(source, err, folder_option)) from err
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(
            f"Model {source.label!r} is a {config.model_type!r} model; this tool needs a DINOv2-family "
            f"backbone ({', '.join(SUPPORTED_MODEL_TYPES)}), e.g. facebook/webssl-dino300m-full2b-224."
        )
    try:
        processor = AutoImageProcessor.from_pretrained(source.model_id, **kwargs).to_dict()
    except (OSError, ValueError, KeyError) as err:
        logger.warning(
            "%s has no usable preprocessor_config.json (%s); using DINOv2's defaults "
            "(resize 256, centre crop 224, ImageNet mean/std)",
            source.label,
            str(err).splitlines()[0][:120],
        )
        processor = None
    return shape_from_config(config, processor)


def _hub_options(source: ModelSource) -> dict:
    """``from_pretrained`` options: never remote code; a Hub model's revision."""
    return {"trust_remote_code": False} | ({} if source.is_local else {"revision": source.revision})


def load_model(
    model: str | os.PathLike | None = None,
    *,
    revision: str | None = None,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    folder_option: str = CLI_FOLDER_OPTION,
    setup: ModelSetup | None = None,
) -> LoadedModel:
    """Load a DINOv2-family backbone and its preprocessing settings.

    Args:
        model: Hub id (``facebook/webssl-dino300m-full2b-224``) or a local folder.
        revision: Hub branch, tag or commit (ignored for folders).
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        precision: ``fp32`` (default), ``bf16``, ``fp16``, ``int8`` or ``auto``.
        folder_option: how the caller's user passes a local model folder (the error
            messages' fix says it: a CLI flag, or the dashboard's way).
        setup: the model as :func:`describe_model` found it (then ``model``, ``revision``,
            ``device`` and ``precision`` are not read).

    Returns:
        The model in eval mode on ``device``.

    Raises:
        ModelLoadError: the weights are unavailable, not DINOv2-family, or the options are invalid.
    """
    from transformers import AutoModel

    if setup is None:
        setup = describe_model(
            model, revision=revision, device=device, precision=precision, folder_option=folder_option
        )
    source = setup.source
    try:
        backbone = AutoModel.from_pretrained(
            source.model_id, use_safetensors=True, dtype=torch.float32, **_hub_options(source)
        )
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelLoadError(_explain(source, err, folder_option)) from err
    backbone.eval()
    shape = _read_shape_with_transformers(source, folder_option)
    if shape != setup.shape:  # e.g. a Hub model whose cached config files were out of date
        logger.warning(
            "%s: its config files changed since it was described; using them as they are now", source.label
        )
        setup = replace(setup, shape=shape)
    backbone, prec = apply_precision(
        backbone, setup.precision, setup.device, preprocessing=setup.preprocessing, requested=setup.requested
    )
    return LoadedModel(model=backbone, setup=replace(setup, precision=prec))
