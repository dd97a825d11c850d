"""`nofa upgrade FILE [OUT]`: rewrite a nofa file of an older format, or named with an old
suffix, as the current format under its documented suffix (docs/files.md)."""

from __future__ import annotations

import argparse

NAME = "upgrade"
HELP = "rewrite an older nofa file (older format or old .nofa suffix) as the current format"
DESCRIPTION = """Rewrite FILE as the current format of its kind, named with the kind's suffix:
  a model file of the older NOFAAvatar format ("nofa-avatar-model") -> "nofa-model" (.nofa-model)
  any current file with another suffix (e.g. the old shared .nofa) -> a copy with its suffix
The file's "format" entry decides what it is, never its name. OUT defaults to FILE with the
documented suffix; FILE itself is left as it was (delete it once the new file works).
examples:
  nofa upgrade outputs/demo/avatar.nofa        # -> outputs/demo/avatar.nofa-avatar
  nofa upgrade ffhq.nofa                       # -> ffhq.nofa-model"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="a nofa file")
    p.add_argument("out", metavar="OUT", nargs="?", default=None, help="where to write it")
    p.add_argument("--force", action="store_true", help="overwrite OUT when it exists")


def run(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from nofa.io.atomic import atomic_write
    from nofa.io.nofa_file import KINDS, NofaFileError, read_nofa_file
    from nofa.models.model_file import model_from_weights, save_model, weights_from_file

    from ._common import fail

    try:
        f = read_nofa_file(args.file, warn=False)
    except (NofaFileError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
        fail(args, " ".join(str(e).split()))
    kind = KINDS[f.kind.successor] if f.kind.successor else f.kind
    out = Path(args.out) if args.out else f.path.with_suffix(kind.suffix)
    same = out.resolve() == f.path.resolve()
    if same and not f.kind.successor:
        print(f"{f.path} is already a current {kind.name} ({kind.format} version {f.version})")
        return 0
    if out.exists() and not same and not args.force:
        fail(args, f"{out} exists (pass --force to overwrite it)")
    try:
        if f.kind.successor:  # the older model format: rebuilt from its config and weights
            w = weights_from_file(f)
            save_model(out, model_from_weights(w), upgraded_from=f.kind.format)
        else:  # the content is current: only the name changes
            atomic_write(out, lambda tmp: shutil.copyfile(f.path, tmp))
    except NofaFileError as e:
        fail(args, " ".join(str(e).split()))
    except OSError as e:
        fail(args, f"cannot write {out}: {e.strerror or e}")
    print(f"wrote {out} ({kind.name}, format {kind.format} version {kind.version})")
    return 0
