"""Everything the scheduler process runs: leader election, cron, the event-driver supervisor, the reconciler."""
