"""A 3D template of the 68 landmarks (iBUG 300-W order) in EG3D world units.

Source: nofa's own procedural template head (nofa.pipelines.template_fit.TemplateHead).
Its frontal render at the EG3D default camera (512 px, sphere-traced) was given to dlib's
68-point predictor and each landmark lifted to 3D through the render's depth; the points were
then made left-right symmetric (averaged with their mirror partner) and the depth of the jaw
contour, a silhouette in the frontal view, smoothed along the contour. Regenerate with
`tools/make_landmark_template.py`. World axes: y up, the face looks along +z, the subject's
left is +x (image right in the frontal view).

Only the inner 51 points (brows, nose, eyes, mouth) are used for pose: jaw points slide
along the silhouette as the head turns.
"""
from __future__ import annotations

import numpy as np

__all__ = ["INNER", "LANDMARK_WEIGHTS", "LANDMARKS_3D", "MIRROR"]

LANDMARKS_3D = np.array(
    [[-0.1674,  0.0295,  0.0698],
     [-0.1638, -0.0151,  0.0850],
     [-0.1535, -0.0582,  0.0976],
     [-0.1488, -0.1034,  0.0769],
     [-0.1324, -0.1439,  0.0634],
     [-0.1057, -0.1784,  0.0750],
     [-0.0724, -0.2064,  0.0920],
     [-0.0385, -0.2278,  0.1191],
     [ 0.0000, -0.2323,  0.1364],
     [ 0.0385, -0.2278,  0.1191],
     [ 0.0724, -0.2064,  0.0920],
     [ 0.1057, -0.1784,  0.0750],
     [ 0.1324, -0.1439,  0.0634],
     [ 0.1488, -0.1034,  0.0769],
     [ 0.1535, -0.0582,  0.0976],
     [ 0.1638, -0.0151,  0.0850],
     [ 0.1674,  0.0295,  0.0698],
     [-0.1157,  0.0462,  0.1481],
     [-0.0963,  0.0627,  0.1661],
     [-0.0709,  0.0675,  0.1817],
     [-0.0459,  0.0643,  0.1918],
     [-0.0201,  0.0573,  0.1958],
     [ 0.0201,  0.0573,  0.1958],
     [ 0.0459,  0.0643,  0.1918],
     [ 0.0709,  0.0675,  0.1817],
     [ 0.0963,  0.0627,  0.1661],
     [ 0.1157,  0.0462,  0.1481],
     [ 0.0000,  0.0231,  0.2375],
     [ 0.0000, -0.0039,  0.2482],
     [ 0.0000, -0.0308,  0.2506],
     [ 0.0000, -0.0588,  0.2563],
     [-0.0266, -0.0804,  0.2289],
     [-0.0142, -0.0844,  0.2255],
     [ 0.0000, -0.0885,  0.2079],
     [ 0.0142, -0.0844,  0.2255],
     [ 0.0266, -0.0804,  0.2289],
     [-0.0833,  0.0172,  0.1909],
     [-0.0689,  0.0293,  0.1935],
     [-0.0495,  0.0288,  0.1873],
     [-0.0370,  0.0133,  0.1773],
     [-0.0518,  0.0081,  0.1877],
     [-0.0706,  0.0080,  0.1925],
     [ 0.0370,  0.0133,  0.1773],
     [ 0.0495,  0.0288,  0.1873],
     [ 0.0689,  0.0293,  0.1935],
     [ 0.0833,  0.0172,  0.1909],
     [ 0.0706,  0.0080,  0.1925],
     [ 0.0518,  0.0081,  0.1877],
     [-0.0508, -0.1235,  0.1792],
     [-0.0324, -0.1143,  0.2167],
     [-0.0148, -0.1107,  0.2203],
     [ 0.0000, -0.1141,  0.2204],
     [ 0.0148, -0.1107,  0.2203],
     [ 0.0324, -0.1143,  0.2167],
     [ 0.0508, -0.1235,  0.1792],
     [ 0.0336, -0.1391,  0.2111],
     [ 0.0160, -0.1477,  0.2096],
     [ 0.0000, -0.1501,  0.2074],
     [-0.0160, -0.1477,  0.2096],
     [-0.0336, -0.1391,  0.2111],
     [-0.0414, -0.1237,  0.1875],
     [-0.0148, -0.1226,  0.2101],
     [ 0.0000, -0.1249,  0.2097],
     [ 0.0148, -0.1226,  0.2101],
     [ 0.0414, -0.1237,  0.1875],
     [ 0.0148, -0.1261,  0.2086],
     [ 0.0000, -0.1282,  0.2112],
     [-0.0148, -0.1261,  0.2086]], dtype=np.float64)
LANDMARKS_3D.setflags(write=False)

# index of each landmark's left-right partner (a mirrored face's landmark i is landmark MIRROR[i]).
MIRROR = np.array(
    [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
     27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
     54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65])
MIRROR.setflags(write=False)

INNER = np.arange(17, 68)

LANDMARK_WEIGHTS = np.ones(68)
LANDMARK_WEIGHTS.setflags(write=False)
