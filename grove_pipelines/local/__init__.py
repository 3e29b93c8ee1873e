"""The one-machine runner behind `grove-pipelines run`: local processes (default) or Ray Serve."""
