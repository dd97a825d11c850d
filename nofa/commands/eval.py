"""`nofa eval`: the paper's Table 1 metrics over a folder of predictions and one of targets."""

from __future__ import annotations

import argparse

NAME = "eval"
HELP = (
    "PSNR, SSIM, LPIPS, CSIM, AED, APD, FID of predicted vs target frames -> Table 1 (Markdown + "
    "CSV)"
)
DESCRIPTION = """Evaluate PRED_DIR against TARGET_DIR (images paired by file name) like the paper's
              Table 1.
  --mode self   self-reenactment: FID, LPIPS, PSNR, SSIM, CSIM, AED, APD against the targets
  --mode cross  cross-reenactment: FID (pred set vs target set), CSIM against --identity (the
                source portrait(s)), AED/APD against the driving coefficients (--target-coeffs)
Weights come from your paths (nofa downloads nothing): --lpips-weights (AlexNet),
--inception-weights (FID), --arcface-weights (CSIM; without it dlib's recogniser from
face_recognition_models is used if installed). AED/APD need your 3DMM estimator's coefficient
files for both sides. The row --name is merged into OUT/table.csv and OUT/table.md, so a self
and a cross run fill one row. Unreadable images are skipped with a warning and counted.
Example:
  nofa eval outputs/pred outputs/gt --lpips-weights alexnet.pth --arcface-weights backbone.pth \\
      --pred-coeffs pred_coeffs/ --target-coeffs gt_coeffs/ --out outputs/eval"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pred_dir", metavar="PRED_DIR")
    p.add_argument("target_dir", metavar="TARGET_DIR")
    p.add_argument(
        "--mode",
        choices=["self", "cross"],
        default="self",
        help="self- or cross-reenactment (default self)",
    )
    p.add_argument("--name", default="nofa", help="method name for the table row (default nofa)")
    p.add_argument(
        "--out",
        default="outputs/eval",
        help="folder for table.md and table.csv (default outputs/eval)",
    )
    p.add_argument(
        "--lpips-weights",
        default=None,
        help="AlexNet weights (torchvision alexnet or LPIPS state_dict)",
    )
    p.add_argument("--arcface-weights", default=None, help="arcface_torch backbone.pth for CSIM")
    p.add_argument(
        "--inception-weights", default=None, help="torchvision inception_v3 state_dict for FID"
    )
    p.add_argument(
        "--pred-coeffs",
        default=None,
        help="3DMM coefficients of the predictions (folder or sequence)",
    )
    p.add_argument(
        "--target-coeffs", default=None, help="3DMM coefficients of the targets / driving frames"
    )
    p.add_argument(
        "--identity", default=None, help="cross mode: source portrait image or folder for CSIM"
    )
    p.add_argument("--device", default="cpu", help="torch device for the networks (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from nofa.metrics import evaluate_folders, format_table, write_table

    r = evaluate_folders(
        args.pred_dir,
        args.target_dir,
        args.mode,
        lpips_weights=args.lpips_weights,
        arcface_weights=args.arcface_weights,
        inception_weights=args.inception_weights,
        pred_coeffs=args.pred_coeffs,
        target_coeffs=args.target_coeffs,
        identity=args.identity,
        device=args.device,
        progress=not args.no_progress,
    )
    notes = [
        f"{args.mode}-reenactment: {r.counts['images']} image(s) evaluated, {r.counts['skipped']} "
        "skipped"
    ] + r.notes
    md, csv = write_table(
        args.out,
        args.name,
        r.values,
        extra={
            f"{args.mode}_images": r.counts["images"],
            f"{args.mode}_skipped": r.counts["skipped"],
        },
        notes=notes,
    )
    print(format_table({args.name: r.values}))
    for n in notes:
        print(f"- {n}")
    print(f"wrote {md} and {csv}")
    return 0
