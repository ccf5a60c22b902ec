"""Pieces every layer uses: atomic files, flags from dataclass fields, quiet start-up, version checks."""
