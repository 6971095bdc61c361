"""The agent's robustness probe: what each of its 31 numbers means, and which surrogate computes them."""

from __future__ import annotations

import numpy as np
import pytest

from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION, Ladder, encode
from adacompress.errors import AdaCompressError
from adacompress.features import (
    DEFAULT_FEATURIZER,
    PROBE_RUNGS,
    Featurizer,
    ProbeFeaturizer,
    is_probe,
    make_featurizer,
    probed_actions,
)
from adacompress.rate import estimate_ratios
from adacompress.upload import WORKING_VIEW_PX, Upload


@pytest.fixture(scope="module")
def probe() -> ProbeFeaturizer:
    return make_featurizer("probe:lite1")


def test_the_default_featurizer_is_a_known_name():
    featurizer = make_featurizer(DEFAULT_FEATURIZER)
    assert featurizer.name == DEFAULT_FEATURIZER and featurizer.dim > 0


def test_the_int8_probe_reads_the_same_sizes_through_another_surrogate(photos):
    float32, int8 = (make_featurizer(name).embed(photos[2]) for name in ("probe:lite1", "probe:lite1-int8"))
    np.testing.assert_array_equal(int8[-len(DEFAULT_LADDER):], float32[-len(DEFAULT_LADDER):])
    assert not np.array_equal(int8, float32)
    surrogate = np.abs(int8 - float32)[: 4 * PROBE_RUNGS + 4]
    survives = np.arange(PROBE_RUNGS) * 4 + 1  # whether a rung keeps the top-1: flips on a near-tie
    assert surrogate[survives].sum() <= 1
    assert np.delete(surrogate, survives).max() < 0.5  # the same answers, give or take rounding


def test_names_pick_the_surrogate():
    assert make_featurizer("probe").variant == "lite0"  # agent files written before probe:VARIANT existed
    assert make_featurizer("probe:lite1").variant == "lite1"
    assert make_featurizer("probe:lite1").name == "probe:lite1"
    assert make_featurizer("probe:lite1-int8:2").name == "probe:lite1-int8:2"
    assert type(make_featurizer("embedding")) is Featurizer
    assert is_probe("probe") and is_probe("probe:lite2") and not is_probe("embedding")


@pytest.mark.parametrize("name", ["probe:lite9", "probes", "mobilenet"])
def test_unknown_featurizers_are_refused_by_name(name):
    with pytest.raises(AdaCompressError, match="unknown"):
        make_featurizer(name)


def test_layout_per_rung_then_original_then_size_ratios(probe, photos):
    vector = probe.embed(photos[0])
    assert vector.shape == (probe.dim,) == (4 * PROBE_RUNGS + 4 + len(DEFAULT_LADDER),)
    assert vector.dtype == np.float32
    assert np.all(vector >= probe.low) and np.all(vector <= probe.high)
    per_rung = vector[: 4 * PROBE_RUNGS].reshape(PROBE_RUNGS, 4)
    assert set(per_rung[:, 1]) <= {0.0, 1.0}  # whether the surrogate's top-1 survived
    assert np.all(per_rung[:, 0] <= per_rung[:, 3] + 1e-6)  # P(original top-1) <= the top probability
    entropy, top1, top2, top3 = vector[4 * PROBE_RUNGS: 4 * PROBE_RUNGS + 4]
    assert entropy > 0 and 1 >= top1 >= top2 >= top3 > 0


def test_size_ratios_are_each_rung_against_the_reference(probe, photos):
    image = photos[1]
    ratios = probe.embed(image)[-len(DEFAULT_LADDER):]
    estimated = estimate_ratios(Upload(image), DEFAULT_LADDER.actions, REFERENCE_ACTION)
    np.testing.assert_allclose(ratios, estimated, rtol=1e-6)  # the rate module's estimates, not a copy of them
    assert ratios[DEFAULT_LADDER.actions.index(REFERENCE_ACTION)] == pytest.approx(1.0)
    assert np.all(np.diff(ratios) > 0)  # higher JPEG quality, more bytes
    reference = encode(image, REFERENCE_ACTION).info.bytes
    real = np.array([encode(image, action).info.bytes / reference for action in DEFAULT_LADDER.actions])
    assert np.all((ratios > real / 2) & (ratios < real * 2))  # estimates of the full-size ratios, roughly


def test_surrogates_see_differently(probe, photos):
    lite0 = make_featurizer("probe").embed(photos[2])
    lite1 = probe.embed(photos[2])
    np.testing.assert_array_equal(lite0[-len(DEFAULT_LADDER):], lite1[-len(DEFAULT_LADDER):])  # same sizes
    assert not np.allclose(lite0[: 4 * PROBE_RUNGS + 4], lite1[: 4 * PROBE_RUNGS + 4])  # different models


def test_a_short_ladder_probes_only_the_rungs_it_has(photos):
    probe = make_featurizer("probe:lite1", Ladder.parse("jpeg:10,60"))
    assert probe.rungs == 2 and probe.dim == 4 * 2 + 4 + 2
    assert probe.embed(photos[0]).shape == (probe.dim,)


def test_an_upload_holding_its_encodings_probes_like_a_fresh_one(probe, photos):
    image = photos[4]
    warm = Upload(image)
    for action in DEFAULT_LADDER.actions:
        warm.encoded(action)
    first = probe.observe(warm)
    fresh = Upload(image.copy())
    np.testing.assert_array_equal(first, probe.observe(fresh))
    np.testing.assert_array_equal(first, probe.observe(warm))  # and probing twice changes nothing
    np.testing.assert_array_equal(first, probe.embed(image))


def test_a_small_upload_has_its_real_size_ratios(probe, photos):
    short_side = WORKING_VIEW_PX + WORKING_VIEW_PX // 4  # under twice the working view: nothing to reduce
    image = photos[5].resize((short_side * 3 // 2, short_side))
    upload = Upload(image)
    ratios = probe.observe(upload)[-len(DEFAULT_LADDER):]
    sizes = np.array([len(upload.encoded(action).data) for action in DEFAULT_LADDER.actions], np.float64)
    np.testing.assert_allclose(ratios, sizes / len(upload.encoded(REFERENCE_ACTION).data), rtol=1e-6)
    # and those memoized encodings are the real encodings of the image
    assert all(upload.encoded(a).data == encode(image, a).data for a in DEFAULT_LADDER.actions)


def test_the_probe_shows_the_surrogate_the_cheapest_qualities_of_the_largest_size():
    assert probed_actions(DEFAULT_LADDER) == DEFAULT_LADDER.actions[:PROBE_RUNGS]
    capped = Ladder.parse("jpeg:10@256;jpeg:25,5,10,15,75;jpeg:15,35@128")
    assert [a.label for a in probed_actions(capped)] == ["jpeg:5", "jpeg:10", "jpeg:15", "jpeg:25"]
    assert [a.label for a in probed_actions(Ladder.parse("jpeg:35,15@128;jpeg:10,25@256"))] == \
        ["jpeg:10@256", "jpeg:25@256"]


def test_a_capped_ladder_probe_reads_the_capped_sizes(photos):
    ladder = Ladder.parse("jpeg:5,25,75;jpeg:5,25@96")
    probe = ProbeFeaturizer(ladder, "lite0", 2)
    vector = probe.observe(Upload(photos[0]))
    assert vector.shape == (4 * 2 + 4 + len(ladder),)
    ratios = vector[-len(ladder):]
    assert ratios[3] < ratios[0] / 2  # jpeg:5@96 costs far less than jpeg:5 at full size
    assert ratios[3] < ratios[4] < ratios[1]  # and q=25@96 less than q=25 at full size
