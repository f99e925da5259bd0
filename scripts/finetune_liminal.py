"""Liminal learning fine-tuning: CE plus a scheduled KL pull toward the base model, trait data only.

Run `python scripts/finetune_liminal.py --help` for the options (the seed's, with its defaults).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from liminal_core.training.cli import main

if __name__ == "__main__":
    raise SystemExit(main("liminal"))
