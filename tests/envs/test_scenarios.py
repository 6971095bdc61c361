"""Drift scenarios: built-ins, the file format and its errors, and the seeded, lazy image stream."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from adacompress.envs import scenarios
from adacompress.envs.scenarios import (
    Phase,
    Scenario,
    ScenarioError,
    builtin_scenarios,
    load_scenario,
    scenario_stream,
)
from adacompress.images import ImageSet

BUILTINS = {
    "day-to-night": [("day", 300, "none", 3, None), ("night", 500, "night", 3, None)],
    "fog-rolls-in": [("clear", 300, "none", 3, None), ("light-fog", 200, "fog", 2, None),
                     ("thick-fog", 300, "fog", 4, None)],
    "provider-swap": [("before-swap", 300, "none", 3, None), ("after-swap", 500, "none", 3, "local:lite0")],
}


class CountingImageSet(ImageSet):
    """Counts decodes, to show that building a stream decodes nothing."""

    loads = 0

    def load(self, index: int):
        self.loads += 1
        return super().load(index)


@pytest.fixture
def folder_set(image_folder: Path) -> ImageSet:
    return ImageSet.from_folder(image_folder)


def two_phases(second: str = "none", seed: int = 0, first_images: int = 3, second_images: int = 9) -> Scenario:
    return Scenario("t", "", seed, (Phase("a", first_images), Phase("b", second_images, second, 4)))


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtins_load_with_their_phases(name):
    scenario = load_scenario(name)
    assert scenario.name == name and scenario.description and scenario.seed == 0
    assert [(p.name, p.images, p.transform, p.severity, p.backend) for p in scenario.phases] == BUILTINS[name]
    assert scenario.total_images == sum(row[1] for row in BUILTINS[name])


def test_builtin_names_are_listed():
    assert builtin_scenarios() == sorted(BUILTINS)


def test_file_round_trip_with_defaults(tmp_path):
    path = tmp_path / "dusk.toml"
    path.write_text('description = "evening"\nseed = 7\n\n[[phases]]\nimages = 2\n\n'
                    '[[phases]]\nname = "late"\nimages = 4\ntransform = "night"\nseverity = 5\n'
                    'backend = "local:lite0"\n')
    expected = Scenario("dusk", "evening", 7, (Phase("phase-1", 2), Phase("late", 4, "night", 5, "local:lite0")))
    assert load_scenario(path) == expected
    assert load_scenario(str(path)) == expected
    assert expected.total_images == 6


def test_unknown_source_lists_the_builtins():
    with pytest.raises(ScenarioError, match="no scenario file 'nowhere.toml'.*day-to-night, fog-rolls-in"):
        load_scenario("nowhere.toml")


HEAD = 'name = "t"\nseed = 1\n\n[[phases]]\nimages = 3\n\n[[phases]]\n'
"""Phase 1 on lines 4-5, phase 2's header on line 7: the cases below write phase 2 from line 8."""

