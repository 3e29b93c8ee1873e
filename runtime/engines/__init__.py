"""Starting and supervising vLLM processes, and the offline tiny model they serve in local mode and tests."""
