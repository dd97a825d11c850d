"""Reading and writing files: EG3D checkpoint import (nofa.io.eg3d)."""
