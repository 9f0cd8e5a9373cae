"""Renderers: each reads the saved report document and never measures anything."""
