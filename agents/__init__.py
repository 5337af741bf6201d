"""Torch policies, baselines and meta-learners; never imports concrete env classes."""
