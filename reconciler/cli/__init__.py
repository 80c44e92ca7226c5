"""Command-line interface: argument parsing, rendering, prompts. No business logic."""
