"""System resource types: package, service, user, group, cron, sysctl."""
