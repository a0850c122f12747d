"""Releases between networks: desensitized bundles built on a higher edition, imported into a lower one.

``build_release(settings, edition, out_dir)`` writes the bundle; ``import_release(settings, bundle)``
verifies and loads it. See ``bundle.py`` for the layout and ``manifest.py`` for the checks.
"""

from __future__ import annotations

from server.release.bundle import build_release
from server.release.importer import import_release
from server.release.manifest import BundleError

__all__ = ["BundleError", "build_release", "import_release"]
