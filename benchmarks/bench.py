"""Same as `nofa bench` (for a checkout where the `nofa` script is not installed):

    PYTHONPATH=. python benchmarks/bench.py [--quick] [--device cpu|cuda] [--out DIR]

The suite itself lives in nofa/bench/ (see docs/benchmarks.md).
"""

import sys

from nofa.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
