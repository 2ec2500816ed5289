"""Explore a checkpoint or PLY in the browser: ``python tools/view.py CONFIG CHECKPOINT``
or ``python tools/view.py scene.ply``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nerfreg.cli.view import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
