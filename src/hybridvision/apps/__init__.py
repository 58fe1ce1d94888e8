"""Compositions of tasks for people: the end-to-end demo and its report."""
