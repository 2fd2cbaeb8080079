"""Composition root of creative-sync: CLI, settings, embedded broker, benchmark."""
