"""Metrics, traces and logs for every service and worker."""
