"""Build nofa's API reference (HTML, from the docstrings) with pdoc; any warning fails the build.

    python tools/build_api_docs.py OUTDIR        # what `make docs` runs (OUTDIR: build/api)

pdoc reports what it cannot document (a module that fails to import, an unresolvable
annotation, a broken cross-reference) as Python warnings and carries on; here each one is
printed and the exit status is 1, so `make test` catches a docstring that went stale.
Warnings raised by other libraries while nofa is imported (torch's own deprecations) are
not nofa's docs and are ignored.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path


def _is_docs_warning(w: warnings.WarningMessage) -> bool:
    where = str(w.filename).replace("\\", "/")
    return "/pdoc/" in where or "/nofa/" in where or "nofa" in str(w.message)


def public_modules() -> list[str]:
    """The pdoc specs that document every public module of nofa exactly once.

    pdoc walks a package's submodules but honours its `__all__` (nofa's lists only `ops`), so
    modules it would not reach from the specs so far are added one by one, each only once.
    """
    import pkgutil

    from pdoc.extract import walk_specs

    import nofa

    specs = ["nofa"]
    reached = set(walk_specs(specs))
    for info in pkgutil.walk_packages(nofa.__path__, prefix="nofa."):
        if any(part.startswith("_") for part in info.name.split(".")) or info.name in reached:
            continue
        specs.append(info.name)
        reached.update(walk_specs([info.name]))
    return specs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, help="folder for the HTML reference")
    args = parser.parse_args(argv)

    import pdoc

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.render.configure(docformat="markdown", show_source=False, search=True)
        pdoc.pdoc(*public_modules(), output_directory=args.outdir)
    problems = [w for w in caught if _is_docs_warning(w)]
    for w in problems:
        print(f"docs warning: {w.filename}:{w.lineno}: {w.category.__name__}: {w.message}")
    index = args.outdir / "nofa.html"
    if not index.is_file():
        print(f"docs: pdoc wrote no {index}", file=sys.stderr)
        return 1
    pages = sum(1 for _ in args.outdir.rglob("*.html"))
    print(f"API reference: {pages} pages in {args.outdir} ({len(problems)} warnings)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
