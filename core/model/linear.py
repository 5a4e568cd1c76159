"""fp32 linear layers on the CPU through oneDNN, where that is the faster GEMM on this CPU.

PyTorch's ``nn.Linear`` in fp32 on the CPU copies the bias into the output and calls MKL's
sgemm on it (``addmm``). oneDNN's linear (``torch.ops.mkldnn._linear_pointwise``, the kernel
PyTorch's own compiler emits for CPU linears) adds the bias inside the product. Which one is
faster depends on the CPU: on an AMD EPYC with AVX-512 (2 cores) oneDNN ran a ViT-L/14 forward
pass 10–15 % faster, and its GEMM reached about 218 GFLOP/s where MKL's reached about 180
(``python -m bench --sections speed``). So ``auto`` times both once per process, on a product of
the model's own width, and uses oneDNN only where it is measurably faster; the results are
the same up to float rounding.

Where oneDNN is used, the MLPs' activations run inside its linear layers and the blocks'
layer scales are folded into the weights they scale (:func:`use_fast_linears`).

``$WEBSSL_LINEAR`` overrides the choice: ``onednn``, ``torch`` (PyTorch's own), or ``auto``.
"""

from __future__ import annotations

import functools
import logging
import time

from core.config import default_linear_kernel
from core.lazy import torch

logger = logging.getLogger(__name__)

KERNELS = ("auto", "onednn", "torch")
#: oneDNN must be at least this much faster (time ratio) for ``auto`` to pick it
MIN_GAIN = 1.03
#: below this hidden width (test models) a product is too small to time: PyTorch's kernel
MIN_WIDTH = 256


def onednn_linear_available() -> bool:
    """Whether this PyTorch has oneDNN's fused linear for fp32 CPU tensors, and it computes
    what ``nn.functional.linear`` does."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return False
    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*shape, generator=gen) for shape in ((5, 3, 16), (8, 16), (8,)))
    try:
        got = _onednn(x, w, b)
    except RuntimeError:
        return False
    return bool(torch.allclose(got, torch.nn.functional.linear(x, w, b), atol=1e-5, rtol=1e-5))


def _onednn(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, post_op: str = "none"
) -> torch.Tensor:
    algorithm = "none" if post_op == "gelu" else ""  # gelu: the exact (erf) one
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, bias, post_op, [], algorithm)


#: activations oneDNN applies inside its linear (its name for each), and PyTorch's own
_POST_OPS = {
    "swish": lambda x: torch.nn.functional.silu(x),
    "gelu": lambda x: torch.nn.functional.gelu(x),
}


class OnednnLinear(torch.nn.Linear):
    """An ``nn.Linear`` whose fp32 CPU inference runs through oneDNN (same weights, same
    results up to rounding), optionally followed by an activation inside the same kernel
    (``post_op``). Anything else (training, another dtype or device) is PyTorch's."""

    post_op: str = "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.dtype == torch.float32
            and self.weight.dtype == torch.float32
            and x.device.type == "cpu"
            and not torch.is_grad_enabled()
        ):
            return _onednn(x, self.weight, self.bias, self.post_op)
        y = super().forward(x)
        return _POST_OPS[self.post_op](y) if self.post_op != "none" else y

    @classmethod
    def of(cls, linear: torch.nn.Linear) -> OnednnLinear:
        """A layer sharing ``linear``'s parameters (no copy)."""
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        layer.weight = linear.weight
        layer.bias = linear.bias
        return layer


#: (linear, activation after it) in transformers' Dinov2 MLPs: SwiGLU's gate, the GELU MLP
_ACTIVATED = (("gate_proj", "act_fn"), ("fc1", "activation_fn"))
#: (layer scale, the linear whose output it scales) in a Dinov2 block
_SCALED = (
    ("layer_scale1", ("attention", "o_proj")),
    ("layer_scale2", ("mlp", "down_proj")),
    ("layer_scale2", ("mlp", "fc2")),
)


def _post_op_of(activation: torch.nn.Module) -> str | None:
    """oneDNN's name for what ``activation`` computes (checked on numbers), if it has one."""
    x = torch.linspace(-6, 6, 97)
    with torch.inference_mode():
        y = activation(x)
        for name, fn in _POST_OPS.items():
            if torch.allclose(y, fn(x), atol=1e-6):
                return name
    return None


