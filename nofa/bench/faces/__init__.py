"""Measurements behind the figures of docs/faces.md, one module each, run as scripts:

    python -m nofa.bench.faces.camera [PHOTO ...]             # camera vs ground truth, photos
    python -m nofa.bench.faces.geometry_fit [PHOTO ...]       # the demo's landmark fit

They need the `faces` extra (dlib, scipy, scikit-image) and print their figures.
"""
