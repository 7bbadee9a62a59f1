"""Function runtimes: the servers that run a function's handler inside its image."""
