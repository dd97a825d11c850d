"""Peak memory and time of mesh extraction from an avatar file.

    PYTHONPATH=$PWD python benchmarks/bench_mesh_memory.py R [AVATAR]   (default outputs/demo/avatar.nofa)

Prints the increase of peak RSS (ru_maxrss) over the process before extraction.
"""
import resource, sys, time, warnings, gc
warnings.simplefilter("ignore")
import torch
from nofa.io import load_avatar
from nofa.pipelines.mesh import mesh_from_avatar
R = int(sys.argv[1])
av = load_avatar(sys.argv[2] if len(sys.argv) > 2 else "outputs/demo/avatar.nofa")
# warm up the ops so the baseline includes torch's own allocations
mesh_from_avatar(av, 16)
gc.collect()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.time()
m = mesh_from_avatar(av, R)
dt = time.time() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"R={R}: {dt:.1f} s, {len(m.vertices)} vertices, {len(m.faces)} faces, peak RSS {peak:.0f} MiB (baseline before extraction {base:.0f} MiB, +{peak-base:.0f} MiB)")
