"""Where the repository and the read-only shared data live (relative, never machine paths)."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
SHARED_DIR = Path(os.environ.get("STREAMFORGE_SHARED_DIR", REPO_ROOT.parent / "shared"))
SHARED_DATA = Path(os.environ.get("STREAMFORGE_SHARED_DATA", SHARED_DIR / "data"))
CACHE_DIR = Path(os.environ.get("STREAMFORGE_CACHE_DIR", REPO_ROOT / ".cache"))
