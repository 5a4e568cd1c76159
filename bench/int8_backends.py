"""Which int8 backend: speed of the candidates on a ViT-L block stack, on this CPU.

``python -m bench.int8_backends [--layers 4]`` times a random Dinov2 with the default model's
width (hidden 1024, SwiGLU, 16 heads) and a few layers, batch 8 at 224 px, through each
backend that is installed (skipped otherwise), best of 3 in one process:

- PyTorch fp32 and bf16 (the floating-point paths);
- ``torch.ao`` dynamic int8 (deprecated), torchao ``Int8DynamicActivationInt8WeightConfig``;
- ONNX Runtime fp32 and dynamic int8 (per-channel weights);
- OpenVINO fp32, its default inference precision, and NNCF static int8 (what
  :mod:`core.model.int8` uses).

It informed the choice of :mod:`core.model.int8`; accuracy is measured by ``python -m bench
--sections numerics`` on the ViT-L with outlier activations.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.int8_backends", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import torch
    from transformers import Dinov2Config, Dinov2Model

    from bench.synthetic import VITL
    from core.model.int8 import FinalTokens as Tokens

    torch.manual_seed(0)
    model = Dinov2Model(
        Dinov2Config(**{**VITL, "num_hidden_layers": args.layers, "layerscale_value": 1.0})
    ).eval()
    x = torch.randn(8, 3, 224, 224)
    results: dict[str, float] = {}

    def timed(label: str, run: Callable[[], object]) -> None:
        with torch.inference_mode():
            run()
            best = min(_seconds(run) for _ in range(3))
        results[label] = 8 / best
        print(f"{label}: {results[label]:.2f} img/s ({args.layers} layers)", flush=True)

    timed("torch fp32", lambda: model(pixel_values=x))
    bf16 = copy.deepcopy(model).bfloat16()
    timed("torch bf16", lambda: bf16(pixel_values=x.bfloat16()))
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        ao = quantize_dynamic(
            copy.deepcopy(model), {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )
        timed("torch.ao dynamic int8", lambda: ao(pixel_values=x))
    except ImportError:
        print("torch.ao quantization: not available")
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        tao = copy.deepcopy(model)
        quantize_(tao, Int8DynamicActivationInt8WeightConfig())
        timed("torchao int8 dynamic", lambda: tao(pixel_values=x))
    except ImportError:
        print("torchao: not installed")

    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory() as tmp:
            plain, quant = Path(tmp) / "m.onnx", Path(tmp) / "m8.onnx"
            torch.onnx.export(
                Tokens(model), (x,), plain, input_names=["x"], dynamic_axes={"x": {0: "b"}}, dynamo=False
            )
            quantize_dynamic(plain, quant, weight_type=QuantType.QInt8, per_channel=True)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = torch.get_num_threads()
            for path, label in ((plain, "ONNX Runtime fp32"), (quant, "ONNX Runtime dynamic int8")):
                session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                timed(label, lambda s=session: s.run(None, {"x": x.numpy()}))
    except ImportError:
        print("onnxruntime / onnx: not installed")
    try:
        import nncf
        import openvino as ov

        core = ov.Core()
        converted = ov.convert_model(Tokens(model), example_input=x)
        threads = {"INFERENCE_NUM_THREADS": torch.get_num_threads()}
        fp32 = core.compile_model(converted, "CPU", {**threads, "INFERENCE_PRECISION_HINT": "f32"})
        timed("OpenVINO fp32", lambda: fp32(x.numpy()))
        default = core.compile_model(converted, "CPU", threads)
        timed("OpenVINO default precision", lambda: default(x.numpy()))
        calibration = nncf.Dataset([torch.randn(1, 3, 224, 224).numpy() for _ in range(4)])
        quantized = nncf.quantize(
            converted, calibration, model_type=nncf.ModelType.TRANSFORMER, subset_size=4
        )
        int8 = core.compile_model(quantized, "CPU", threads)
        timed("OpenVINO + NNCF static int8", lambda: int8(x.numpy()))
    except ImportError:
        print("openvino / nncf: not installed")
    base = results["torch fp32"]
    print("\n| backend | img/s | × torch fp32 |\n|---|---:|---:|")
    for label, rate in results.items():
        print(f"| {label} | {rate:.2f} | {rate / base:.2f} |")
    return 0


def _seconds(run: Callable[[], object]) -> float:
    t = time.perf_counter()
    run()
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
