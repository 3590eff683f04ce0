"""Guided therapy sessions: protocols, recording, reports and history."""
