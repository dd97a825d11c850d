"""The face measurements of docs/faces.md (nofa/bench/faces/) run: the ground-truth camera
check end to end on a few poses, the others as far as their options (dlib takes longer)."""

from __future__ import annotations

import pytest

from nofa.bench.faces import camera, geometry_fit


def test_camera_accuracy_against_ground_truth(capsys):
    camera.main(["--skip-dlib", "--yaws=-20,20", "--pitches=0", "--noise=0,1"])
    out = capsys.readouterr().out
    assert "ground truth, noise 0 px at 224: 2 poses" in out and "astronaut" not in out
    assert "|yaw error| median 0.0" in out.splitlines()[0]  # exact points: the exact pose


@pytest.mark.parametrize("module", [camera, geometry_fit], ids=lambda m: m.__name__)
def test_measurements_parse_their_options(module, capsys):
    with pytest.raises(SystemExit) as stop:
        module.main(["--help"])
    assert stop.value.code == 0
    assert f"python -m {module.__name__}" in capsys.readouterr().out
