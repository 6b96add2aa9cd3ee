"""The version of kaudit (a leaf: reports and snapshots read it without importing the package's front door)."""

__version__ = "0.1.0"
