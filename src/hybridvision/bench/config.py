"""``BenchConfig``: what ``hybridvision bench`` measures and how (the protocol of spec §5).

One config describes one setting (device, precision, layout, compile, backend, fusion) swept over models and
batch sizes. The command line builds it (defaults < ``--quick`` < ``--config file.yaml`` < flags); library users
build it directly. Invalid combinations raise ``ConfigError`` naming the fix when the config is made;
``check_runtime`` adds the checks that depend on this machine (CUDA present, onnxruntime importable).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..config import ConfigError, at_least, check, one_of, parse_device

# int8: static int8 weights and activations (PT2E through torch.compile on the torch backend, QDQ files elsewhere);
# inputs and outputs stay fp32, so its dtype is fp32's.
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}
BACKENDS = ("torch", "onnxruntime", "openvino", "executorch")
RUNTIME_PRECISIONS = ("fp32", "int8")  # what the exported-file backends are timed in
RUNTIME_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "executorch": "executorch.runtime"}
AGAINST = ("timm", "onnxruntime")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark setting. Latency is always batch 1; throughput is measured at every batch size."""

    models: tuple[str, ...] = ()  # registered names or glob patterns ("coatnet_*"); globs skip test variants
    batch_sizes: tuple[int, ...] = (1, 16, 64)  # throughput at each; latency percentiles at batch 1
    img_size: int | None = None  # square input side; None = each model's own size
    device: str = "cpu"  # "cpu", "cuda" or "cuda:N"
    precision: str = "fp32"  # "fp32", "bf16" or "fp16"
    amp: bool = True  # bf16/fp16 through autocast (True) or with weights and inputs cast (False)
    channels_last: bool = True  # NHWC weights and inputs (the layout our backbones run in)
    fused: bool = True  # model.fuse() before timing: BatchNorm folded into convs (inference form)
    compile: bool = False  # torch.compile(fullgraph=True); compile time is reported apart
    compile_mode: str = "default"
    compile_backend: str = "inductor"
    backend: str = "torch"  # "torch", or a runtime our model is exported to: "onnxruntime", "openvino", "executorch"
    runtimes: tuple[str, ...] = ()  # more "backend:precision" pairs timed in the same run ("all": every installed)
    calib: str = "fashion-mnist"  # int8 calibration and check images: "fashion-mnist" or an image folder
    calib_count: int = 64  # calibration images for int8 files
    int8_min_sqnr_db: float = 15.0  # int8 outputs must reach this SQNR against fp32 on held-out images
    against: tuple[str, ...] = ()  # other implementations timed in the same run: "timm", "onnxruntime"
    timm_names: tuple[str, ...] = ()  # extra "ours=theirs" name pairs for --against timm
    repeats: int = 3  # measurements per model; median of repeat medians, min/max as the spread
    isolate: bool = True  # every repeat in a fresh process (False: in this process, for debugging)
    warmup_iters: int = 50  # warm-up lasts at least this many iterations ...
    warmup_s: float = 2.0  # ... and at least this many seconds (whichever is longer)
    iters: int = 200  # timed iterations per loop (at least) ...
    min_s: float = 1.0  # ... and timed seconds (at least)
    max_s: float = 60.0  # cap on each warm-up and timed loop, so slow models and big batches finish
    threads: int = 0  # CPU threads for torch and onnxruntime; 0 = torch's default
    seed: int = 0  # weights come from this seed (or from timm's model under --against timm)
    atol: float = 1e-4  # max |difference| allowed between implementations before timing (fp32 outputs)
    roofline: bool = True  # measure the device's GEMM peak in the same run and report the fraction reached
    plugins: tuple[str, ...] = ()  # modules imported first in every process (e.g. ones that register models)
    timeout_s: float = 0.0  # per measuring process; 0 = no limit

    def __post_init__(self) -> None:
        one_of("precision", self.precision, PRECISIONS)
        one_of("backend", self.backend, BACKENDS)
        for pair in self.runtime_pairs():
            one_of("runtimes backend", pair[0], BACKENDS)
            one_of("runtimes precision", pair[1], RUNTIME_PRECISIONS)
        one_of("compile_mode", self.compile_mode, COMPILE_MODES)
        for other in self.against:
            one_of("against", other, AGAINST)
        parse_device(self.device, auto=False)
        self._check_counts()
        self._check_combinations()
        for pair in self.timm_names:
            check(
                pair.count("=") == 1 and all(pair.split("=")),
                f"timm_names entries look like 'ours=theirs', got {pair!r}",
            )

    def _check_counts(self) -> None:
        check(
            bool(self.batch_sizes) and min(self.batch_sizes) >= 1,
            f"batch_sizes must be positive integers, got {self.batch_sizes}",
        )
        check(self.img_size is None or self.img_size >= 1, f"img_size must be positive, got {self.img_size}")
        at_least(self, 1, "repeats", "iters")
        at_least(self, 0, "warmup_iters", "warmup_s", "min_s", "threads", "timeout_s", "atol", "int8_min_sqnr_db")
        at_least(self, 1, "calib_count")
        check(
            self.max_s > 0 and self.max_s >= self.min_s,
            f"max_s ({self.max_s}) must be positive and >= min_s ({self.min_s})",
        )

    def _check_combinations(self) -> None:
        if self.backend == "torch" and self.precision == "int8":
            check(
                self.compile, "int8 on the torch backend is PT2E int8, which runs int8 kernels compiled: add --compile"
            )
        if self.backend != "torch":
            check(not self.compile, "--compile applies to the torch backend; drop it or use --backend torch")
            check(
                self.precision in RUNTIME_PRECISIONS,
                f"the {self.backend} backend is timed in fp32 or int8; use --precision fp32 or int8 "
                "(`hybridvision export --precision fp16 --check` checks an fp16 export)",
            )
        if self.backend == "onnxruntime":
            check(
                "onnxruntime" not in self.against,
                "--against onnxruntime compares with the torch backend; use --backend torch",
            )

    def runtime_pairs(self) -> list[tuple[str, str]]:
        """``runtimes`` as (backend, precision) pairs; "all": every backend x fp32/int8 (installed ones kept later)."""
        if self.runtimes == ("all",):
            return [(b, p) for b in BACKENDS for p in RUNTIME_PRECISIONS if (b, p) != ("torch", "fp32")]
        pairs = []
        for entry in self.runtimes:
            backend, _, precision = entry.partition(":")
            check(bool(precision), f"runtimes entries look like 'backend:precision' (onnxruntime:int8), got {entry!r}")
            pairs.append((backend, precision))
        return pairs

    @property
    def dtype(self) -> torch.dtype:
        return PRECISIONS[self.precision]

    @property
    def layout(self) -> str:
        return "nhwc" if self.channels_last else "nchw"

    def timm_name_map(self) -> dict[str, str]:
        return dict(pair.split("=") for pair in self.timm_names)


