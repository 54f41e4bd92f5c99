"""The process model: the supervisor of child processes, the server processes, the serve loop."""
