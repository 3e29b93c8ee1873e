"""Policy filters: each drops the candidates that must not get a request (``saturation``: a worker with
no room; ``load_guard``: far busier than the idlest; ``cost_bound``: an affinity hint's worker costing
too much more than the cheapest)."""
