"""Policy scorers: each rates the candidates in [0, 1] and explains its rating (``prefix``: the cost of a
worker's uncached prompt plus its load; ``session``: the worker of a conversation's previous turn;
``fanout``: the worker of a sibling call started moments ago; ``least_loaded``: the fewest in flight)."""
