"""Photos or a video -> trainable scene: ``python tools/process_data.py images DIR --out SCENE``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nerfreg.process.cli import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
