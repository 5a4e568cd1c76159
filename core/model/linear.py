"""fp32 and bf16 linear layers on the CPU through oneDNN, where that is the faster GEMM here.

PyTorch's ``nn.Linear`` in fp32 on the CPU copies the bias into the output and calls MKL's
sgemm on it (``addmm``). oneDNN's linear (``torch.ops.mkldnn._linear_pointwise``, the kernel
PyTorch's own compiler emits for CPU linears) adds the bias inside the product. Which one is
faster depends on the CPU: on an AMD EPYC with AVX-512 (2 cores) oneDNN's GEMM reached about
218 GFLOP/s where MKL's reached about 180, and with what follows every-frame fp32 ran 1.3-1.4x
faster (``python -m bench --sections speed``); restricted to AVX2, oneDNN's product was only
1.03x MKL's. So ``auto`` times both once per process, on a product of the model's own width,
and uses oneDNN only where it is measurably faster; the results are the same up to float
rounding. bf16 layers get the same (per dtype): oneDNN's packed bf16 products ran 6-11 %
faster than PyTorch's bf16 linear here.

Where oneDNN is used, the weights are kept in its packed layout (one copy; 3-7 % faster
products, and 2x for the few rows of the [CLS]-only last block), the MLPs' activations run
inside its linear layers, and the blocks' layer scales are folded into the weights they scale
(:func:`use_fast_linears`).

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


#: rows the packed weights' layout is chosen for: a batch of 8 frames of 257 tokens (any number
#: of rows works, and runs faster than an unpacked weight)
PACK_ROWS = 2056
#: the weight dtypes the layers run in (fp32; bf16, which oneDNN computes natively where the CPU
#: has AVX512-BF16 or AMX and emulates elsewhere, where ``auto``'s timing says so)
DTYPES = ("float32", "bfloat16")


@functools.cache
def onednn_linear_available(dtype: str = "float32") -> bool:
    """Whether this PyTorch has oneDNN's fused linear with packed weights for CPU tensors of
    ``dtype`` (a name in :data:`DTYPES`), and it computes what ``nn.functional.linear`` does."""
    if dtype not in DTYPES or not torch.backends.mkldnn.is_available():
        return False
    gen = torch.Generator().manual_seed(0)
    x, w, b = (
        torch.randn(*shape, generator=gen).to(getattr(torch, dtype)) for shape in ((5, 3, 16), (8, 16), (8,))
    )
    try:
        got = onednn_linear(x, pack_weight(w), b)
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    tol = 1e-5 if dtype == "float32" else 2e-2
    expected = torch.nn.functional.linear(x, w, b)
    return bool(torch.allclose(got.float(), expected.float(), atol=tol, rtol=tol))


def pack_weight(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (out × in) in oneDNN's packed layout for :func:`onednn_linear`."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), PACK_ROWS)


def onednn_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, post_op: str = "none"
) -> torch.Tensor:
    """x · weightᵀ + bias through oneDNN, then ``post_op`` (a key of :data:`_POST_OPS`) in the
    same kernel; ``weight`` plain or from :func:`pack_weight`."""
    algorithm = "none" if post_op == "gelu" else ""  # gelu: the exact (erf) one
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, bias, post_op, [], algorithm)


#: activations oneDNN applies inside its linear (its name for each), and PyTorch's own
_POST_OPS = {
    "swish": lambda x: torch.nn.functional.silu(x),
    "gelu": lambda x: torch.nn.functional.gelu(x),
}


class OnednnLinear(torch.nn.Module):
    """A linear layer for fp32 or bf16 inference on the CPU through oneDNN (the dtype of the
    layer it replaces), optionally followed by an activation inside the same kernel
    (``post_op``).

    Its weight is kept only in oneDNN's packed layout (``packed``), so that no product reorders
    it and the model holds one copy of it; :attr:`weight` unpacks it on demand. Anything else
    than inference in its dtype on the CPU (gradients, another dtype) unpacks it and runs
    PyTorch's kernel. The module stays on the CPU in its dtype (a packed weight cannot be
    converted).
    """

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("packed", pack_weight(linear.weight), persistent=False)
        self.bias = linear.bias
        self.post_op = "none"

    @property
    def weight(self) -> torch.Tensor:
        """The weight as a plain tensor (unpacked: a copy)."""
        return self.packed.to_dense()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.packed.dtype and x.device.type == "cpu" and not torch.is_grad_enabled():
            return onednn_linear(x, self.packed, self.bias, self.post_op)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        y = torch.nn.functional.linear(x, self.weight.to(x.dtype), bias)
        return _POST_OPS[self.post_op](y) if self.post_op != "none" else y

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, post_op={self.post_op}"


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


def _own_memory(model: torch.nn.Module) -> None:
    """Copy the model's remaining parameters and buffers out of the weights file.

    Hugging Face maps the safetensors file into memory, and every tensor loaded from it keeps
    the whole mapping alive. Packing read every linear weight through it, so its pages stay
    resident while any tensor of the file lives (a norm, a bias): as much memory again as the
    packed weights. Copies of the small rest let the mapping go.
    """
    with torch.no_grad():
        for module in model.modules():
            for _name, param in list(module.named_parameters(recurse=False)):
                param.data = param.data.clone()
            for name, buf in list(module.named_buffers(recurse=False)):
                if buf is not None and not buf.is_mkldnn:
                    module._buffers[name] = buf.clone()


def _time_ratio(width: int, dtype: str = "float32", rows: int = 1024, repeats: int = 5) -> float:
    """PyTorch's linear time over oneDNN's (packed weight) on a rows × width by width × width
    product (the best of ``repeats`` each, alternating, so that a slow moment of the host hits
    both)."""
    gen = torch.Generator().manual_seed(0)
    x, w, b = (
        t.to(getattr(torch, dtype))
        for t in (
            torch.randn(rows, width, generator=gen),
            torch.randn(width, width, generator=gen),
            torch.zeros(width),
        )
    )
    packed = pack_weight(w)
    kernels = {
        "torch": lambda: torch.nn.functional.linear(x, w, b),
        "onednn": lambda: onednn_linear(x, packed, b),
    }
    best = dict.fromkeys(kernels, float("inf"))
    with torch.inference_mode():
        for fn in kernels.values():  # warm-up
            fn()
        for _ in range(repeats):
            for name, fn in kernels.items():
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
    return best["torch"] / best["onednn"]


@functools.cache
def onednn_faster(width: int, dtype: str = "float32") -> bool:
    """Whether ``auto`` uses oneDNN for a model of this hidden ``width`` and weight ``dtype`` on
    this CPU: timed once per process, width and dtype (0.15-0.25 s for a ViT-L's 1024 in fp32)."""
    if width < MIN_WIDTH or not onednn_linear_available(dtype):
        return False
    ratio = _time_ratio(width, dtype)
    logger.info("%s linear layers: oneDNN %.2f× PyTorch's speed here", dtype, ratio)
    return ratio >= MIN_GAIN


def linear_kernel(kernel: str | None = None) -> str:
    """``kernel``, or ``$WEBSSL_LINEAR`` (default ``auto``), checked.

    Raises:
        ValueError: it is not one of :data:`KERNELS`.
    """
    kernel = kernel or default_linear_kernel()
    if kernel not in KERNELS:
        raise ValueError(
            f"unknown linear kernel {kernel!r} ($WEBSSL_LINEAR); use one of {', '.join(KERNELS)}"
        )
    return kernel


def use_fast_linears(model: torch.nn.Module, kernel: str | None = None) -> int:
    """Replace ``model``'s fp32 or bf16 ``nn.Linear`` layers (in place) by :class:`OnednnLinear` where
    ``kernel`` (default ``$WEBSSL_LINEAR`` or ``auto``) says so; returns how many were replaced.

    With them, each MLP's activation (SiLU of SwiGLU's gate, GELU) runs inside the linear layer
    before it, and each block's layer scale is folded into the weights of the layer it scales:
    two fewer passes over the activations per block (3 % of a ViT-L forward here). The model
    computes the same function up to float rounding; its layers' outputs are the same."""
    kernel = linear_kernel(kernel)
    layers = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear and child.weight.device.type == "cpu"
    ]
    dtype = str(layers[0][2].weight.dtype).removeprefix("torch.") if layers else ""
    layers = [(p, n, c) for p, n, c in layers if c.weight.dtype == getattr(torch, dtype, None)]
    if not layers or kernel == "torch" or dtype not in DTYPES:
        return 0
    if kernel == "auto" and not onednn_faster(min(layer.in_features for _, _, layer in layers), dtype):
        return 0
    if kernel == "onednn" and not onednn_linear_available(dtype):
        logger.warning("oneDNN's %s linear is not available in this PyTorch: using PyTorch's", dtype)
        return 0
    folded = _fold_layer_scales(model)  # into the plain weights, before they are packed
    for parent, name, child in layers:
        setattr(parent, name, OnednnLinear(child))
    fused = _fuse_activations(model)
    _own_memory(model)
    logger.debug(
        "oneDNN: %d linear layers, %d activations fused, %d layer scales folded", len(layers), fused, folded
    )
    return len(layers)
