"""The vLLM processes: starting and supervising them (``supervisor``, ``vllm``) and the NIXL plugin they load."""
