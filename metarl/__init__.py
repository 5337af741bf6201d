"""Generic meta-learning core.

Types, collector, returns, inner loop, TRPO, config, logging, checkpoints, evaluation.
"""
