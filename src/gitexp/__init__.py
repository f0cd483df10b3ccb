"""gitexp: Git-native experiment versioning. Every run is a commit on refs/runs/<name>."""

__version__ = "0.1.0"
