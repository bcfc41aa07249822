"""Hypothesis explores new random cases on developers' machines; CI replays a fixed sequence so a
landing never depends on luck (a case found locally becomes an @example regression)."""
import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
