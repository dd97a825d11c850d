"""The face measurements of docs/faces.md (nofa/bench/faces/) run: the projected-landmark
camera check end to end, the others as far as their options (dlib renders take minutes)."""

from __future__ import annotations

import pytest

from nofa.bench.faces import camera, geometry_fit, landmark_models


def test_camera_accuracy_on_projected_landmarks(capsys):
    camera.main(["--skip-dlib", "--yaws=-20,20", "--pitches=0"])
    out = capsys.readouterr().out
    assert "projected: 2/2 poses" in out and "dlib" not in out


@pytest.mark.parametrize("module", [geometry_fit, landmark_models], ids=lambda m: m.__name__)
def test_measurements_parse_their_options(module, capsys):
    with pytest.raises(SystemExit) as stop:
        module.main(["--help"])
    assert stop.value.code == 0
    assert f"python -m {module.__name__}" in capsys.readouterr().out
