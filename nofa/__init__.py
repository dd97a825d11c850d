"""nofa: NOFA++ one-shot 3D facial avatars on fast, differentiable tri-plane kernels.

The kernel layer lives in :mod:`nofa.ops`; see the README for the rest.
"""

__version__ = "0.1.0"

from . import ops  # noqa: F401  (registers the custom ops)

__all__ = ["ops", "__version__"]
