"""`serve --processes N`: the server processes, their supervisor in `serve`, and their messages."""