# Smoke-test bounds for CI and tests: a few iterations, one repeat, still in fresh processes.
QUICK = dict(repeats=1, warmup_iters=2, warmup_s=0.0, iters=5, min_s=0.0, max_s=5.0)


def quick(config: BenchConfig | None = None) -> BenchConfig:
    """``config`` (default: the defaults) with the ``--quick`` bounds."""
    return dataclasses.replace(config or BenchConfig(), **QUICK)


def expand_models(patterns: tuple[str, ...]) -> list[str]:
    """Names and glob patterns -> registered names, in the order given, without duplicates."""
    from ..registry import get_entry

    if not patterns:
        raise ConfigError("name at least one model (or a pattern such as 'coatnet_*'); see `hybridvision models`")
    names: list[str] = []
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            matched = _matching(pattern)
            if not matched:
                raise ConfigError(f"no model matches {pattern!r}; see `hybridvision models`")
        else:
            get_entry(pattern)  # raises KeyError with suggestions
            matched = [pattern]
        names += [n for n in matched if n not in names]
    return names


def _matching(pattern: str) -> list[str]:
    """A glob's names: backbones first ("*" means every backbone); task models (UperNet, UNets) and then test
    variants only when the glob matches nothing else ("upernet_*", "*_test")."""
    from ..registry import list_models

    for subset in (dict(test=False, task="classification"), dict(test=False), dict(test=True)):
        matched = list_models(pattern, **subset)
        if matched:
            return matched
    return []


def check_runtime(config: BenchConfig) -> None:
    """Checks that depend on this machine: the device exists, the chosen backends import."""
    if config.device.startswith("cuda"):
        _check_cuda(config)
    if config.backend == "onnxruntime" or "onnxruntime" in config.against:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise ConfigError(
                "onnxruntime is not installed; install it with `pip install 'hybridvision[onnx]'`"
            ) from None
    if config.backend in RUNTIME_MODULES and not installed(config.backend):
        raise ConfigError(f"--backend {config.backend}: {config.backend} is not installed (pip install it)")


def installed(backend: str) -> bool:
    """Whether ``backend``'s runtime imports here (torch always does)."""
    import importlib

    if backend not in RUNTIME_MODULES:
        return True
    try:
        importlib.import_module(RUNTIME_MODULES[backend])
    except ImportError:
        return False
    return True


def _check_cuda(config: BenchConfig) -> None:
    if not torch.cuda.is_available():
        raise ConfigError(
            f"--device {config.device} was asked for, but torch {torch.__version__} sees no CUDA device "
            "(torch.cuda.is_available() is False). Use --device cpu, or run on a machine with a GPU and a "
            "CUDA build of torch."
        )
    index = parse_device(config.device)[1] or 0
    if index >= torch.cuda.device_count():
        raise ConfigError(f"--device {config.device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    if config.precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"{torch.cuda.get_device_name(index)} does not support bf16; use --precision fp16")
