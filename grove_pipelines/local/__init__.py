"""The one-machine runner behind `grove-pipelines run`: local processes (default) or Ray Serve, and the
offline tiny model it serves when no ``--model`` is given (``tiny_model``)."""
