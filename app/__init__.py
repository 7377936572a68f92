"""Composition root and shared kernel of Telework Hub."""
