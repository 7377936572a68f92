"""Devices, SIM cards, mobile lines, loans, stocktakes and costs."""
