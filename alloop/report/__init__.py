"""Figures and summaries of a campaign (matplotlib is imported only when a figure is drawn)."""
