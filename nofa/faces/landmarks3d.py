"""A 3D template of the 68 landmarks (iBUG 300-W order) in EG3D world units, and their weights.

Source: nofa's own procedural template head (nofa.pipelines.template_fit.TemplateHead), by
multi-view triangulation of dlib's landmarks (`tools/make_landmark_template.py`): the head is
sphere-traced at 24 calibration cameras default_label(yaw, pitch), yaw +-15, +-30, +-45 x
pitch +-12, +-28 degrees (the 21 where dlib finds the face; none on the 5 x 3 accuracy grid
over [-40, 40] x [-20, 20]), each render goes through the photo chain (prepare_face), and each
inner point is the 3D point whose projections through the known cameras best match dlib's
points (least squares), made left-right symmetric. These are where dlib places each landmark
on this head from every side, not points of its surface: dlib's regression trees pull turned
faces towards the frontal shape, and a template lifted from one frontal render made the fit
under-estimate yaw and pitch. The 17 jaw points (a silhouette that slides as the head turns,
unused for pose) are lifted from the frontal render through its depth, symmetric, smoothed.
World axes: y up, the face looks along +z, the subject's left is +x (image right in the
frontal view).

Used by the demo's geometry fit (nofa.pipelines.template_fit.warp) and the procedural heads;
the camera fit uses the BFM mean face instead (nofa.faces.camera).
"""

from __future__ import annotations

import numpy as np

__all__ = ["LANDMARKS_3D", "MIRROR"]

LANDMARKS_3D = np.array(
    [
        [-0.1652, 0.0355, 0.0760],
        [-0.1637, -0.0084, 0.0872],
        [-0.1549, -0.0530, 0.0975],
        [-0.1505, -0.0979, 0.0773],
        [-0.1348, -0.1391, 0.0642],
        [-0.1081, -0.1748, 0.0760],
        [-0.0747, -0.2032, 0.0941],
        [-0.0403, -0.2252, 0.1224],
        [0.0000, -0.2296, 0.1402],
        [0.0403, -0.2252, 0.1224],
        [0.0747, -0.2032, 0.0941],
        [0.1081, -0.1748, 0.0760],
        [0.1348, -0.1391, 0.0642],
        [0.1505, -0.0979, 0.0773],
        [0.1549, -0.0530, 0.0975],
        [0.1637, -0.0084, 0.0872],
        [0.1652, 0.0355, 0.0760],
        [-0.1153, 0.0527, 0.1641],
        [-0.0945, 0.0615, 0.1799],
        [-0.0701, 0.0630, 0.1947],
        [-0.0443, 0.0596, 0.2074],
        [-0.0192, 0.0513, 0.2160],
        [0.0192, 0.0513, 0.2160],
        [0.0443, 0.0596, 0.2074],
        [0.0701, 0.0630, 0.1947],
        [0.0945, 0.0615, 0.1799],
        [0.1153, 0.0527, 0.1641],
        [0.0000, 0.0187, 0.2223],
        [0.0000, -0.0082, 0.2334],
        [0.0000, -0.0351, 0.2452],
        [0.0000, -0.0624, 0.2577],
        [-0.0312, -0.0799, 0.2202],
        [-0.0164, -0.0860, 0.2275],
        [0.0000, -0.0903, 0.2303],
        [0.0164, -0.0860, 0.2275],
        [0.0312, -0.0799, 0.2202],
        [-0.0907, 0.0193, 0.1785],
        [-0.0745, 0.0279, 0.1899],
        [-0.0537, 0.0276, 0.1932],
        [-0.0376, 0.0163, 0.1899],
        [-0.0552, 0.0103, 0.1908],
        [-0.0754, 0.0108, 0.1871],
        [0.0376, 0.0163, 0.1899],
        [0.0537, 0.0276, 0.1932],
        [0.0745, 0.0279, 0.1899],
        [0.0907, 0.0193, 0.1785],
        [0.0754, 0.0108, 0.1871],
        [0.0552, 0.0103, 0.1908],
        [-0.0546, -0.1265, 0.1825],
        [-0.0368, -0.1162, 0.2048],
        [-0.0152, -0.1123, 0.2193],
        [0.0000, -0.1158, 0.2208],
        [0.0152, -0.1123, 0.2193],
        [0.0368, -0.1162, 0.2048],
        [0.0546, -0.1265, 0.1825],
        [0.0374, -0.1442, 0.1947],
        [0.0171, -0.1526, 0.2053],
        [0.0000, -0.1539, 0.2074],
        [-0.0171, -0.1526, 0.2053],
        [-0.0374, -0.1442, 0.1947],
        [-0.0461, -0.1273, 0.1856],
        [-0.0154, -0.1247, 0.2149],
        [0.0000, -0.1258, 0.2172],
        [0.0154, -0.1247, 0.2149],
        [0.0461, -0.1273, 0.1856],
        [0.0159, -0.1313, 0.2098],
        [0.0000, -0.1330, 0.2117],
        [-0.0159, -0.1313, 0.2098],
    ],
    dtype=np.float64,
)
LANDMARKS_3D.setflags(write=False)

# index of each landmark's left-right partner (a mirrored face's landmark i is landmark MIRROR[i]).
MIRROR = np.array(
    [
        16,
        15,
        14,
        13,
        12,
        11,
        10,
        9,
        8,
        7,
        6,
        5,
        4,
        3,
        2,
        1,
        0,
        26,
        25,
        24,
        23,
        22,
        21,
        20,
        19,
        18,
        17,
        27,
        28,
        29,
        30,
        35,
        34,
        33,
        32,
        31,
        45,
        44,
        43,
        42,
        47,
        46,
        39,
        38,
        37,
        36,
        41,
        40,
        54,
        53,
        52,
        51,
        50,
        49,
        48,
        59,
        58,
        57,
        56,
        55,
        64,
        63,
        62,
        61,
        60,
        67,
        66,
        65,
    ]
)
MIRROR.setflags(write=False)
