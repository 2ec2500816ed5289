"""Export a checkpoint: ``python tools/export.py CONFIG CHECKPOINT --out scene.ply``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nerfreg.cli.export import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
