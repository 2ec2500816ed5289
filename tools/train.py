"""Train a config: ``python tools/train.py configs/gaussian_splatting/demo.py``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nerfreg.cli.train import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
