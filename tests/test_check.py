"""`nofa check` runs every public op on both backends and reports each one."""

from __future__ import annotations

from conftest import require_kernels

import nofa.ops as ops
from nofa import cli


def test_check_covers_every_op(capsys):
    require_kernels("cpu")
    rc = cli.main(
        ["check", "--points", "500", "--repeats", "1", "--plane-res", "16", "--rays", "64"]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    for op in ops.OPS:
        rows = [line.split() for line in out.splitlines() if line.startswith(op + " ")]
        assert [r[1] for r in rows] == ["torch", "kernels"], (op, out)
        assert "MISMATCH" not in " ".join(rows[1])


def test_check_rejects_bad_sizes(capsys):
    assert cli.main(["check", "--points", "0"]) == 2
    assert "--points must be >= 1" in capsys.readouterr().out
