"""nofa's networks. Each model lives in its own module; this package only re-exports."""
from .deformation import DeformationField

__all__ = ["DeformationField"]
