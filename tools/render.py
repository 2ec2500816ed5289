"""Render a video: ``python tools/render.py CONFIG CHECKPOINT --out video.mp4 --path orbit``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nerfreg.cli.render import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
