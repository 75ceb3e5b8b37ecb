"""``python -m yolact``: the ``yolact`` command (also under torchrun: ``torchrun ... -m yolact train ...``)."""

import sys

from yolact.cli import main

sys.exit(main())
