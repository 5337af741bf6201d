"""MuJoCo task distributions (HalfCheetah and Ant) on Gymnasium's v5 models."""

from .common import install_warning_handler

install_warning_handler()
