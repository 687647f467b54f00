"""The `cloudchain` command line: argument parsing and display, nothing more."""
