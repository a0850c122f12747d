"""Helpers the tests share: throwaway servers started on loopback and removed afterwards."""

from pathlib import Path

# The source checkout the tests run in: its collections/, styles/, config/, node_modules/ and tests/.
ROOT = Path(__file__).resolve().parent.parent.parent
