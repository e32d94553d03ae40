"""``python -m lanparty.client --invite lanparty://...``."""

import sys

from lanparty.client.cli import main

sys.exit(main())