def _fuse_activations(model: torch.nn.Module) -> int:
    """Move each MLP's activation into the oneDNN linear before it; returns how many."""
    fused = 0
    for module in list(model.modules()):  # the loop replaces modules
        for linear_name, act_name in _ACTIVATED:
            layer, act = getattr(module, linear_name, None), getattr(module, act_name, None)
            if (
                isinstance(layer, OnednnLinear)
                and layer.post_op == "none"
                and isinstance(act, torch.nn.Module)
            ):
                if (op := _post_op_of(act)) is not None:
                    layer.post_op = op
                    setattr(module, act_name, torch.nn.Identity())
                    fused += 1
    return fused


def _fold_layer_scales(model: torch.nn.Module) -> int:
    """Fold each block's layer scale (a per-channel factor γ on a linear layer's output) into
    that layer: γ ⊙ (W x + b) = (γ ⊙ W) x + γ ⊙ b, one pass over the activations less. Returns
    how many were folded."""
    folded = 0
    for block in list(model.modules()):  # the loop replaces modules
        for scale_name, (owner, linear_name) in _SCALED:
            scale = getattr(block, scale_name, None)
            layer = getattr(getattr(block, owner, None), linear_name, None)
            gamma = getattr(scale, "lambda1", None)
            if not isinstance(layer, torch.nn.Linear) or not isinstance(gamma, torch.Tensor):
                continue
            if gamma.shape != (layer.out_features,):
                continue
            with torch.no_grad():
                layer.weight.mul_(gamma[:, None])
                if layer.bias is not None:
                    layer.bias.mul_(gamma)
            setattr(block, scale_name, torch.nn.Identity())
            folded += 1
    return folded


def _time_ratio(width: int, rows: int = 1024, repeats: int = 5) -> float:
    """PyTorch's linear time over oneDNN's on a rows × width by width × width product (the best
    of ``repeats`` each, alternating, so that a slow moment of the host hits both)."""
    gen = torch.Generator().manual_seed(0)
    x, w, b = (
        torch.randn(rows, width, generator=gen),
        torch.randn(width, width, generator=gen),
        torch.zeros(width),
    )
    kernels = {"torch": torch.nn.functional.linear, "onednn": _onednn}
    best = dict.fromkeys(kernels, float("inf"))
    with torch.inference_mode():
        for fn in kernels.values():  # warm-up
            fn(x, w, b)
        for _ in range(repeats):
            for name, fn in kernels.items():
                start = time.perf_counter()
                fn(x, w, b)
                best[name] = min(best[name], time.perf_counter() - start)
    return best["torch"] / best["onednn"]


@functools.cache
def onednn_faster(width: int) -> bool:
    """Whether ``auto`` uses oneDNN for a model of this hidden ``width`` on this CPU: timed once
    per process and width (0.15-0.25 s for a ViT-L's 1024)."""
    if width < MIN_WIDTH or not onednn_linear_available():
        return False
    ratio = _time_ratio(width)
    logger.info("fp32 linear layers: oneDNN %.2f× PyTorch's speed here", ratio)
    return ratio >= MIN_GAIN


def use_fast_linears(model: torch.nn.Module, kernel: str | None = None) -> int:
    """Replace ``model``'s fp32 ``nn.Linear`` layers (in place) by :class:`OnednnLinear` where
    ``kernel`` (default ``$WEBSSL_LINEAR`` or ``auto``) says so; returns how many were replaced.

    With them, each MLP's activation (SiLU of SwiGLU's gate, GELU) runs inside the linear layer
    before it, and each block's layer scale is folded into the weights of the layer it scales:
    two fewer passes over the activations per block (3 % of a ViT-L forward here). The model
    computes the same function up to float rounding; its layers' outputs are the same."""
    kernel = kernel or default_linear_kernel()
    if kernel not in KERNELS:
        raise ValueError(f"unknown linear kernel {kernel!r}; use one of {', '.join(KERNELS)}")
    layers = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear
        and child.weight.dtype == torch.float32
        and child.weight.device.type == "cpu"
    ]
    if not layers or kernel == "torch":
        return 0
    if kernel == "auto" and not onednn_faster(min(layer.in_features for _, _, layer in layers)):
        return 0
    if kernel == "onednn" and not onednn_linear_available():
        logger.warning("oneDNN's linear is not available in this PyTorch: using PyTorch's")
        return 0
    for parent, name, child in layers:
        setattr(parent, name, OnednnLinear.of(child))
    fused, folded = _fuse_activations(model), _fold_layer_scales(model)
    logger.debug(
        "oneDNN: %d linear layers, %d activations fused, %d layer scales folded", len(layers), fused, folded
    )
    return len(layers)
