"""Verify-on-install client: trust state machine, bounded fetcher, installer, lockfile."""
