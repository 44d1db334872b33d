"""Helpers shared by the test suites: server processes and the etcdctl runner."""
