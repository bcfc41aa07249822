"""User-facing errors: one line that says what was wrong and how to fix it."""


class DropError(Exception):
    """An error caused by user input or missing data; the CLI prints it as one line, the app as st.error."""
