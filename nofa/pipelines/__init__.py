"""User-level jobs built from the models and the renderer: one module or package per job.

- ``template_fit``: procedural template head -> baked tri-plane avatar -> fast adaptation to a
  portrait (the CPU demo, ``nofa demo``);
- ``mesh``: marching-cubes mesh export of an avatar's density (``nofa export-mesh``).

Layering (docs/architecture.md): cli -> pipelines -> models -> io/render -> ops -> _C.
"""
