"""The action ladder and encoding: determinism, monotone sizes, parsing, info fields."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from adacompress.codec import (
    DEFAULT_LADDER,
    REFERENCE_ACTION,
    Action,
    Ladder,
    LadderError,
    codec_available,
    encode,
)
from adacompress.errors import AdaCompressError


def needs(codec: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not codec_available(codec), reason=f"this Pillow build cannot write {codec}")


needs_webp = needs("webp")
OPTIONAL_CODECS = [pytest.param(codec, marks=needs(codec)) for codec in ("webp", "avif")]


@pytest.mark.parametrize("action", [
    Action("jpeg", 5), Action("jpeg", 75), Action("jpeg", 95),
    *(pytest.param(Action(codec, 50), marks=needs(codec)) for codec in ("webp", "avif")),
], ids=lambda action: action.label)
def test_encoding_is_deterministic(textured_image, action):
    first = encode(textured_image, action)
    second = encode(textured_image.copy(), action)
    assert first.data == second.data
    assert first.info == second.info


def test_default_ladder_is_the_papers_plus_q10():
    assert [a.quality for a in DEFAULT_LADDER.actions] == [5, 10, *range(15, 100, 10)]
    assert {a.codec for a in DEFAULT_LADDER.actions} == {"jpeg"}
    assert REFERENCE_ACTION == Action("jpeg", 75)
    assert REFERENCE_ACTION in DEFAULT_LADDER.actions


def _ladder_sizes(image: Image.Image) -> list[int]:
    return [DEFAULT_LADDER.encode(image, i).info.bytes for i in range(len(DEFAULT_LADDER))]


def test_bytes_increase_with_quality_on_a_textured_image(textured_image):
    sizes = _ladder_sizes(textured_image)
    assert all(a < b for a, b in zip(sizes, sizes[1:], strict=False)), sizes


@pytest.mark.parametrize("photo_index", range(3), ids=["astronaut", "coffee", "chelsea"])
def test_bytes_increase_with_quality_on_real_photos(photos, photo_index):
    sizes = _ladder_sizes(photos[photo_index])
    assert all(a < b for a, b in zip(sizes, sizes[1:], strict=False)), sizes


@pytest.mark.parametrize("quality", [5, 50, 95])
def test_info_fields_describe_the_bytes(textured_image, quality):
    encoded = encode(textured_image, Action("jpeg", quality))
    width, height = textured_image.size
    assert encoded.info.codec == "jpeg"
    assert encoded.info.quality == quality
    assert encoded.info.bytes == len(encoded.data)
    assert encoded.info.bits_per_pixel == pytest.approx(8 * len(encoded.data) / (width * height))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_jpeg_output_is_an_rgb_jpeg_of_the_same_size(textured_image, mode):
    encoded = encode(textured_image.convert(mode), Action("jpeg", 60))
    decoded = Image.open(io.BytesIO(encoded.data))
    assert decoded.format == "JPEG"
    assert decoded.mode == "RGB"
    assert decoded.size == textured_image.size


def test_low_quality_loses_more_detail(textured_image):
    original = np.asarray(textured_image, dtype=np.float64)

    def error(quality: int) -> float:
        data = encode(textured_image, Action("jpeg", quality)).data
        return float(np.abs(np.asarray(Image.open(io.BytesIO(data)), dtype=np.float64) - original).mean())

    assert error(5) > error(50) > error(95)


@pytest.mark.parametrize("codec", OPTIONAL_CODECS)
def test_optional_codecs_encode_and_shrink_with_quality(textured_image, codec):
    low, high = (encode(textured_image, Action(codec, q)) for q in (10, 90))
    decoded = Image.open(io.BytesIO(high.data))
    assert decoded.format == codec.upper()
    assert decoded.size == textured_image.size
    assert low.info.bytes < high.info.bytes


def test_ladder_index_accepts_numpy_integers(textured_image):
    index = np.int64(3)
    assert DEFAULT_LADDER.encode(textured_image, index).data == encode(textured_image, DEFAULT_LADDER[3]).data


@pytest.mark.parametrize("spec", [
    "jpeg:5,15,25",
    "jpeg:5,15,25,35,45,55,65,75,85,95",
    pytest.param("jpeg:5,15;webp:10,30", marks=needs_webp),
    pytest.param("webp:50;jpeg:5;webp:10", marks=needs_webp),
])
def test_ladder_spec_round_trips(spec):
    ladder = Ladder.parse(spec)
    assert ladder.spec == spec
    assert Ladder.parse(ladder.spec) == ladder


def test_ladder_parse_keeps_the_order_given():
    ladder = Ladder.parse("jpeg:50;webp:20;jpeg:10")
    assert [a.label for a in ladder.actions] == ["jpeg:50", "webp:20", "jpeg:10"]
    assert Ladder.parse(ladder.spec).actions == ladder.actions


def test_ladder_parse_normalises_case_and_spaces():
    assert Ladder.parse(" JPEG: 5, 15 ; ") == Ladder.parse("jpeg:5,15")
    assert Ladder.parse(DEFAULT_LADDER.spec) == DEFAULT_LADDER


@pytest.mark.parametrize("spec, named", [
    ("png:5", "'png'"),
    ("jpeg:0", "quality 0"),
    ("jpeg:101", "quality 101"),
    ("jpeg:-5", "quality -5"),
    ("jpeg:5,15,5", "repeat"),
    ("jpeg:5;jpeg:5", "repeat"),
    ("jpeg:high", "'high'"),
    ("jpeg", "codec:q1"),
    ("jpeg:", "codec:q1"),
    ("", "at least one"),
    (" ; ", "at least one"),
])
def test_ladder_parse_errors_name_the_problem(spec, named):
    with pytest.raises(LadderError, match=named) as caught:
        Ladder.parse(spec)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, AdaCompressError)
    assert caught.value.code == "bad_ladder"


@pytest.mark.parametrize("codec, quality", [("gif", 50), ("jpeg", 0), ("jpeg", 101)])
def test_action_validates_itself(codec, quality):
    with pytest.raises(LadderError):
        Action(codec, quality)


def test_empty_ladder_is_rejected():
    with pytest.raises(LadderError, match="at least one"):
        Ladder(())


@pytest.mark.parametrize("text, expected", [
    ("jpeg:25", Action("jpeg", 25)),
    ("25", Action("jpeg", 25)),
    ("jpeg:25@256", Action("jpeg", 25, 256)),
    (" JPEG:10 @ 128", Action("jpeg", 10, 128)),
])
def test_action_parse_reads_labels(text, expected):
    assert Action.parse(text) == expected
    assert Action.parse(expected.label) == expected


@pytest.mark.parametrize("text, named", [("jpeg:25@8", "below 16"), ("jpeg:25@big", "codec:quality"),
                                         ("jpeg:x", "codec:quality"), ("gif:25", "'gif'")])
def test_action_parse_errors_name_the_problem(text, named):
    with pytest.raises(LadderError, match=named):
        Action.parse(text)


def test_size_caps_shrink_the_short_side_keep_the_aspect_and_never_upscale():
    capped = Action("jpeg", 25, 256)
    assert capped.target_size((4000, 3000)) == (341, 256)
    assert capped.target_size((300, 1200)) == (256, 1024)
    assert capped.target_size((200, 150)) == (200, 150)
    assert Action("jpeg", 25).target_size((4000, 3000)) == (4000, 3000)


def test_a_capped_encoding_has_the_capped_size_and_costs_fewer_bytes(textured_image):
    image = textured_image.resize((640, 480))
    capped = encode(image, Action("jpeg", 25, 120))
    decoded = Image.open(io.BytesIO(capped.data))
    assert decoded.size == (160, 120)
    assert capped.info.bits_per_pixel == pytest.approx(8 * capped.info.bytes / (160 * 120))
    assert capped.info.bytes < encode(image, Action("jpeg", 25)).info.bytes / 4
    assert encode(image, Action("jpeg", 25, 960)).data == encode(image, Action("jpeg", 25)).data  # no upscale


@pytest.mark.parametrize("spec", ["jpeg:5,15;jpeg:5,25@256;jpeg:10@128",
                                  pytest.param("jpeg:5@192;webp:30@192", marks=needs_webp)])
def test_ladder_specs_with_size_caps_round_trip(spec):
    ladder = Ladder.parse(spec)
    assert ladder.spec == spec
    assert Ladder.parse(ladder.spec) == ladder


def test_ladder_runs_are_one_codec_and_cap_each_qualities_ascending_largest_size_first():
    ladder = Ladder.parse("jpeg:25,10@128;jpeg:5,15;jpeg:10,25@256;jpeg:35")
    assert ladder.runs == [[2, 3, 6], [4, 5], [1, 0]]
    assert ladder[4] == Action("jpeg", 10, 256)


def test_a_quality_floor_raises_the_quality_at_every_size():
    assert DEFAULT_LADDER.at_floor(3) == tuple(range(3, len(DEFAULT_LADDER)))
    assert DEFAULT_LADDER.at_floor(99) == (len(DEFAULT_LADDER) - 1,)  # the top rung stays
    ladder = Ladder.parse("jpeg:5,15,25,75;jpeg:5,15@192")
    assert ladder.at_floor(0) == tuple(range(6))
    assert [ladder[i].label for i in ladder.at_floor(1)] == ["jpeg:15", "jpeg:25", "jpeg:75", "jpeg:15@192"]


def test_an_answer_implies_the_answers_of_the_rungs_it_bounds():
    ladder = Ladder.parse("jpeg:5,15,25;jpeg:5,15,25@192;jpeg:5,15@96")
    labels = lambda rungs: {ladder[i].label for i in rungs}  # noqa: E731
    middle = ladder.actions.index(Action("jpeg", 15, 192))
    assert labels(ladder.implied_by(middle, hit=True)) == {"jpeg:25@192", "jpeg:15", "jpeg:25"}
    assert labels(ladder.implied_by(middle, hit=False)) == {"jpeg:5@192", "jpeg:5@96", "jpeg:15@96"}
    assert DEFAULT_LADDER.implied_by(2, hit=True) == tuple(range(3, len(DEFAULT_LADDER)))
    assert DEFAULT_LADDER.implied_by(2, hit=False) == (0, 1)
