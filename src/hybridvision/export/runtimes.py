"""One loader per runtime: each turns an exported file into ``run(x) -> logits`` on numpy float32 batches, with a
given number of CPU threads, so that checks, ``predict`` and the benchmark call every runtime alike.

| file      | runtime                      | threads set through                          |
|-----------|------------------------------|----------------------------------------------|
| ``.onnx`` | onnxruntime (CPU)            | ``SessionOptions.intra_op_num_threads``      |
| ``.xml``  | OpenVINO (CPU, f32 hint)     | ``INFERENCE_NUM_THREADS``                    |
| ``.pte``  | ExecuTorch (XNNPACK)         | the process's thread count (torch's)         |
| ``.pt2``  | torch.export program (torch) | ``torch.set_num_threads``                    |

OpenVINO's CPU plugin runs fp32 models in bf16 on CPUs with bf16 instructions unless told otherwise; the loader
sets ``INFERENCE_PRECISION_HINT`` to f32 for fp32 files, so its outputs are fp32's. No runtime sends telemetry:
``telemetry_off`` opts OpenVINO's tools out in this process (nothing is written to the user's home).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

Run = Callable[[np.ndarray], np.ndarray]
RUNTIMES = {".onnx": "onnxruntime", ".xml": "openvino", ".pte": "executorch", ".pt2": "torch"}
INSTALL = {
    "onnxruntime": "pip install onnxruntime",
    "openvino": "pip install openvino",
    "executorch": "pip install executorch (it must keep your torch version)",
    "torch": "torch is installed",
}


class RuntimeMissing(ImportError):
    """The runtime a file needs is not installed; the message says what to install."""


def runtime_of(path: str | Path) -> str:
    """The runtime that loads ``path``, from its suffix."""
    suffix = Path(path).suffix
    if suffix not in RUNTIMES:
        raise ValueError(f"{path}: unknown model file type {suffix!r}; expected one of {', '.join(RUNTIMES)}")
    return RUNTIMES[suffix]


def load_runner(path: str | Path, threads: int = 0, precision: str = "fp32", compile: bool = False) -> Run:
    """``run(x)`` for the file at ``path`` on CPU with ``threads`` threads (0: the runtime's default).

    ``precision``: the file's ("fp32", "fp16", "int8"; OpenVINO's hint follows it). ``compile``: ``.pt2``
    programs go through ``torch.compile`` (int8 programs need it to run int8 kernels).
    """
    runtime = runtime_of(path)
    loaders = {"onnxruntime": _onnxruntime, "openvino": _openvino, "executorch": _executorch, "torch": _torch}
    try:
        return loaders[runtime](Path(path), threads, precision, compile)
    except ModuleNotFoundError as e:
        raise RuntimeMissing(f"{runtime} is needed to run {Path(path).name} ({e}); {INSTALL[runtime]}") from None


def _onnxruntime(path: Path, threads: int, precision: str, compile: bool) -> Run:
    from .onnx import onnx_session

    session = onnx_session(path, threads=threads or None)
    inp = session.get_inputs()[0]
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    return lambda x: session.run(None, {inp.name: x.astype(dtype, copy=False)})[0].astype(np.float32)


def _openvino(path: Path, threads: int, precision: str, compile: bool) -> Run:
    telemetry_off()
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": "f16" if precision == "fp16" else "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    return lambda x: np.array(request.infer({0: x})[compiled.output(0)], dtype=np.float32)


def _executorch(path: Path, threads: int, precision: str, compile: bool) -> Run:
    from executorch.runtime import Runtime

    if threads:
        torch.set_num_threads(threads)
    method = Runtime.get().load_program(str(path)).load_method("forward")
    return lambda x: method.execute([torch.from_numpy(np.ascontiguousarray(x))])[0].float().numpy()


def _torch(path: Path, threads: int, precision: str, compile: bool) -> Run:
    if precision == "int8":
        from .quantize import x86_quantizer

        x86_quantizer()  # registers the quantized ops the program calls
    if threads:
        torch.set_num_threads(threads)
    module = torch.export.load(str(path)).module()
    fn = torch.compile(module) if compile else module

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return fn(torch.from_numpy(np.ascontiguousarray(x))).float().numpy()

    return run


# ---- Telemetry


def telemetry_off() -> None:
    """Opt OpenVINO's tools (its converter, its telemetry package) out of usage telemetry in this process.

    Importing OpenVINO's converter starts its telemetry, which sends events unless a consent file in the user's
    home says no. We make the consent check decline before the converter is imported (and silence an instance
    made earlier), then swap the converter's telemetry module for its own no-op stub; nothing is written to disk.
    """
    try:
        from openvino_telemetry import main as telemetry_main
        from openvino_telemetry.utils import opt_in_checker
    except ImportError:
        telemetry_main = None
    if telemetry_main is not None:
        declined = opt_in_checker.ConsentCheckResult.DECLINED
        opt_in_checker.OptInChecker.check = lambda self, *a, **k: declined
        made = getattr(telemetry_main.Telemetry, "_SingletonMetaClass__single_instance", None)
        if made is not None:
            made.consent = False
    try:
        from openvino.tools.ovc import convert_impl, telemetry_stub, telemetry_utils
    except ImportError:
        return
    for module in (telemetry_utils, convert_impl):
        module.tm = telemetry_stub
    convert_impl.init_ovc_telemetry = lambda *a, **k: telemetry_stub.Telemetry()
