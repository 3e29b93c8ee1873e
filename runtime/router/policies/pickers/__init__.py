"""Policy pickers: each chooses one candidate from the weighted scores (``max_score``: the highest, ties
taken in turn; ``round_robin``: each worker in turn, scores ignored)."""
