"""Measurements behind the figures of docs/faces.md, one module each, run as scripts:

    python -m nofa.bench.faces.camera --resolution 256        # camera accuracy on renders
    python -m nofa.bench.faces.geometry_fit [PHOTO ...]       # the demo's landmark fit
    python -m nofa.bench.faces.landmark_models [--print lin]  # 3D landmark model calibration

They need the `faces` extra (dlib, scipy, scikit-image) and print their figures.
"""
