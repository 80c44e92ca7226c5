"""Renderers: turn a plan's versioned JSON form into text, markdown or JSON."""
