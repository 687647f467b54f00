"""Why a task's job is not run: what the provider reports as the job's outcome (status
"refused") and an oracle finds again."""

from __future__ import annotations


class JobInputError(Exception):
    """The task's job cannot be run as asked: its manifest or an input is missing or bad."""


class NotGranted(JobInputError):
    """This agent may not, or cannot, open the sealed dataset for this task."""
