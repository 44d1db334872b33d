"""Differential tests: the same etcdctl commands against real etcd and against cairn."""