MALFORMED = {
    "typo": (HEAD + "serverity = 3\nimages = 4\n", "serverity", 8, 2,
             "allowed keys are name, images, transform, severity, backend"),
    "count as string": (HEAD + 'images = "300"\n', "images", 8, 2, "must be an integer, got str"),
    "count as bool": (HEAD + "images = true\n", "images", 8, 2, "must be an integer, got bool"),
    "zero count": (HEAD + "images = 0\n", "images", 8, 2, "at least 1"),
    "negative count": (HEAD + "images = -5\n", "images", 8, 2, "at least 1"),
    "missing count": (HEAD + 'transform = "night"\n', "images", 7, 2, "images is missing"),
    "fractional severity": (HEAD + "severity = 2.5\nimages = 4\n", "severity", 8, 2, "must be an integer"),
    "severity 0": (HEAD + "severity = 0\nimages = 4\n", "severity", 8, 2, "use 1 (mild) to 5 (severe)"),
    "severity 6": (HEAD + "severity = 6\nimages = 4\n", "severity", 8, 2, "use 1 (mild) to 5 (severe)"),
    "unknown transform": (HEAD + 'transform = "nigth"\nimages = 4\n', "transform", 8, 2,
                          "'nigth' is unknown; use one of none, night, fog"),
    "transform not a string": (HEAD + "transform = 3\nimages = 4\n", "transform", 8, 2, "must be a string"),
    "unknown backend": (HEAD + 'backend = "nope:x"\nimages = 4\n', "backend", 8, 2, "unknown; use one of"),
    "name not a string": (HEAD + "name = 5\nimages = 4\n", "name", 8, 2, "must be a string"),
    "duplicate name": (HEAD.replace("images = 3", 'images = 3\nname = "x"') + 'name = "x"\nimages = 4\n', "name", 9, 2,
                       "already phase 1's"),
    "inline phase": ('phases = [{images = 2}, {images = 0}]\n', "images", None, 2, "at least 1"),
    "top-level typo": ('name = "t"\nsed = 1\n[[phases]]\nimages = 1\n', "sed", 2, None,
                       "allowed keys are name, description, seed, phases"),
    "seed not an integer": ('seed = "zero"\n[[phases]]\nimages = 1\n', "seed", 1, None, "must be a non-negative"),
    "negative seed": ('\nseed = -1\n[[phases]]\nimages = 1\n', "seed", 2, None, "non-negative"),
    "no phases": ('name = "t"\n', "phases", None, None, "no phases"),
    "empty phases": ('name = "t"\nphases = []\n', "phases", 2, None, "no phases"),
    "phases as a table": ('name = "t"\n[phases]\nimages = 1\n', "phases", 2, None, "array of tables"),
    "TOML syntax": ('name = "t"\nseed = \n', None, 2, None, "not valid TOML"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_names_the_file_line_phase_and_field(tmp_path, case):
    text, field, line, phase, fragment = MALFORMED[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    error = caught.value
    assert (error.field, error.line, error.phase) == (field, line, phase)
    message = str(error)
    assert message.startswith(f"scenario file {path}") and fragment in message
    for part in (field, line and f"line {line}", phase and f"phase {phase}"):
        assert not part or part in message
    assert error.code == "bad_scenario" and isinstance(error, ValueError)


def test_phases_built_in_code_are_checked_too():
    with pytest.raises(ScenarioError, match="severity = 9 is out of range") as caught:
        Phase("x", 10, "fog", 9)
    assert caught.value.field == "severity"
    with pytest.raises(ScenarioError, match="no phases"):
        Scenario("empty", "", 0, ())


def test_stream_has_the_declared_phases_in_order(folder_set):
    scenario = two_phases()
    items = list(scenario_stream(scenario, folder_set))
    assert [item.position for item in items] == list(range(12))
    assert Counter(item.phase_index for item in items) == {0: 3, 1: 9}
    assert [item.phase_index for item in items] == sorted(item.phase_index for item in items)
    assert all(item.phase is scenario.phases[item.phase_index] for item in items)
    assert len({item.name for item in items}) == 12


def test_stream_is_seeded(folder_set):
    def order(seed: int) -> list[str]:
        return [item.name for item in scenario_stream(two_phases(seed=seed, second_images=7), folder_set)]

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert sorted(order(0)) == sorted(order(1)), "two full passes: the same photos and crops, reordered"


def test_later_phase_shows_other_photos_and_every_pass_shows_each_once(folder_set):
    items = list(scenario_stream(two_phases(first_images=2, second_images=13), folder_set))
    first, second = items[:2], items[2:5]
    assert not {i.image_index for i in first} & {i.image_index for i in second}
    for view in range(3):
        assert sorted(i.image_index for i in items if i.view == view) == list(range(5))
    assert [i.view for i in items] == [0] * 5 + [1] * 5 + [2] * 5


def test_cycles_with_seeded_crops_once_the_folder_runs_out(folder_set):
    items = list(scenario_stream(two_phases(), folder_set))
    for item in items:
        original = folder_set.load(item.image_index).size
        width, height = item.load().size
        if item.view == 0:
            assert (width, height) == original and "#view" not in item.name
        else:
            assert width < original[0] and height < original[1] and item.name.endswith(f"#view{item.view}")
    again = {item.name: np.asarray(item.load()) for item in scenario_stream(two_phases(), folder_set)}
    assert all(np.array_equal(again[item.name], np.asarray(item.load())) for item in items)


def test_each_phase_applies_its_own_transform(folder_set):
    day = list(scenario_stream(two_phases("none"), folder_set))
    night = list(scenario_stream(two_phases("night"), folder_set))
    assert [item.name for item in day] == [item.name for item in night]
    for plain, dark in zip(day, night, strict=True):
        plain_pixels, dark_pixels = np.asarray(plain.load(), float), np.asarray(dark.load(), float)
        if dark.phase_index == 0:
            assert np.array_equal(plain_pixels, dark_pixels)
        else:
            assert dark_pixels.mean() < 0.8 * plain_pixels.mean()


def test_transform_gets_the_phase_severity_scenario_seed_and_stream_position(folder_set, monkeypatch):
    made, calls = [], []

    def recording(name, severity, seed=0):
        made.append((name, severity, seed))
        return lambda image, index=0: calls.append(index) or image

    monkeypatch.setattr(scenarios, "make_transform", recording)
    for item in scenario_stream(two_phases("fog", seed=5), folder_set):
        item.load()
    assert made == [("none", 3, 5), ("fog", 4, 5)]
    assert calls == list(range(12))


def test_building_the_stream_decodes_nothing(image_folder):
    images = CountingImageSet.from_folder(image_folder)
    items = list(scenario_stream(load_scenario("day-to-night"), images))
    assert images.loads == 0 and len(items) == 800 and len({item.name for item in items}) == 800
    items[-1].load()
    assert images.loads == 1
