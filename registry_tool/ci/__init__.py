"""Checks for index repositories: ``ci check`` for pull requests and the ``init`` scaffold."""
