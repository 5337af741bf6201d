"""Optimisers used by the meta-learners."""
