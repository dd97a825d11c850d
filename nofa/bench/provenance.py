"""The header every result file starts with: the command that made it, the commit, the
machine, the date and the number of timed repeats (docs/benchmarks.md, "Result files").

Markdown files start with an HTML comment (invisible when rendered), CSV files with `#`
lines (`pandas.read_csv(path, comment="#")`, or `nofa.bench.report.read_csv`):

    <!-- nofa-result                      # nofa-result
    command: nofa bench --device cpu      # command: nofa bench --device cpu
    commit: 1a2b3c4                       # commit: 1a2b3c4
    machine: Intel(R) Xeon(R) ...         # machine: Intel(R) Xeon(R) ...
    date: 2026-12-08 10:12 UTC            # date: 2026-12-08 10:12 UTC
    repeats: 5                            # repeats: 5
    -->

`repeats` is the fewest timed repeats behind any figure of the file (an integer), `n/a`
where the file holds no timing statistics, or `unknown` (an old file whose repeats were not
recorded); a value may be followed by a note in brackets. An optional `note:` line may
follow `repeats`.
"""

from __future__ import annotations

import re

__all__ = [
    "FIELDS",
    "HeaderError",
    "format_header",
    "header_from_environment",
    "parse_header",
    "repeats_value",
    "strip_header",
]

FIELDS = ("command", "commit", "machine", "date", "repeats")
OPTIONAL_FIELDS = ("note",)
_MD_OPEN, _MD_CLOSE = "<!-- nofa-result", "-->"
_CSV_OPEN = "# nofa-result"
_COMMIT = re.compile(r"^[0-9a-f]{7,40}(\s+\(.*\))?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}( UTC)?)?(\s+\(.*\))?$")
_REPEATS = re.compile(r"^(\d+|n/a|unknown)(\s+\(.*\))?$")


class HeaderError(ValueError):
    """A result file without a complete, well-formed header."""


def format_header(fields: dict[str, object], style: str = "md") -> str:
    """The header block for `fields` (every name of FIELDS, optionally `note`), ending in a
    newline. style: "md" (an HTML comment) or "csv" (`#` lines)."""
    missing = [k for k in FIELDS if fields.get(k) in (None, "")]
    if missing:
        raise HeaderError(f"result header without {missing}")
    names = FIELDS + tuple(k for k in OPTIONAL_FIELDS if fields.get(k))
    lines = [f"{k}: {' '.join(str(fields[k]).split())}" for k in names]  # one line each
    if style == "md":
        return "\n".join([_MD_OPEN, *lines, _MD_CLOSE]) + "\n"
    if style == "csv":
        return "\n".join(f"# {line}" for line in [_CSV_OPEN[2:], *lines]) + "\n"
    raise ValueError(f"style must be 'md' or 'csv', got {style!r}")


def header_from_environment(env: dict, repeats: int | None, style: str = "md") -> str:
    """The header of a file written by a harness run (`env`: nofa.bench.environment.describe;
    repeats: the fewest timed repeats behind its figures, None: n/a)."""
    return format_header(
        {
            "command": env["command"],
            "commit": env["commit"],
            "machine": env["machine"],
            "date": env["date"],
            "repeats": "n/a" if repeats is None else repeats,
        },
        style,
    )


def _block(text: str) -> tuple[list[str], int] | None:
    """The header's field lines and the length of the block in characters (None: no block)."""
    lines = text.splitlines(keepends=True)
    if not lines:
        return None
    first = lines[0].strip()
    if first == _MD_OPEN:
        for i, line in enumerate(lines[1:], 1):
            if line.strip() == _MD_CLOSE:
                return [x.strip() for x in lines[1:i]], sum(map(len, lines[: i + 1]))
        raise HeaderError("the nofa-result comment is not closed with '-->'")
    if first == _CSV_OPEN:
        n = 1
        while n < len(lines) and lines[n].startswith("#"):
            n += 1
        return [x[1:].strip() for x in lines[1:n]], sum(map(len, lines[:n]))
    return None


def parse_header(text: str) -> dict[str, str]:
    """The fields of the header `text` starts with. Raises HeaderError when it has none, a
    field is missing, repeated or unknown, or commit / date / repeats are malformed."""
    block = _block(text)
    if block is None:
        raise HeaderError(f"no header: the file must start with '{_MD_OPEN}' or '{_CSV_OPEN}'")
    fields: dict[str, str] = {}
    for line in block[0]:
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or key not in FIELDS + OPTIONAL_FIELDS:
            raise HeaderError(f"unexpected header line {line!r}")
        if key in fields:
            raise HeaderError(f"header field {key!r} given twice")
        fields[key] = value
    missing = [k for k in FIELDS if not fields.get(k)]
    if missing:
        raise HeaderError(f"header without {missing}")
    if not _COMMIT.match(fields["commit"]):
        raise HeaderError(f"commit {fields['commit']!r} is not a git hash")
    if not _DATE.match(fields["date"]):
        raise HeaderError(f"date {fields['date']!r} is not YYYY-MM-DD[ HH:MM UTC]")
    if not _REPEATS.match(fields["repeats"]):
        raise HeaderError(f"repeats {fields['repeats']!r} is not an integer, n/a or unknown")
    return fields


def repeats_value(fields: dict[str, str]) -> int | None:
    """The header's repeats as an integer (None for n/a and unknown)."""
    head = fields["repeats"].split()[0]
    return int(head) if head.isdigit() else None


def strip_header(text: str) -> str:
    """`text` without the header it starts with (unchanged when it has none)."""
    block = _block(text)
    return text if block is None else text[block[1] :]
