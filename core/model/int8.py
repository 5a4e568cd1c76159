"""int8 on the CPU: OpenVINO int8 weights with dynamic int8 activations, validated against fp32.

Chosen by measurement (``python -m bench --sections numerics``; README, Performance): on a CPU
with VNNI, OpenVINO's int8 ran a ViT-L block stack ≈ 4× faster than PyTorch fp32, against
≈ 2× for ONNX Runtime's and ``torch.ao``'s dynamic int8, while torchao's int8 had no fast CPU
kernel (slower than fp32).

DINOv2-family weights have a few activation channels ~100× larger than the rest, which ruin a
plain per-tensor int8 scale. So:

1. SmoothQuant (:func:`smooth`): per input channel of each linear layer, a scale moves part of
   the activations' range into the weights (``α`` = :data:`SMOOTH_QUANT_ALPHA`). It is folded
   into the layer norms, the value projection and SwiGLU's ``up_proj`` of a copy of the model,
   so the copy computes the same function in fp32; the activation ranges come from generated
   pictures (:mod:`core.model.calibration`);
2. the smoothed backbone is converted to OpenVINO (traced once) and NNCF stores its linear
   layers' weights in int8 (per output channel), except the patch embedding and the first
   :data:`KEEP_FIRST_BLOCKS` of the blocks, where an error is amplified by every later block;
3. at run time, OpenVINO quantises each linear layer's input per token, per group of
   :data:`DYNAMIC_GROUP` channels, and multiplies in int8 (VNNI / AMX). Scales measured on the
   input itself, not calibrated ones, keep pictures unlike the calibration ones exact;
4. the result is *validated*: [CLS] cosine to the fp32 model on other generated pictures.
   ``auto`` uses int8 only when the minimum is ≥ :data:`MIN_COSINE`; an explicit ``int8``
   runs anyway, with a warning.

On the ViT-L stress model with injected outlier activations this recipe keeps a [CLS] cosine of
0.9994 to fp32; the previous one (static, calibrated activation scales) reached 0.9957.

The quantised model and its validation are cached on disk per weights and library versions
(:func:`cache_dir`), so only the first load pays for steps 1, 2 and 4.

``openvino`` and ``nncf`` are optional: they are imported here only, and only when int8 is
used, so that the default fp32 / bf16 path never depends on them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from core.errors import ModelLoadError

logger = logging.getLogger(__name__)

MIN_COSINE = 0.999
"""The bar: minimum [CLS] cosine to fp32 on the validation pictures for ``auto`` to pick int8."""
KEEP_FLOAT = (r".*embeddings.*",)
"""Layers (regular expressions over OpenVINO node names) kept in floating point: the patch
embedding."""
KEEP_FIRST_BLOCKS = 1 / 6
"""Share of the transformer blocks, from the first, kept in floating point (4 of ViT-L's 24):
an error made early is amplified by every later block."""
SMOOTH_QUANT_ALPHA = 0.75
"""SmoothQuant's migration strength: the share of an activation channel's range (in log scale)
moved into the weights. On the ViT-L stress model (16 pictures): 0.75 → min cosine 0.99936,
0.5 → 0.99929, 0.15 → 0.99886."""
DYNAMIC_GROUP = 128
"""Channels per dynamic int8 scale of a token's activations. On the ViT-L stress model (AMD
EPYC, AVX-512 VNNI, 2 cores, batch 8): groups of 128 → 0.99936 at 3.24 pictures/s; one scale
per token (1,024) → 0.99914 at 3.18/s; groups of 32 → 0.99941 at 2.61/s."""
EARLY_IN_OPENVINO_AFTER = 50_000
"""Tokens region mode's early blocks compute in PyTorch before they move to OpenVINO: about
where the conversion (6.7 s for ViT-L, once per process) is paid back at 0.12 s saved per frame
of 1,032 tokens (AMD EPYC, AVX-512 BF16, 2 cores). A region run over a 48-image collection gets
there after its templates and about 25 frames; ``explain`` of one frame stays in PyTorch (0.45 s
for ViT-L instead of 7 s)."""
CALIBRATION_SEEDS = tuple(range(7_000, 7_016))
VALIDATION_SEEDS = tuple(range(8_000, 8_008))
_FORMAT = 3  # bump when the recipe changes: cached models of older recipes are rebuilt


def available() -> bool:
    """Whether the int8 backend (``openvino`` and ``nncf``) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("openvino", "nncf"))


