"""cairn: an etcd-compatible, strongly consistent key-value store."""

__version__ = "0.1.0"
