"""`nofa import-eg3d IN.pkl OUT.nofa-model`: convert an official EG3D checkpoint into a nofa
model file."""

from __future__ import annotations

import argparse

NAME = "import-eg3d"
HELP = "convert NVIDIA's EG3D .pkl (generator, decoder, super-resolution) into a nofa model file"
DESCRIPTION = (
    "Read an official EG3D snapshot (e.g. ffhq512-128.pkl) with a restricted unpickler that never "
    "executes the Python source stored inside it, map G_ema's tensors onto nofa's "
    "TriplaneGenerator, "
    "OSG decoder and super-resolution module, and write a NOFAAvatar model file (.nofa-model; "
    "paper preset; the "
    "encoder, detail, fusion and deformation networks are freshly initialised). Missing or "
    "unexpected "
    "tensors are listed by name. The discriminator, augment pipe and dataset settings are read "
    "past "
    "as inert data. A file that is not a readable EG3D snapshot fails with a one-line error (exit "
    "1). "
    "See docs/eg3d_import.md.\n\nexample:\n  nofa import-eg3d ffhq512-128.pkl ffhq.nofa-model"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="IN.pkl", help="EG3D snapshot pickle")
    p.add_argument(
        "output", metavar="OUT", help="nofa model file to write (atomically), e.g. ffhq.nofa-model"
    )
    p.add_argument(
        "--network",
        default=None,
        help="which network of the snapshot to import (default: G_ema, else G)",
    )
    p.add_argument(
        "--strict", action="store_true", help="fail when any tensor is missing or unexpected"
    )


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    from nofa.models.eg3d_import import EG3DImportError, import_eg3d
    from nofa.models.model_file import save_model

    def fail(message: str, code: int) -> int:
        print(
            "error: " + " ".join(message.split()), file=sys.stderr
        )  # one line, whatever the cause
        return code

    if not os.path.isfile(args.input):
        return fail(
            f"{args.input} not found (download the EG3D checkpoint yourself; nofa never downloads)",
            2,
        )
    try:
        model, report = import_eg3d(args.input, network=args.network, strict=args.strict)
    except EG3DImportError as e:
        return fail(str(e), 1)
    try:
        save_model(
            args.output,
            model,
            preset="paper",
            source=os.path.basename(args.input),
            network=report.network,
        )
    except OSError as e:
        return fail(f"cannot write {args.output}: {e.strerror or e}", 1)
    print(
        f"loaded {len(report.loaded)} tensors from {report.network}; config: generator "
        f"{report.config['generator']['plane_resolution']}^2 planes, neural rendering "
        f"{report.config['render']['resolution']} px, SR conv_clamp "
        f"{report.config['superres']['conv_clamp']}"
    )
    print(
        f"skipped entries: {', '.join(report.skipped) or 'none'} (not needed; read as inert data)"
    )
    for kind in ("missing", "unexpected"):
        names = getattr(report, kind)
        print(f"{kind}: {len(names)}" + ("" if not names else "\n  " + "\n  ".join(names)))
    print(f"wrote {args.output}")
    return 0