def cache_dir() -> Path:
    """Where quantised models are kept (``$WEBSSL_INT8_CACHE``, default ``~/.cache/webssl-lens/int8``)."""
    env = os.environ.get("WEBSSL_INT8_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "webssl-lens" / "int8"


@dataclass(frozen=True, slots=True)
class Validation:
    """How close the int8 model is to fp32, measured when it was built."""

    min_cosine: float
    mean_cosine: float
    pictures: int
    build_s: float  # conversion + quantisation + validation, on the machine that built it

    @property
    def passed(self) -> bool:
        return self.min_cosine >= MIN_COSINE


class OpenVINOBackbone(torch.nn.Module):
    """A quantised backbone behind the ``model(pixel_values=...)`` interface of transformers'
    Dinov2 (final-layer tokens only).

    ``float_model`` is the floating-point backbone it was built from, kept for what int8 does
    not compute: the early tokens of region mode (a few blocks over a whole frame of any size),
    which :meth:`early_tokens` runs through OpenVINO too.
    """

    def __init__(self, compiled, preprocessing, validation: Validation, float_model: torch.nn.Module) -> None:
        super().__init__()
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self.preprocessing = preprocessing
        self.image_size = _input_size(preprocessing)
        self.validation = validation
        self.float_model = float_model
        self.early_blocks_compiled: dict[int, object] = {}  # blocks -> compiled OpenVINO model
        self._early_tokens_in_torch: dict[int, int] = {}  # blocks -> tokens computed in PyTorch

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool = False) -> SimpleNamespace:
        if output_hidden_states:
            raise ModelLoadError(
                "int8 computes final-layer features only; use --precision fp32 for every layer's maps."
            )
        if tuple(pixel_values.shape[-2:]) != self.image_size:
            raise ModelLoadError(
                f"the int8 model takes {self.image_size[0]}×{self.image_size[1]} input (the model's "
                "crop), not full-size pictures; use --precision fp32 for --mode full."
            )
        x = np.ascontiguousarray(pixel_values.detach().float().cpu().numpy())
        out = self._request.infer({0: x})
        return SimpleNamespace(last_hidden_state=torch.from_numpy(np.array(out[0])))

    def early_tokens(self, pixel_values: torch.Tensor, blocks: int) -> torch.Tensor:
        """All tokens after the first ``blocks`` blocks of the float model, for input of any
        size (region mode's whole frames); float32, on the CPU.

        They are computed in PyTorch until :data:`EARLY_IN_OPENVINO_AFTER` tokens went through
        those blocks, and from then on by OpenVINO with int8 weights (:func:`_compile_early`):
        a region run soon pays for the conversion, a single explained frame never does.
        """
        compiled = self.early_blocks_compiled.get(blocks)
        if compiled is None and self._early_tokens_in_torch.get(blocks, 0) < EARLY_IN_OPENVINO_AFTER:
            from core.model.early import EarlyBlocks

            hidden = EarlyBlocks.run(self.float_model, pixel_values, blocks).float()
            self._early_tokens_in_torch[blocks] = (
                self._early_tokens_in_torch.get(blocks, 0) + hidden.shape[0] * hidden.shape[1]
            )
            return hidden
        if compiled is None:
            compiled = self.early_blocks_compiled[blocks] = _compile_early(
                self.float_model, blocks, self.preprocessing
            )
        out = compiled(np.ascontiguousarray(pixel_values.detach().float().cpu().numpy()))[0]
        return torch.from_numpy(np.array(out))


