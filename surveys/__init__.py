"""Pulse surveys with thresholded, anonymous results."""
