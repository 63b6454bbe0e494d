"""Scheduled jobs: one registry, one runner; the local scheduler and the Helm CronJobs share both."""
