#!/usr/bin/env python3
"""Convolution benchmark: a thin wrapper over ``fastconv bench``.

Same options as ``fastconv bench`` / ``python -m fastconv bench``; see
bench/README.md.  Example::

    python bench/conv_bench.py --filter resnet50 --threads 1,2 --json /tmp/b.json
"""

import sys

from fastconv.bench import main

if __name__ == "__main__":
    sys.exit(main())
