"""Prompt sets for the teacher."""
