"""Model: frozen dataclasses for specs, offers, observed resources, placements, plans.

No I/O, no printing. Everything else imports from here.
"""
