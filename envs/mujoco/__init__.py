"""Gymnasium MuJoCo locomotion task distributions (HalfCheetah, Ant)."""