class FinalTokens(torch.nn.Module):
    """A transformers backbone as a plain function, pixels → final-layer tokens (what is traced)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).last_hidden_state


def quantize(model: torch.nn.Module, preprocessing) -> OpenVINOBackbone:
    """The int8 version of a Dinov2 backbone (built, validated and cached on first use).

    Args:
        model: the fp32 backbone (eval mode, CPU).
        preprocessing: its :class:`~core.model.preprocess.Preprocessing` (input size, and the
            calibration pictures go through it).

    Raises:
        ModelLoadError: openvino / nncf are not installed, or the conversion failed.
    """
    if not available():
        raise ModelLoadError(
            "int8 needs OpenVINO and NNCF: pip install openvino nncf (or use --precision fp32/bf16)."
        )
    import openvino as ov

    size = _input_size(preprocessing)
    folder = cache_dir() / _key(model, preprocessing)
    xml = folder / "model.xml"
    core = ov.Core()
    if xml.exists() and (folder / "validation.json").exists():
        validation = Validation(**json.loads((folder / "validation.json").read_text()))
        compiled = core.compile_model(core.read_model(xml), "CPU", _compile_config())
        logger.info("int8 model from %s (min CLS cosine %.5f)", folder, validation.min_cosine)
        return OpenVINOBackbone(compiled, preprocessing, validation, _early_model(model))
    start = time.perf_counter()
    logger.info("building the int8 model (first use of these weights: a few minutes)")
    quantized = _quantize(model, preprocessing, size)
    compiled = core.compile_model(quantized, "CPU", _compile_config())
    validation = _validate(model, compiled, preprocessing, time.perf_counter() - start)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "model.partial.xml"
    ov.save_model(quantized, tmp, compress_to_fp16=False)
    tmp.with_suffix(".bin").replace(folder / "model.bin")
    tmp.replace(xml)
    (folder / "validation.json").write_text(json.dumps(asdict(validation)))
    logger.info(
        "int8 model built in %.0f s: min CLS cosine %.5f to fp32 (%s)",
        validation.build_s,
        validation.min_cosine,
        "passes" if validation.passed else f"below {MIN_COSINE}",
    )
    return OpenVINOBackbone(compiled, preprocessing, validation, _early_model(model))


def _input_size(preprocessing) -> tuple[int, int]:
    """The fixed input size int8 is built for (the model's crop, or its fixed resize).

    Raises:
        ModelLoadError: the preprocessing has neither.
    """
    size = preprocessing.crop_hw or preprocessing.resize_hw
    if size is None:
        raise ModelLoadError(
            "int8 needs a fixed input size (a centre crop or a fixed resize); this model's "
            "preprocessing has neither: use --precision fp32/bf16."
        )
    return int(size[0]), int(size[1])


def _early_model(model: torch.nn.Module) -> torch.nn.Module:
    """The float backbone kept beside the int8 one, for region mode's early blocks
    (:meth:`OpenVINOBackbone.early_tokens` runs them, and converts them once that pays), in the CPU's fastest
    floating-point precision: bf16 where native, at half the memory of fp32. Converted in place
    (``Module.to``): the caller's fp32 model is not kept beside it."""
    from core.model.precision import dtype_of, float_precision

    return model.to(dtype=dtype_of(float_precision(torch.device("cpu"))))


def _compile_early(float_model: torch.nn.Module, blocks: int, preprocessing):
    """The float model's embeddings and first ``blocks`` blocks as an OpenVINO model for input
    of any size (the traced position embeddings are interpolated to it), made like the int8
    model: a smoothed float32 copy of those blocks (:func:`smooth`), int8 weights, activations
    quantised per token at run time. The int8 model keeps its first blocks in floating point
    because an error there grows through every later block; here no block follows.

    ViT-L, 3 blocks over a 336×602 frame, AMD EPYC with AVX-512 BF16, 2 cores: 0.18 s a frame,
    against 0.30 s in PyTorch bf16 and 0.25 s in OpenVINO with float weights; tokens within a
    cosine of 0.99999 of PyTorch's (0.9999 on the tiny model with outlier channels, 0.98
    without the smoothing). Made in 6.7 s for ViT-L, once per process.
    """
    import openvino as ov

    from core.model.early import EarlyBlocks

    start = time.perf_counter()
    early = smooth(EarlyBlocks(float_model, blocks), _pictures(CALIBRATION_SEEDS, preprocessing))
    with torch.inference_mode():
        ov_model = ov.convert_model(early, example_input=torch.zeros(1, 3, *_input_size(preprocessing)))
    ov_model.reshape([-1, 3, -1, -1])
    ov_model = _compress_weights(ov_model, list(KEEP_FLOAT))
    compiled = ov.Core().compile_model(ov_model, "CPU", _compile_config())
    logger.info("region mode's first %d blocks in OpenVINO in %.1f s", blocks, time.perf_counter() - start)
    return compiled


def _compile_config() -> dict:
    # floating-point parts in the CPU's fastest precision (bf16 where native; f32 elsewhere);
    # the int8 weights' layers take their input quantised per token at run time
    return {
        "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        "PERFORMANCE_HINT": "LATENCY",
        "DYNAMIC_QUANTIZATION_GROUP_SIZE": DYNAMIC_GROUP,
    }


def _pictures(seeds, preprocessing) -> torch.Tensor:
    from core.model.calibration import generated_picture
    from core.model.preprocess import preprocess_images

    return preprocess_images([generated_picture(s, (360, 640)) for s in seeds], preprocessing)


def _quantize(model: torch.nn.Module, preprocessing, size: tuple[int, int]):
    import openvino as ov

    smoothed = smooth(model, _pictures(CALIBRATION_SEEDS, preprocessing))
    with torch.inference_mode():
        ov_model = ov.convert_model(FinalTokens(smoothed).eval(), example_input=torch.zeros(1, 3, *size))
    del smoothed
    ov_model.reshape([-1, 3, *size])
    return _compress_weights(ov_model, _keep_patterns(model))


def _compress_weights(ov_model, keep_float: list[str]):
    """NNCF's symmetric int8 weights, but for the layers ``keep_float`` names, with NNCF's output
    kept off stdout: it logs through a handler of its own on stdout and draws its progress bar
    there, and "INFO:nncf:58 ignored nodes were found…" broke a command's table or JSON. Its
    records go through logging like any library's (shown with ``-vv``), its bar to stderr."""
    import nncf
    from nncf.common.logging.logger import nncf_logger

    nncf_logger.handlers.clear()
    nncf_logger.propagate = True
    nncf_logger.setLevel(logging.NOTSET)
    with contextlib.redirect_stdout(sys.stderr):
        return nncf.compress_weights(
            ov_model,
            mode=nncf.CompressWeightsMode.INT8_SYM,
            ignored_scope=nncf.IgnoredScope(patterns=keep_float, validate=False),
        )


def _smoothed_pairs(layer: torch.nn.Module) -> list[tuple[torch.nn.Module, list[torch.nn.Linear]]]:
    """(producer, consumers) of one Dinov2 block whose consumers' input channels can be scaled
    exactly: a layer norm or a linear layer whose output channel ``j`` is, channel for channel,
    the consumers' input channel ``j``."""
    att, mlp = layer.attention, layer.mlp
    pairs = [(layer.norm1, [att.q_proj, att.k_proj, att.v_proj]), (att.v_proj, [att.o_proj])]
    if hasattr(mlp, "up_proj"):  # SwiGLU: down_proj's input is act(gate) × up, linear in up
        pairs += [(layer.norm2, [mlp.gate_proj, mlp.up_proj]), (mlp.up_proj, [mlp.down_proj])]
    else:  # fc2's input comes through GELU: only fc1's can be scaled
        pairs.append((layer.norm2, [mlp.fc1]))
    return pairs


@torch.inference_mode()
def smooth(
    model: torch.nn.Module, pixels: torch.Tensor, alpha: float = SMOOTH_QUANT_ALPHA
) -> torch.nn.Module:
    """A copy of a Dinov2 backbone with SmoothQuant folded in: the same function in fp32, with
    activation outliers moved into the weights.

    For each consumer input channel ``j``, ``s_j = max|x_j|^α / max|w_j|^(1-α)`` (the maximum
    input over ``pixels`` and the largest weight of that column over the consumers); the
    producer's output channel ``j`` is divided by ``s_j`` and the consumers' weight column
    multiplied by it.
    """
    import copy

    smoothed = copy.deepcopy(model).float().eval()
    layers = list(smoothed.encoder.layer)
    peaks: dict[int, torch.Tensor] = {}

    def record(module: torch.nn.Module, args: tuple) -> None:
        peak = args[0].detach().abs().flatten(0, -2).amax(0).float()
        old = peaks.get(id(module))
        peaks[id(module)] = peak if old is None else torch.maximum(old, peak)

    consumers = [c for layer in layers for _, group in _smoothed_pairs(layer) for c in group]
    hooks = [c.register_forward_pre_hook(record) for c in consumers]
    try:
        for i in range(0, len(pixels), 4):
            smoothed(pixel_values=pixels[i : i + 4])
    finally:
        for h in hooks:
            h.remove()
    for layer in layers:
        for producer, group in _smoothed_pairs(layer):
            x = torch.stack([peaks[id(c)] for c in group]).amax(0).clamp(min=1e-5)
            w = torch.stack([c.weight.abs().amax(0) for c in group]).amax(0).clamp(min=1e-5)
            s = (x**alpha / w ** (1 - alpha)).clamp(min=1e-5)
            if isinstance(producer, torch.nn.Linear):
                producer.weight.div_(s[:, None])
            else:
                producer.weight.div_(s)
            if producer.bias is not None:
                producer.bias.div_(s)
            for c in group:
                c.weight.mul_(s)
    return smoothed


def _keep_patterns(model: torch.nn.Module) -> list[str]:
    blocks = len(getattr(getattr(model, "encoder", None), "layer", ()))
    first = math.ceil(blocks * KEEP_FIRST_BLOCKS)
    keep = list(KEEP_FLOAT)
    if first:
        keep.append(rf".*encoder\.layer\.({'|'.join(str(i) for i in range(first))})\..*")
    return keep


def _validate(model: torch.nn.Module, compiled, preprocessing, build_s: float) -> Validation:
    pixels = _pictures(VALIDATION_SEEDS, preprocessing)
    with torch.inference_mode():
        ref = model(pixel_values=pixels).last_hidden_state[:, 0]
    got = torch.from_numpy(np.array(compiled(pixels.numpy())[0]))[:, 0]
    cos = torch.nn.functional.cosine_similarity(got.float(), ref.float()).numpy()
    return Validation(float(cos.min()), float(cos.mean()), len(cos), round(build_s, 1))


def _key(model: torch.nn.Module, preprocessing) -> str:
    """The cache key: the weights themselves, the preprocessing, the recipe and the libraries."""
    import nncf
    import openvino as ov

    h = hashlib.sha256()
    recipe = [
        _FORMAT,
        _keep_patterns(model),
        SMOOTH_QUANT_ALPHA,
        DYNAMIC_GROUP,
        CALIBRATION_SEEDS,
        ov.__version__,
        nncf.__version__,
    ]
    h.update(json.dumps(recipe).encode())
    h.update(preprocessing.key.encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]
